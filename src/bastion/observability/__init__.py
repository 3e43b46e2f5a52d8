"""Logs, request ids and Prometheus metrics."""

from bastion.observability.context import current_request_id, request_id_var
from bastion.observability.logs import configure_logging
from bastion.observability.metrics import Metrics

__all__ = ["Metrics", "configure_logging", "current_request_id", "request_id_var"]
