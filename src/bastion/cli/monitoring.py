"""``bastion drift check``, ``bastion fairness check`` and ``bastion explain``.

Exit codes, for CI gates: 0 the check passed, 1 the check failed, 2 bad input (a missing
file or column, an unreadable model) with a message saying what to fix. Heavy libraries
are imported inside the commands so ``bastion --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from bastion.cli.common import OutputFormat

if TYPE_CHECKING:
    from bastion.monitoring.drift import DriftReport
    from bastion.monitoring.fairness import FairnessReport
    from bastion.monitoring.findings import Finding

drift_app = typer.Typer(
    help="Data and prediction drift between a reference and current data.", no_args_is_help=True
)
fairness_app = typer.Typer(help="Group fairness of a classifier's decisions.", no_args_is_help=True)

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
PROGRESS_MIN_ROWS = 1_000_000

out = Console()
err = Console(stderr=True)


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def _bad_input(message: str, code: str = "invalid_request") -> typer.Exit:
    text = message if message.endswith("]") else f"{message} [{code}]"
    err.print(f"[bold red]error:[/] {escape(text)}", highlight=False, soft_wrap=True)
    return typer.Exit(EXIT_BAD_INPUT)


@contextmanager
def _guard() -> Iterator[None]:
    """Map domain errors to exit code 2 with their message."""
    from bastion.errors import BastionError

    try:
        yield
    except BastionError as exc:
        raise _bad_input(f"{exc.message} [{exc.code}]") from None
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        raise _bad_input(str(exc), "file_unreadable") from None


def _jsonable(value: Any) -> Any:
    """A NumPy scalar as its Python value (for a label in the JSON output)."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def _write_json(payload: dict[str, Any], target: str | None) -> None:
    if not target:
        return
    text = json.dumps(payload, indent=2, default=str)
    if target == "-":
        sys.stdout.write(text + "\n")
    else:
        Path(target).write_text(text + "\n", encoding="utf-8")
        err.print(f"JSON written to {target}")


def _write_report(html: Callable[[], str], target: Path | None) -> None:
    if target is None:
        return
    from bastion.monitoring.reports import write_html

    write_html(html(), target)
    err.print(f"HTML report written to {target}")


@contextmanager
def _progress(total: int | None, label: str) -> Iterator[Callable[[int], None] | None]:
    if total is not None and total < PROGRESS_MIN_ROWS:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda rows: bar.advance(task, rows)


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


def _record(
    check: Literal["drift", "performance"], model: str | None, findings: list[Finding], sent: bool
) -> None:
    """A check of a model's prediction log is kept for /metrics (bastion.monitoring.signals)."""
    if model is None:
        return
    from bastion.monitoring.signals import record_check

    _from_log(lambda db: record_check(db, check, model, findings, alerted=sent))


def _send_alerts(findings: list[Finding]) -> bool:
    """Route findings through the policy's ``monitoring.alert_rules`` (``--alert``);
    True when an alert was sent."""
    from bastion.cli.common import load_settings
    from bastion.monitoring.alerts import AlertRouter
    from bastion.monitoring.errors import MonitoringError
    from bastion.policy import load_policy

    settings = load_settings()
    monitoring = load_policy(settings.policy_path).policy.monitoring
    if not monitoring.alert_rules:
        raise MonitoringError(
            f"--alert: the policy {settings.policy_path} has no monitoring.alert_rules; "
            "add a rule and a notifier (docs/monitoring.md, Alerts)",
            code="monitoring_no_alert_rules",
        )
    deliveries = AlertRouter.from_policy(monitoring).dispatch(findings)
    if not deliveries:
        err.print("alerts: no finding matched an alert rule", highlight=False)
    for d in deliveries:
        text = f"alert {d.rule} → {d.notifier}: {d.status} ({len(d.fingerprints)} finding(s))"
        if d.status == "failed":
            err.print(
                f"[yellow]warning:[/] {escape(text)}: {escape(d.error)} "
                "\\[monitoring_notifier_failed]",
                highlight=False,
                soft_wrap=True,
            )
        else:
            err.print(escape(text), highlight=False)
    return any(d.status == "sent" for d in deliveries)


ALERT_HELP = "Send the findings through the policy's monitoring.alert_rules (webhooks, log)."
FORMAT_HELP = "table (for people) or json (the JSON result on standard output)."


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


T = TypeVar("T")


def _from_log(read: Callable[[Any], T]) -> T:
    """Run ``read(db)`` on the governance database; its errors exit 2 like the other
    bad inputs of these checks (the runtime's own handler would exit 1)."""
    from bastion.cli.common import runtime
    from bastion.errors import BastionError

    problem: BastionError | None = None
    with runtime() as rt:
        try:
            return read(rt.db)
        except BastionError as exc:
            problem = exc
    raise problem


