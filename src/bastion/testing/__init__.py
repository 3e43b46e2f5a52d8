"""Test doubles shipped with Bastion: a fake LLM upstream (``bastion.testing.upstream``)
for the gateway's tests and benchmark."""

from __future__ import annotations

from bastion.lazy import lazy_exports

__all__ = ["FakeUpstream", "RecordedRequest", "Scenario", "ScenarioError", "create_app", "parse"]

__getattr__ = lazy_exports(
    __name__,
    {
        "FakeUpstream": "bastion.testing.upstream",
        "RecordedRequest": "bastion.testing.upstream",
        "create_app": "bastion.testing.upstream",
        "Scenario": "bastion.testing.scenarios",
        "ScenarioError": "bastion.testing.scenarios",
        "parse": "bastion.testing.scenarios",
    },
)
