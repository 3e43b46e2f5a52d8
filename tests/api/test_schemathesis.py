"""The whole OpenAPI document, fuzzed by schemathesis with real keys, on SQLite and
PostgreSQL: no 5xx, and no response the document does not describe (status codes,
content types, bodies, headers), with valid (positive) and invalid (negative) input.

Keys of three roles (admin, analyst, guest) so the routes are reached past the
permission check, not only their 401s. Bounded: a few examples per operation, mode and
key, so one database takes well under a minute and a half. (Unknown methods are
checked path by path in ``test_request_limits.py``: schemathesis sends them only from
its command line.)
"""

from __future__ import annotations

from typing import Any

import hypothesis
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.slow

ROLES = ("admin", "analyst", "guest")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
]
EXAMPLES = 5


def test_the_openapi_document_holds_for_every_operation_and_role(
    app: FastAPI, runtime: Any, key_for: Any
) -> None:
    keys = {role: key_for(role) for role in ROLES}
    own_ids = {k.id for k in runtime.keys.list_keys(include_revoked=True)}
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 30
    calls: list[tuple[str, int]] = []
    failures: list[str] = []

    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @hypothesis.settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
                phases=[hypothesis.Phase.generate],
            )
            @given(case=operation.as_strategy(generation_mode=mode), role=st.sampled_from(ROLES))
            def check(case: Any, role: str) -> None:
                if case.path_parameters and case.path_parameters.get("key_id") in own_ids:
                    return  # revoking the keys this test runs with would end it
                headers = {"Authorization": f"Bearer {keys[role]}"}
                response = case.call_and_validate(headers=headers, checks=CHECKS)
                calls.append((case.operation.label, response.status_code))

            try:
                check()
            except hypothesis.errors.Unsatisfiable:
                # No invalid input exists for an operation without parameters or body.
                assert mode is GenerationMode.NEGATIVE, operation.label
            except (Exception, BaseExceptionGroup) as exc:  # every failure, not the first
                failures.append(f"{operation.label} ({mode.value}): {exc}"[:3000])

    assert not failures, "\n\n".join(failures)
    statuses = {status for _, status in calls}
    assert all(status < 500 for status in statuses)
    # The keys were taken: the routes were reached past authentication.
    reached = {label for label, status in calls if status not in (401, 403)}
    assert len(reached) >= len(operations) - 2, sorted({o.label for o in operations} - reached)
