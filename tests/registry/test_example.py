"""The worked example runs from a fresh clone, twice, and on the real UCI files."""

from __future__ import annotations

import os
import runpy
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from bastion.monitoring.fairness import fairness_report
from bastion.registry import demo

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "registry" / "adult_income.py"


def test_the_example_releases_v2_and_adds_history_when_run_again(
    tmp_path: Path,
    mlflow_template: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    shutil.copy(mlflow_template, home / "mlflow.db")
    for name in [k for k in os.environ if k.startswith("BASTION_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("BASTION_DATABASE_URL", database_url)
    monkeypatch.setattr(sys, "argv", [str(EXAMPLE), "--home", str(home)])
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    first = capsys.readouterr().out
    assert "production refused: adult-income v1" in first
    assert "production: pr_" in first and "verify: OK" in first
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    second = capsys.readouterr().out
    assert "registered v3" in second and "registered v4" in second and "verify: OK" in second
    assert (home / "cards" / "adult-income-v4-model-card.html").is_file()


@pytest.mark.shared_data
def test_mitigation_holds_on_uci_held_out_test_file(shared_data: Path) -> None:
    """Trained on UCI's adult.data, judged on its separate adult.test (16,281 people)."""
    train = demo.load_adult(shared_data / "tabular" / "adult.data")
    test = demo.load_adult(shared_data / "tabular" / "adult.test")
    assert (len(train), len(test)) == (32_561, 16_281)
    for mitigate, passes in ((False, False), (True, True)):
        trained = demo.train(train, mitigate=mitigate)
        X = test[demo.NUMERIC + demo.CATEGORICAL]
        y = (test[demo.TARGET] == ">50K").astype(int)
        report = fairness_report(y, trained.model.predict(X), test[["sex"]]).to_dict()
        [four_fifths] = [c for c in report["checks"] if c["metric"] == "four_fifths"]
        assert four_fifths["passed"] is passes, four_fifths
