"""``bastion explain``: SHAP explanations of a saved model's predictions.

Heavy libraries (SHAP, pandas, joblib) are imported inside the command so that
``bastion --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from bastion.cli.checks import (
    FORMAT_HELP,
    _bad_input,
    _guard,
    _split,
    _write_json,
    _write_report,
    out,
)
from bastion.cli.common import OutputFormat


def _load_model(path: Path) -> Any:
    from bastion.monitoring.errors import UnsupportedModel

    if not path.is_file():
        raise _bad_input(
            f"{path} does not exist; pass a model saved with joblib or pickle", "file_not_found"
        )
    try:
        import joblib  # type: ignore[import-untyped]

        # Loading a pickled model runs code from it: the operator names a file they trust.
        return joblib.load(path)
    except Exception as exc:  # joblib/pickle raise anything a broken file provokes
        raise UnsupportedModel(f"cannot load a model from {path}: {exc}") from exc


def explain(
    model: Path = typer.Option(
        ..., "--model", "-m", help="A scikit-learn compatible model saved with joblib/pickle."
    ),
    data: Path = typer.Option(
        ..., "--data", "-d", help="Feature rows (.parquet, .csv); also the SHAP background."
    ),
    row: list[int] = typer.Option([], "--row", help="Row position(s) to explain (repeatable)."),
    drop: str | None = typer.Option(
        None, help="Comma-separated columns that are not features (labels, ids)."
    ),
    positive: str | None = typer.Option(
        None, help="Class to explain for classifiers (default: the last class)."
    ),
    top: int = typer.Option(5, min=1, help="Top contributors to show each way."),
    importance: bool = typer.Option(True, help="Also compute global importance (mean |SHAP|)."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help=FORMAT_HELP),
    report: Path | None = typer.Option(
        None, "--report", help="Write a self-contained HTML report here."
    ),
    json_out: str | None = typer.Option(
        None, "--json", help="Write the JSON result here ('-' for stdout)."
    ),
) -> None:
    """Explain predictions with SHAP: top contributors per row and global importance."""
    if fmt is OutputFormat.json:
        json_out = json_out or "-"
    with _guard():
        from bastion.monitoring.explain import explain_predictions
        from bastion.monitoring.io import read_table

        fitted = _load_model(model)
        frame = read_table(data)
        dropped = _split(drop)
        features = frame.drop(columns=[c for c in dropped if c in frame.columns]).reset_index(
            drop=True
        )
        bad = [r for r in row if not 0 <= r < len(features)]
        if bad:
            raise _bad_input(f"row(s) {bad} out of range: the data has {len(features)} rows")
        classes = list(getattr(fitted, "classes_", []))
        label: Any = None
        if positive is not None:
            label = next((c for c in classes if str(c) == positive), None)
            if label is None:
                raise _bad_input(
                    f"--positive {positive!r} is not one of the model's classes {classes}"
                )
        result = explain_predictions(
            fitted, features, row, top_k=top, pos_label=label, importance=importance
        )
        if json_out != "-":
            from bastion.cli.common import key_table

            out.print(f"explainer: {result.explainer} · output: {result.output}", highlight=False)
            for r in result.rows:
                rows = [
                    [
                        escape(c.feature),
                        escape(str(c.value)),
                        f"[{'red' if c.shap > 0 else 'blue'}]{c.shap:+.4g}[/]",
                    ]
                    for c in [*r.top_positive, *r.top_negative]
                ]
                out.print(
                    key_table(
                        ["feature", "value", "contribution"],
                        rows,
                        key=["feature", "contribution"],
                        right=["contribution"],
                        title=f"row {r.row}: prediction {r.prediction:.4g} "
                        f"(base {r.base_value:.4g})",
                    )
                )
            if result.global_importance:
                ranked = ", ".join(f"{f} {v:.3g}" for f, v in result.global_importance[:10])
                out.print(f"global importance (mean |SHAP|): {ranked}", highlight=False)
        _write_json(result.to_dict(), json_out)

        def html() -> str:
            from bastion.monitoring.reports import explanation_html

            return explanation_html(result)

        _write_report(html, report)
