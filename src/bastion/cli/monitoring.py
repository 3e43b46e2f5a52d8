"""``bastion drift check`` and ``bastion drift embeddings``: data, prediction and
embedding drift, from files or from a served model's prediction log.

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
    from bastion.monitoring.drift import DriftReport

from bastion.cli.checks import (
    ALERT_HELP,
    EXIT_FAILED,
    FORMAT_HELP,
    _bad_input,
    _from_log,
    _guard,
    _progress,
    _record,
    _send_alerts,
    _split,
    _write_json,
    _write_report,
    err,
    out,
)

drift_app = typer.Typer(
    help="Data and prediction drift between a reference and current data.", no_args_is_help=True
)


# --- drift -----------------------------------------------------------------------------
class FailOn(StrEnum):
    column = "column"
    dataset = "dataset"


def _drift_verdict(report: DriftReport, fail_on: FailOn) -> list[str]:
    """The closing lines: what drifted, the dataset rule and its verdict, and which of
    the two decides the exit code, so a passed dataset rule never reads as "no drift"."""
    features = [c for c in report.columns if c.role == "feature" and c.method != "none"]
    drifted = report.drifted_columns
    rule = report.settings.dataset_drift_share
    lines = [
        f"columns: {len(drifted)} of {len(features)} drifted"
        + (f" ({', '.join(drifted)})" if drifted else ""),
        f"dataset rule: dataset drift when ≥ {rule:.0%} of the columns drift; "
        f"{report.drift_share:.0%} did, so "
        + ("[red]the dataset drifted[/]" if report.dataset_drift else "no dataset drift"),
    ]
    if any(c.role == "prediction" for c in report.columns):
        lines.append(
            "predictions: " + ("[red]drifted[/]" if report.prediction_drift else "no drift")
        )
    retrain = report.retrain_columns
    if retrain:
        lines.append(
            f"retrain signal (PSI > {report.settings.psi_retrain:g}): {', '.join(retrain)}"
        )
    if report.skipped:
        lines.append(
            "left out: " + "; ".join(f"{name} ({why})" for name, why in report.skipped.items())
        )
    failed = report.failed(fail_on.value)
    if fail_on is FailOn.column:
        why = (f"{len(drifted)} column(s) drifted" if drifted else "no column drifted") + (
            " and the predictions drifted" if report.prediction_drift else ""
        )
    else:
        why = (
            "the dataset drifted"
            if report.dataset_drift
            else "the predictions drifted"
            if report.prediction_drift
            else "no dataset drift"
            + (f" ({len(drifted)} column(s) drifted below the rule)" if drifted else "")
        )
    verdict = "[bold red]FAILED[/]" if failed else "[bold green]PASSED[/]"
    lines.append(f"verdict (--fail-on {fail_on.value}): {verdict}, {why}")
    return lines


def _print_drift(report: DriftReport, fail_on: FailOn) -> None:
    from bastion.cli.common import key_table

    rows = []
    for c in report.columns:
        verdict = "[red]DRIFT[/]" if c.drifted else "[green]ok[/]"
        if c.method == "none":
            verdict = "[yellow]not judged[/]"
        rows.append(
            [
                c.column + (" (prediction)" if c.role == "prediction" else ""),
                c.method,
                f"{c.score:.3g} / {c.threshold:g}",
                verdict,
                f"{c.psi:.3f}",
                f"{c.missing_reference:.1%}→{c.missing_current:.1%}",
            ]
        )
    out.print(
        key_table(
            ["column", "method", "score / threshold", "verdict", "PSI", "missing"],
            rows,
            key=["column", "method", "verdict"],
            right=["PSI"],
            title="Drift by column",
        )
    )
    for f in report.findings:
        if f.kind in ("missing_rate", "new_categories"):
            out.print(f"  [yellow]•[/] {escape(f.message)}", highlight=False)
    for line in _drift_verdict(report, fail_on):
        out.print(line, highlight=False)


@drift_app.command("check")
def drift_check(
    reference: Path | None = typer.Option(
        None,
        "--reference",
        "-r",
        help="Reference data (.parquet, .csv) or a saved profile (.json).",
    ),
    current: Path | None = typer.Option(
        None, "--current", "-c", help="Current data (.parquet, .csv)."
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        help="Read the current data from the prediction log of this served model, and the "
        "reference from the drift baseline registered with its version.",
    ),
    log_window: str = typer.Option(
        "24h", "--window", help="With --model: how far back the log is read (30m, 24h, 7d)."
    ),
    version: int | None = typer.Option(
        None, "--version", min=1, help="With --model: only this version's predictions."
    ),
    columns: str | None = typer.Option(
        None, help="Comma-separated columns to check (default: all but dates, times and ids)."
    ),
    prediction: str | None = typer.Option(
        None, help="Comma-separated prediction columns (prediction drift fails the check)."
    ),
    categorical: str | None = typer.Option(None, help="Columns to treat as categorical."),
    numerical: str | None = typer.Option(None, help="Columns to treat as numeric."),
    keep: str | None = typer.Option(
        None, help="Columns to compare even if they look like dates, times or identifiers."
    ),
    exclude: str | None = typer.Option(None, help="Columns to leave out of the check."),
    method: str = typer.Option(
        "auto", help="auto (Evidently's rule), ks, chisquare, z, wasserstein, jensenshannon or psi."
    ),
    drift_share: float = typer.Option(
        0.5, help="Share of drifted columns that makes dataset drift."
    ),
    fail_on: FailOn = typer.Option(
        FailOn.dataset,
        "--fail-on",
        help="Exit 1 when the dataset rule fails (dataset) or when any column drifts "
        "(column). Prediction drift fails either way.",
    ),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help=FORMAT_HELP),
    alert: bool = typer.Option(False, "--alert", help=ALERT_HELP),
    report: Path | None = typer.Option(
        None, "--report", help="Write a self-contained HTML report here."
    ),
    json_out: str | None = typer.Option(
        None, "--json", help="Write the JSON result here ('-' for stdout)."
    ),
    save_reference: Path | None = typer.Option(
        None, help="Store the reference profile (JSON) for later runs."
    ),
    batch_rows: int = typer.Option(1_000_000, min=1000, help="Rows per streamed window."),
) -> None:
    """Compare current data with the reference; exit 1 on dataset or prediction drift
    (or on any drifted column with --fail-on column).

    Date/time columns (datetime types, text that parses as timestamps), calendar parts
    (year, month, day, ...) and identifiers are left out and named in the report; list
    them in --keep to compare them anyway.
    """
    if fmt is OutputFormat.json:
        json_out = json_out or "-"
    with _guard():
        from pydantic import ValidationError

        from bastion.monitoring.config import DriftSettings
        from bastion.monitoring.drift import compare
        from bastion.monitoring.io import open_table
        from bastion.monitoring.profiles import Profile, fit_reference, profile_current

        try:
            settings = DriftSettings(method=method, dataset_drift_share=drift_share)
        except ValidationError as exc:
            raise _bad_input(
                f"bad drift settings: {exc.errors()[0]['msg']}", "invalid_option"
            ) from None
        cols = _split(columns)
        preds = _split(prediction)
        wanted = [*cols, *[p for p in preds if p not in cols]] if cols else None
        if model is not None:
            ref, cur = _drift_from_log(model, log_window, version, reference, current)
        elif reference is None or current is None:
            raise _bad_input(
                "give --reference and --current (files), or --model to read the prediction log",
                "invalid_option",
            )
        elif reference.suffix.lower() == ".json":
            if keep or exclude:
                raise _bad_input(
                    "--keep and --exclude apply when the reference is profiled; with a stored "
                    "profile choose the columns with --columns",
                    "invalid_option",
                )
            ref = Profile.load(reference)
        else:
            ref_src = open_table(reference)
            with _progress(ref_src.num_rows, "profiling reference") as tick:
                ref = fit_reference(
                    ref_src,
                    columns=wanted,
                    categorical=_split(categorical),
                    numerical=_split(numerical),
                    settings=settings,
                    batch_rows=batch_rows,
                    progress=tick,
                    keep=[*_split(keep), *preds],
                    exclude=_split(exclude),
                )
        if save_reference:
            ref.save(save_reference)
            err.print(f"reference profile written to {save_reference}")
        if model is None:
            assert current is not None
            cur_src = open_table(current)
            with _progress(cur_src.num_rows, "profiling current") as tick:
                cur = profile_current(cur_src, ref, batch_rows=batch_rows, progress=tick)
        result = compare(ref, cur, settings=settings, columns=cols or None, prediction=preds)
        failed = result.failed(fail_on.value)
        if json_out != "-":
            _print_drift(result, fail_on)
        _write_json(result.to_dict() | {"fail_on": fail_on.value, "failed": failed}, json_out)

        def html() -> str:
            from bastion.monitoring.reports import drift_html

            return drift_html(result)

        _write_report(html, report)
        sent = _send_alerts(result.findings) if alert else False
        _record("drift", model, result.findings, sent)
    if failed:
        raise typer.Exit(EXIT_FAILED)


def _drift_from_log(
    model: str, window: str, version: int | None, reference: Path | None, current: Path | None
) -> tuple[Any, Any]:
    """The registered baseline and the logged window's profile, over the columns the
    log kept (:func:`bastion.serving.checks.log_drift`)."""
    from bastion.serving.checks import log_drift
    from bastion.serving.monitor import parse_window

    if reference is not None or current is not None:
        raise _bad_input(
            "--model reads the prediction log and the registered baseline: leave out "
            "--reference and --current",
            "invalid_option",
        )
    length = parse_window(window)
    drift = _from_log(lambda db: log_drift(db, model, length, version=version))
    err.print(
        f"{model}: {len(drift.window.frame)} logged predictions in the last {window} "
        f"(v{drift.window.version} judged against its registered baseline)",
        highlight=False,
    )
    return drift.reference, drift.current


# --- embeddings ------------------------------------------------------------------------
EMBEDDING_METHODS = ("domain_classifier", "mmd", "pca_reconstruction")


@drift_app.command("embeddings")
def drift_embeddings(
    reference: Path = typer.Option(
        ..., "--reference", "-r", help="Reference vectors: .npy, or .parquet/.csv."
    ),
    current: Path = typer.Option(..., "--current", "-c", help="Current vectors, same format."),
    column: str | None = typer.Option(
        None,
        help="The column holding the vectors (a Parquet list column or JSON arrays in a CSV); "
        "default: every numeric column is one dimension.",
    ),
    method: str = typer.Option(
        ",".join(EMBEDDING_METHODS), help="Comma-separated: " + ", ".join(EMBEDDING_METHODS) + "."
    ),
    seed: int = typer.Option(0, help="Random seed (sampling, folds, permutations)."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help=FORMAT_HELP),
    alert: bool = typer.Option(False, "--alert", help=ALERT_HELP),
    json_out: str | None = typer.Option(
        None, "--json", help="Write the JSON result here ('-' for stdout)."
    ),
) -> None:
    """Embedding drift (text, queries, images): a domain classifier, MMD and PCA
    reconstruction; exit 1 when any of them finds drift."""
    if fmt is OutputFormat.json:
        json_out = json_out or "-"
    with _guard():
        from bastion.monitoring.embeddings import embedding_drift
        from bastion.monitoring.io import read_vectors

        methods = tuple(_split(method))
        unknown = [m for m in methods if m not in EMBEDDING_METHODS]
        if unknown or not methods:
            raise _bad_input(
                f"--method {method!r}: choose from {', '.join(EMBEDDING_METHODS)}",
                "invalid_option",
            )
        ref = read_vectors(reference, column)
        cur = read_vectors(current, column)
        result = embedding_drift(ref, cur, methods=methods, seed=seed)
        if json_out != "-":
            from bastion.cli.common import key_table

            rows = [
                [
                    c.method,
                    f"{c.score:.4g}",
                    f"{'<' if c.method == 'mmd' else '≥'} {c.threshold:g}",
                    "[red]DRIFT[/]" if c.drifted else "[green]ok[/]",
                ]
                for c in result.checks
            ]
            out.print(
                key_table(
                    ["method", "score", "drift when", "verdict"],
                    rows,
                    key=["method", "verdict"],
                    title=f"Embedding drift: {result.n_reference} reference and "
                    f"{result.n_current} current vectors, {result.dimensions} dimensions",
                )
            )
            drifted = [c.method for c in result.checks if c.drifted]
            out.print(
                "verdict: "
                + (
                    f"[bold red]FAILED[/], drift by {', '.join(drifted)}"
                    if drifted
                    else "[bold green]PASSED[/], no method finds drift"
                ),
                highlight=False,
            )
        _write_json(result.to_dict(), json_out)
        if alert:
            _send_alerts(result.findings)
    if not result.passed:
        raise typer.Exit(EXIT_FAILED)
