"""``bastion performance check``: model performance once labels arrive, from files or
from a served model's prediction log and its labels.

Exit codes as every check (:mod:`bastion.cli.checks`): 0 passed, 1 failed, 2 bad input.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from bastion.cli.common import OutputFormat

if TYPE_CHECKING:
    pass

from bastion.cli.checks import (
    ALERT_HELP,
    EXIT_FAILED,
    FORMAT_HELP,
    _bad_input,
    _from_log,
    _guard,
    _jsonable,
    _record,
    _send_alerts,
    _split,
    _write_json,
    err,
    out,
)

performance_app = typer.Typer(
    help="Model performance once labels arrive, against a reference period.",
    no_args_is_help=True,
)


class Task(StrEnum):
    auto = "auto"
    classification = "classification"
    regression = "regression"


@performance_app.command("check")
def performance_check(
    reference: Path | None = typer.Option(
        None,
        "--reference",
        "-r",
        help="Labelled predictions of the reference period (.parquet, .csv): the baseline.",
    ),
    current: Path | None = typer.Option(
        None, "--current", "-c", help="Labelled predictions now (.parquet, .csv)."
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        help="Read labelled predictions from this served model's prediction log and judge "
        "them against the metrics registered with its version.",
    ),
    version: int | None = typer.Option(
        None, "--version", min=1, help="With --model: only this version's predictions."
    ),
    target: str | None = typer.Option(None, help="Column with the true label or value."),
    prediction: str | None = typer.Option(None, help="Column with the model's prediction."),
    score: str | None = typer.Option(
        None, help="Column with the positive-class probability (adds ROC AUC, Brier, ECE)."
    ),
    task: Task = typer.Option(Task.auto, help="auto, classification or regression."),
    positive: str | None = typer.Option(
        None, "--positive-label", help="The positive class (default: 1 of 0/1, yes of yes/no)."
    ),
    prediction_positive: str | None = typer.Option(
        None,
        "--prediction-positive",
        help="The positive prediction when predictions are coded unlike the labels.",
    ),
    time_column: str | None = typer.Option(None, help="Judge each time window of this column."),
    window: str | None = typer.Option(
        None,
        help="With --time-column: each window's length (pandas offset alias: D, W, MS; "
        "default W). With --model: how far back the log is read (24h, 7d; default 7d).",
    ),
    segment: str | None = typer.Option(None, help="Comma-separated columns to judge by value."),
    tolerance: float = typer.Option(
        0.05, min=0.0, max=1.0, help="Tolerated drop of accuracy, F1, precision, recall, AUC."
    ),
    min_rows: int = typer.Option(50, min=1, help="Smaller windows are reported, not judged."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help=FORMAT_HELP),
    alert: bool = typer.Option(False, "--alert", help=ALERT_HELP),
    json_out: str | None = typer.Option(
        None, "--json", help="Write the JSON result here ('-' for stdout)."
    ),
) -> None:
    """Performance drift: metrics now against the reference period's; exit 1 when a
    metric falls by more than its tolerance (overall, or in a judged window/segment)."""
    if fmt is OutputFormat.json:
        json_out = json_out or "-"
    with _guard():
        from bastion.monitoring.config import PerformanceSettings
        from bastion.monitoring.io import read_table
        from bastion.monitoring.performance import judge_labelled
        from bastion.serving.checks import JUDGED

        segments = _split(segment)
        base: Any
        if model is not None:
            if reference is not None or current is not None or target or prediction:
                raise _bad_input(
                    "--model reads the prediction log and its labels: leave out --reference, "
                    "--current, --target and --prediction",
                    "invalid_option",
                )
            cur, base, target, prediction, score = _performance_from_log(
                model, window or "7d", version
            )
            window = "W"
        else:
            if current is None or target is None or prediction is None:
                raise _bad_input(
                    "give --current, --target and --prediction (a file of labelled "
                    "predictions), or --model to read the prediction log",
                    "invalid_option",
                )
            extra = [c for c in [score, time_column, *segments] if c]
            cur = read_table(current, list(dict.fromkeys([target, prediction, *extra])))
            base = (
                read_table(reference, [target, prediction, *([score] if score else [])])
                if reference is not None
                else None
            )
        judged = judge_labelled(
            cur,
            target=target,
            prediction=prediction,
            score=score,
            baseline=base,
            task=None if task is Task.auto else task.value,  # type: ignore[arg-type]
            positive=positive,
            prediction_positive=prediction_positive,
            time_column=time_column,
            window=window or "W",
            segments=segments,
            settings=PerformanceSettings(
                tolerances={m: tolerance for m in JUDGED},
                min_rows=min_rows,
            ),
        )
        result = judged.report
        labels: dict[str, Any] = {"positive": judged.positive, "dropped": judged.dropped}
        payload = result.to_dict() | {
            "positive": {k: _jsonable(v) for k, v in labels.get("positive", {}).items()}
        }
        if json_out != "-":
            _print_performance(result, labels)
        _write_json(payload, json_out)
        sent = _send_alerts(result.findings) if alert else False
        _record("performance", model, result.findings, sent)
    if not result.passed:
        raise typer.Exit(EXIT_FAILED)


def _performance_from_log(
    model: str, window: str, version: int | None
) -> tuple[Any, dict[str, float], str, str, str | None]:
    """The window's labelled predictions and the metrics registered with its version
    (:func:`bastion.serving.checks.log_performance`)."""
    from bastion.serving.checks import log_performance
    from bastion.serving.monitor import LABEL, PREDICTION, parse_window

    length = parse_window(window)
    labelled = _from_log(lambda db: log_performance(db, model, length, version=version))
    err.print(
        f"{model}: {len(labelled.frame)} labelled of {len(labelled.window.frame)} logged "
        f"predictions in the last {window}, judged against v{labelled.window.version}'s "
        "registered metrics",
        highlight=False,
    )
    return labelled.frame, labelled.baseline, LABEL, PREDICTION, labelled.score


def _print_performance(result: Any, labels: dict[str, Any]) -> None:
    from bastion.cli.common import key_table

    base, now = result.baseline, result.overall
    rows = []
    degraded = {f.details.get("metric") for f in result.findings if f.subject == "overall"}
    for metric, value in now.items():
        b = base.get(metric)
        rows.append(
            [
                metric,
                f"{b:.4g}" if b is not None else "",
                f"{value:.4g}",
                f"{value - b:+.4g}" if b is not None else "",
                "[red]WORSE[/]" if metric in degraded else "[green]ok[/]" if b is not None else "",
            ]
        )
    out.print(
        key_table(
            ["metric", "reference", "current", "change", "verdict"],
            rows,
            key=["metric", "verdict"],
            right=["reference", "current", "change"],
            title=f"Performance ({result.task})",
        )
    )
    positive = labels.get("positive") or {}
    if positive and all(v is not None for v in positive.values()):
        out.print(
            "positive class: " + ", ".join(f"{k} = {_jsonable(v)!r}" for k, v in positive.items()),
            highlight=False,
        )
    judged = [w for w in result.windows if w["judged"]]
    if result.windows:
        out.print(
            f"windows/segments: {len(result.windows)} ({len(judged)} judged, "
            f"the rest under the minimum rows)",
            highlight=False,
        )
    for f in result.findings:
        if f.subject != "overall":
            out.print(f"  [yellow]•[/] {escape(f.message)}", highlight=False)
    if not base:
        out.print("no reference given: metrics reported, nothing judged", highlight=False)
    status = "[bold green]PASSED[/]" if result.passed else "[bold red]FAILED[/]"
    out.print(
        f"verdict: {status}, {len(result.findings)} metric(s) worse than the reference "
        "by more than the tolerance",
        highlight=False,
    )
