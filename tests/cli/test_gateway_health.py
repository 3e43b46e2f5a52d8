"""``bastion gateway health`` on wrong input: a Bastion error with a code, never a
traceback. (Against a running server: ``tests/gateway/test_faults.py``.)"""

from __future__ import annotations

import socket

import pytest

from .test_cli import bastion


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends


@pytest.mark.parametrize(
    ("args", "env", "code", "exit_code"),
    [
        (["--format", "xml"], {"BASTION_API_KEY": "bst_x"}, "invalid_option", 2),
        ([], {}, "missing_api_key", 2),
        (
            ["--url", "http://127.0.0.1:{port}"],
            {"BASTION_API_KEY": "bst_x"},
            "server_unreachable",
            1,
        ),
    ],
)
def test_wrong_input_is_a_clear_error(
    args: list[str], env: dict[str, str], code: str, exit_code: int
) -> None:
    port = closed_port()
    ran = bastion(env, "gateway", "health", *[a.format(port=port) for a in args])
    assert ran.returncode == exit_code
    assert f"[{code}]" in ran.stderr and "Traceback" not in ran.stderr
