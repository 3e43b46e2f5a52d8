"""Settings: every one documented, read from BASTION_* variables, nothing else reads env."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bastion.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_every_setting_is_documented() -> None:
    doc = (ROOT / "docs" / "settings.md").read_text()
    documented = set(re.findall(r"`(BASTION_[A-Z_]+)`", doc))
    expected = {f"BASTION_{name.upper()}" for name in Settings.model_fields}
    assert not expected - documented, f"undocumented settings: {sorted(expected - documented)}"
    assert not documented - expected, (
        f"documented settings that do not exist: {sorted(documented - expected)}"
    )
    for name, field in Settings.model_fields.items():
        assert field.description, f"{name} has no description"


def test_settings_come_from_prefixed_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BASTION_HOME", str(tmp_path))
    monkeypatch.setenv("BASTION_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("BASTION_SECRET_KEY", "s3cret-value-for-tests")
    settings = Settings()
    assert settings.home == tmp_path
    assert settings.policy_path == tmp_path / "policy.yaml"
    assert settings.resolved_database_url == f"sqlite:///{tmp_path.resolve() / 'bastion.db'}"
    assert "s3cret" not in repr(settings)


def test_bad_setting_is_refused_with_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    monkeypatch.setenv("BASTION_AUDIT_BATCH_MAX", "zero")
    with pytest.raises(ValidationError, match="audit_batch_max"):
        Settings()


def test_nothing_outside_settings_reads_the_environment() -> None:
    offenders = []
    for path in (ROOT / "src" / "bastion").rglob("*.py"):
        if path.name == "settings.py":
            continue
        text = path.read_text()
        if re.search(r"os\.environ|os\.getenv|getenv\(", text):
            offenders.append(str(path.relative_to(ROOT)))
    assert not offenders
