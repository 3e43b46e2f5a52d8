"""Logs, request ids and Prometheus metrics."""

from bastion.observability.context import (
    client_request_id_var,
    current_request_id,
    request_id_var,
)
from bastion.observability.logs import configure_logging
from bastion.observability.metrics import Metrics

__all__ = [
    "Metrics",
    "client_request_id_var",
    "configure_logging",
    "current_request_id",
    "request_id_var",
]