def _drift_from_log(
    model: str, window: str, version: int | None, reference: Path | None, current: Path | None
) -> tuple[Any, Any]:
    """The registered baseline and the logged window's profile, over the columns the
    log kept."""
    import dataclasses

    from bastion.monitoring.profiles import profile_current
    from bastion.serving.errors import FeaturesNotKept
    from bastion.serving.monitor import parse_window, read_window, registered_baseline

    if reference is not None or current is not None:
        raise _bad_input(
            "--model reads the prediction log and the registered baseline: leave out "
            "--reference and --current",
            "invalid_option",
        )
    length = parse_window(window)
    win, ref = _from_log(
        lambda db: (
            (w := read_window(db, model, length, version=version)),
            registered_baseline(db, model, w.version),
        )
    )
    frame = win.frame
    kept = [c for c in ref.columns if c in frame.columns and frame[c].notna().any()]
    if not kept:
        raise FeaturesNotKept(
            f"the log of {model!r} kept no feature of the baseline (the policy's "
            "serving.features rule is digest): drift cannot be checked from it"
        )
    ref = dataclasses.replace(ref, columns={c: ref.columns[c] for c in kept})
    err.print(
        f"{model}: {len(frame)} logged predictions in the last {window} "
        f"(v{win.version} judged against its registered baseline)",
        highlight=False,
    )
    return ref, profile_current(frame[kept], ref)


# --- fairness --------------------------------------------------------------------------
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


# --- performance -----------------------------------------------------------------------
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
        from bastion.monitoring.performance import evaluate_performance

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
        chosen = None if task is Task.auto else task.value
        if chosen is None:
            import pandas as pd

            numeric = pd.api.types.is_float_dtype(cur[target]) and cur[target].nunique() > 20
            chosen = "regression" if numeric else "classification"
        labels: dict[str, Any] = {}
        if chosen == "classification":
            cur, t_label, p_label, dropped = binary_or_multiclass(
                cur, target, prediction, positive, prediction_positive
            )
            labels = {"positive": {target: t_label, prediction: p_label}, "dropped": dropped}
            if base is not None and not isinstance(base, dict):
                base = binary_or_multiclass(
                    base, target, prediction, positive, prediction_positive
                )[0]
        settings = PerformanceSettings(
            tolerances={m: tolerance for m in ("accuracy", "f1", "roc_auc", "precision", "recall")},
            min_rows=min_rows,
        )
        result = evaluate_performance(
            cur,
            target=target,
            prediction=prediction,
            score=score,
            baseline=base,
            task=chosen,  # type: ignore[arg-type]
            time_column=time_column,
            window=window or "W",
            segments=segments,
            pos_label=1,
            settings=settings,
        )
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
    """The window's labelled predictions and the metrics registered with its version."""
    from bastion.serving.monitor import (
        LABEL,
        PREDICTION,
        SCORE,
        parse_window,
        read_window,
        registered_metrics,
    )

    length = parse_window(window)
    win, registered = _from_log(
        lambda db: (
            (w := read_window(db, model, length, version=version)),
            registered_metrics(db, model, w.version),
        )
    )
    frame = win.frame.dropna(subset=[LABEL])
    if frame.empty:
        raise _bad_input(
            f"none of the {len(win.frame)} predictions of {model!r} in the last {window} has "
            "a label yet: attach them with `bastion labels add FILE` or POST /api/labels",
            "no_labels",
        )
    judged = ("accuracy", "f1", "roc_auc", "precision", "recall")
    base = {k: v for k, v in registered.items() if k in judged}
    score = SCORE if frame[SCORE].notna().all() else None
    err.print(
        f"{model}: {len(frame)} labelled of {len(win.frame)} logged predictions in the last "
        f"{window}, judged against v{win.version}'s registered metrics",
        highlight=False,
    )
    return frame[[LABEL, PREDICTION, SCORE]], base, LABEL, PREDICTION, score


def binary_or_multiclass(
    frame: Any, target: str, prediction: str, positive: str | None, prediction_positive: str | None
) -> tuple[Any, Any, Any, int]:
    """Binary labels as 0/1 (1 the positive class); a multiclass task as it is."""
    from bastion.monitoring.labels import AmbiguousLabel, binary_columns

    try:
        binary, t, p, dropped = binary_columns(
            frame, target, prediction, positive=positive, prediction_positive=prediction_positive
        )
    except AmbiguousLabel:
        truth = {str(v) for v in frame[target].dropna().unique()}
        predicted = {str(v) for v in frame[prediction].dropna().unique()}
        if positive is None and len(truth) > 2 and predicted <= truth:
            # multiclass, scored with macro averages; labels compared as text
            data = frame.dropna(subset=[target, prediction]).copy()
            data[target] = data[target].astype(str)
            data[prediction] = data[prediction].astype(str)
            return data, None, None, len(frame) - len(data)
        raise
    return binary, t.positive, p.positive, dropped


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
