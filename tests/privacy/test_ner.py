"""The optional NER backend: a clear error when its package or model is absent, and
never a download; where Presidio and spaCy are installed, a real pipeline loaded from
a directory the test builds."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bastion.privacy import NerBackendUnavailable, PrivacyGuard, PrivacyPolicy

ABSENT_MODEL = "en_core_web_absent_for_tests"


@pytest.fixture
def no_downloads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every attempt to reach the network or start a process (``spacy download`` is a
    pip install in a subprocess) is recorded and refused."""
    attempts: list[str] = []

    def refuse(what: str) -> Any:
        def _refuse(*args: Any, **kwargs: Any) -> Any:
            attempts.append(what)
            raise OSError(f"{what} refused by the test")

        return _refuse

    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    monkeypatch.setattr(subprocess.Popen, "__init__", refuse("subprocess"))
    return attempts


def policy(backend: str, model: str) -> PrivacyPolicy:
    return PrivacyPolicy.model_validate({"ner": {"backend": backend, "model": model}})


@pytest.mark.parametrize("backend", ["presidio", "gliner"])
def test_absent_model_is_a_clear_error_and_nothing_is_downloaded(
    backend: str, no_downloads: list[str]
) -> None:
    with pytest.raises(NerBackendUnavailable) as caught:
        PrivacyGuard(policy(backend, ABSENT_MODEL))
    error = caught.value
    assert error.code == "ner_backend_unavailable"
    assert error.status == 500
    assert ABSENT_MODEL in error.message
    assert "never downloads" in error.message
    assert no_downloads == []


@pytest.mark.parametrize(
    ("backend", "module", "package"),
    [("presidio", "presidio_analyzer", "presidio-analyzer"), ("gliner", "gliner", "gliner")],
)
def test_absent_package_is_named(
    backend: str,
    module: str,
    package: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_downloads: list[str],
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    with pytest.raises(NerBackendUnavailable) as caught:
        PrivacyGuard(policy(backend, str(tmp_path)))  # the model directory exists
    assert caught.value.code == "ner_backend_unavailable"
    assert package in caught.value.message
    assert caught.value.details["missing"] == [f"the {package} package"]
    assert no_downloads == []


def test_policy_without_ner_needs_neither_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "presidio_analyzer", None)
    monkeypatch.setitem(sys.modules, "gliner", None)
    guard = PrivacyGuard(PrivacyPolicy())
    assert guard.analyze("mail jane@corp.com")[0].entity_type == "EMAIL_ADDRESS"


def test_a_spacy_pipeline_on_disk_adds_its_findings(
    tmp_path: Path, no_downloads: list[str]
) -> None:
    pytest.importorskip("presidio_analyzer", reason="presidio-analyzer is not installed")
    spacy = pytest.importorskip("spacy", reason="spaCy is not installed")
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": "GPE", "pattern": "Zorbania"}])
    nlp.to_disk(tmp_path / "pipeline")

    guard = PrivacyGuard(
        PrivacyPolicy.model_validate(
            {
                "prompt": {"entities": ["EMAIL_ADDRESS", "LOCATION"]},
                "ner": {"backend": "presidio", "model": str(tmp_path / "pipeline")},
            }
        )
    )
    spans = guard.analyze("Write to jane@corp.com about the trip to Zorbania.")
    assert [(s.entity_type, s.text) for s in spans] == [
        ("EMAIL_ADDRESS", "jane@corp.com"),
        ("LOCATION", "Zorbania"),
    ]
    assert no_downloads == []
