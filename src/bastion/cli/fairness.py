"""``bastion fairness check``: group fairness of a classifier's decisions (Fairlearn).

Exit codes as every check (:mod:`bastion.cli.checks`): 0 passed, 1 failed, 2 bad input.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from bastion.cli.common import OutputFormat

if TYPE_CHECKING:
    from bastion.monitoring.fairness import FairnessReport

from bastion.cli.checks import (
    ALERT_HELP,
    EXIT_FAILED,
    FORMAT_HELP,
    _bad_input,
    _guard,
    _jsonable,
    _send_alerts,
    _split,
    _write_json,
    _write_report,
    out,
)

fairness_app = typer.Typer(help="Group fairness of a classifier's decisions.", no_args_is_help=True)


def _print_fairness(report: FairnessReport) -> None:
    from bastion.cli.common import key_table

    table = key_table(
        ["metric", "features", "value", "must be", "verdict"],
        [
            [
                c.metric,
                " & ".join(c.features),
                f"{c.value:.3f}",
                f"{c.comparison} {c.threshold:g}",
                "[green]pass[/]" if c.passed else "[red]FAIL[/]",
            ]
            for c in report.checks
        ],
        key=["metric", "verdict"],
        right=["value"],
        title="Fairness checks",
    )
    out.print(table)
    for t in report.tables:
        if len(t.features) == 1:
            rates = ", ".join(f"{g['group']} {g['selection_rate']:.3f}" for g in t.groups[:12])
            out.print(f"  selection rate by {t.features[0]}: {rates}", highlight=False)
    failed = sum(not c.passed for c in report.checks)
    status = "[bold green]PASSED[/]" if report.passed else "[bold red]FAILED[/]"
    out.print(
        f"{status}: {len(report.checks) - failed} of {len(report.checks)} checks passed",
        highlight=False,
    )


@fairness_app.command("check")
def fairness_check(
    data: Path = typer.Option(..., "--data", "-d", help="Labelled predictions (.parquet, .csv)."),
    target: str = typer.Option(..., help="Column with the true label."),
    prediction: str = typer.Option(..., help="Column with the model's decision (a label)."),
    sensitive: str = typer.Option(..., help="Comma-separated sensitive features, e.g. sex,race."),
    positive: str | None = typer.Option(
        None,
        "--positive-label",
        "--positive",
        help="The favourable label, e.g. '>50K' (default: 1 of 0/1, true of true/false, "
        "yes of yes/no; other labels must be named).",
    ),
    prediction_positive: str | None = typer.Option(
        None,
        "--prediction-positive",
        help="The favourable prediction when predictions are coded unlike the labels "
        "(default: --positive-label if the predictions hold it, else inferred as above).",
    ),
    max_dp_difference: float = typer.Option(
        0.1, help="Demographic parity difference must be ≤ this."
    ),
    min_dp_ratio: float = typer.Option(0.8, help="Demographic parity ratio must be ≥ this."),
    max_eo_difference: float = typer.Option(0.1, help="Equalized odds difference must be ≤ this."),
    four_fifths: float = typer.Option(0.8, help="Lowest/highest selection rate must be ≥ this."),
    min_group_size: int = typer.Option(30, help="Smaller groups are reported, not judged."),
    intersectional: bool = typer.Option(
        True, help="Also judge the combination of the sensitive features."
    ),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help=FORMAT_HELP),
    alert: bool = typer.Option(False, "--alert", help=ALERT_HELP),
    report: Path | None = typer.Option(
        None, "--report", help="Write a self-contained HTML report here."
    ),
    json_out: str | None = typer.Option(
        None, "--json", help="Write the JSON result here ('-' for stdout)."
    ),
) -> None:
    """Judge group fairness; exit 1 when any threshold is crossed.

    Labels and predictions may be coded differently (income '>50K' against 0/1
    predictions): name the favourable label with --positive-label; 0/1, true/false and
    yes/no columns are read without it.
    """
    if fmt is OutputFormat.json:
        json_out = json_out or "-"
    with _guard():
        from pydantic import ValidationError

        from bastion.monitoring.config import FairnessThresholds
        from bastion.monitoring.fairness import fairness_from_frame
        from bastion.monitoring.io import read_table
        from bastion.monitoring.labels import binary_columns

        try:
            thresholds = FairnessThresholds(
                demographic_parity_difference=max_dp_difference,
                demographic_parity_ratio=min_dp_ratio,
                equalized_odds_difference=max_eo_difference,
                four_fifths=four_fifths,
                min_group_size=min_group_size,
                intersectional=intersectional,
            )
        except ValidationError as exc:
            raise _bad_input(
                f"bad thresholds: {exc.errors()[0]['msg']}", "invalid_option"
            ) from None
        features = _split(sensitive)
        frame = read_table(data, list(dict.fromkeys([target, prediction, *features])))
        binary, t_label, p_label, dropped = binary_columns(
            frame, target, prediction, positive=positive, prediction_positive=prediction_positive
        )
        result = fairness_from_frame(
            binary,
            target=target,
            prediction=prediction,
            sensitive=features,
            thresholds=thresholds,
            pos_label=1,
        )
        payload = result.to_dict() | {
            "positive": {
                target: _jsonable(t_label.positive),
                prediction: _jsonable(p_label.positive),
            },
            "rows_without_label_or_prediction": dropped,
        }
        if json_out != "-":
            out.print(
                f"positive class: {t_label.describe()}, {p_label.describe()}"
                + (f"; {dropped} rows without a label or prediction left out" if dropped else ""),
                highlight=False,
            )
            _print_fairness(result)
        _write_json(payload, json_out)

        def html() -> str:
            from bastion.monitoring.reports import fairness_html

            return fairness_html(result)

        _write_report(html, report)
        if alert:
            _send_alerts(result.findings)
    if not result.passed:
        raise typer.Exit(EXIT_FAILED)
