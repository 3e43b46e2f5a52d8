"""Self-contained HTML reports (Jinja2) with charts drawn by the plotly.js bundle that the
``plotly`` package ships, inlined so the file opens offline and from an air-gapped CI
artifact store: no CDN, no external script."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

from bastion import __version__
from bastion.monitoring.drift import DriftReport
from bastion.monitoring.explain import ExplanationReport
from bastion.monitoring.fairness import FairnessReport
from bastion.monitoring.findings import Finding

REFERENCE_COLOR = "#6e7781"
CURRENT_COLOR = "#0969da"


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value)


def _render(context: dict[str, Any]) -> str:
    import jinja2
    from plotly.offline import get_plotlyjs

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("bastion.monitoring", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
    )
    env.filters["fmt"] = _fmt
    charts = [c for s in context["sections"] for c in s.get("charts", [])]
    return env.get_template("report.html.j2").render(
        plotly_js=get_plotlyjs(),
        charts=charts,
        version=__version__,
        generated_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        **context,
    )


def _findings(findings: list[Finding]) -> list[dict[str, Any]]:
    order = {"critical": 0, "warning": 1, "info": 2}
    items = [f.to_dict() for f in findings]
    return sorted(items, key=lambda f: order[f["severity"]])


def drift_html(report: DriftReport, *, title: str = "Data drift report") -> str:
    cols = report.columns
    rows = [
        {
            "bad": c.drifted,
            "cells": [
                c.column,
                c.role,
                c.kind,
                c.method,
                c.score_name,
                c.score,
                c.threshold,
                "DRIFT" if c.drifted else "ok",
                c.psi,
                c.psi_reading,
                c.jensenshannon,
                c.missing_reference,
                c.missing_current,
                ", ".join(c.new_categories[:5]),
            ],
        }
        for c in cols
    ]
    header = [
        "column",
        "role",
        "kind",
        "method",
        "score",
        "value",
        "threshold",
        "verdict",
        "PSI",
        "PSI reading",
        "JS distance",
        "missing (ref)",
        "missing (cur)",
        "new categories",
    ]
    scores = {
        "id": "drift-scores",
        "title": "PSI by column (retrain signal dashed)",
        "data": [
            {
                "type": "bar",
                "x": [c.column for c in cols],
                "y": [round(c.psi, 6) for c in cols],
                "marker": {"color": ["#cf222e" if c.drifted else CURRENT_COLOR for c in cols]},
            }
        ],
        "layout": {
            "shapes": [
                {
                    "type": "line",
                    "xref": "paper",
                    "x0": 0,
                    "x1": 1,
                    "y0": report.settings.psi_retrain,
                    "y1": report.settings.psi_retrain,
                    "line": {"dash": "dash", "color": "#cf222e"},
                }
            ]
        },
    }
    dists = []
    for i, c in enumerate(sorted(cols, key=lambda c: (not c.drifted, -c.psi))[:40]):
        if not c.chart:
            continue
        dists.append(
            {
                "id": f"dist-{i}",
                "title": f"{c.column} ({'drift' if c.drifted else 'no drift'}, {c.method})",
                "data": [
                    {
                        "type": "bar",
                        "name": "reference",
                        "x": c.chart["labels"],
                        "y": c.chart["reference"],
                        "marker": {"color": REFERENCE_COLOR},
                    },
                    {
                        "type": "bar",
                        "name": "current",
                        "x": c.chart["labels"],
                        "y": c.chart["current"],
                        "marker": {"color": CURRENT_COLOR},
                    },
                ],
                "layout": {"barmode": "group", "yaxis": {"title": {"text": "share"}}},
            }
        )
    drifted = report.drifted_columns
    verdict = (
        f"by the dataset rule (dataset drift when ≥ {report.settings.dataset_drift_share:.0%} "
        f"of the columns drift): {len(drifted)} of {sum(c.role == 'feature' for c in cols)} "
        f"columns drifted ({report.drift_share:.0%})"
        + (f": {', '.join(drifted)}" if drifted else "")
        + ("; the dataset drifted" if report.dataset_drift else "; no dataset drift")
        + ("; prediction drift" if report.prediction_drift else "")
    )
    left_out = [
        {
            "title": "Left out",
            "note": "Dates, times and identifiers drift by construction and are not compared: "
            + "; ".join(f"{name} ({why})" for name, why in report.skipped.items())
            + ".",
        }
    ]
    return _render(
        {
            "title": title,
            "subtitle": f"reference {report.n_reference:,} rows · "
            f"current {report.n_current:,} rows",
            "passed": report.passed,
            "verdict": verdict,
            "findings": _findings(report.findings),
            "sections": [
                {"title": "Columns", "table": {"header": header, "rows": rows}, "charts": [scores]},
                {
                    "title": "Distributions, reference vs current",
                    "note": "Numeric columns on the reference's quantile (PSI) bins; "
                    "categorical columns by category (top 30).",
                    "charts": dists,
                },
                *(left_out if report.skipped else []),
            ],
        }
    )


def fairness_html(report: FairnessReport, *, title: str = "Fairness report") -> str:
    checks = {
        "header": ["metric", "features", "value", "must be", "threshold", "verdict"],
        "rows": [
            {
                "bad": not c.passed,
                "cells": [
                    c.metric,
                    " & ".join(c.features),
                    c.value,
                    c.comparison,
                    c.threshold,
                    "pass" if c.passed else "FAIL",
                ],
            }
            for c in report.checks
        ],
    }
    sections: list[dict[str, Any]] = [{"title": "Checks", "table": checks}]
    for i, t in enumerate(report.tables):
        groups = t.groups
        sections.append(
            {
                "title": "Groups by " + " & ".join(t.features),
                "note": (
                    f"Not judged (fewer than {report.thresholds.min_group_size} rows): "
                    + ", ".join(t.excluded)
                )
                if t.excluded
                else "",
                "table": {
                    "header": ["group", "rows", "selection rate", "TPR", "FPR", "judged"],
                    "rows": [
                        {
                            "bad": False,
                            "cells": [
                                g["group"],
                                g["count"],
                                g["selection_rate"],
                                g["true_positive_rate"],
                                g["false_positive_rate"],
                                g["judged"],
                            ],
                        }
                        for g in groups
                    ],
                },
                "charts": [
                    {
                        "id": f"groups-{i}",
                        "title": "Rates by group",
                        "data": [
                            {
                                "type": "bar",
                                "name": name,
                                "x": [g["group"] for g in groups],
                                "y": [g[key] for g in groups],
                            }
                            for key, name in (
                                ("selection_rate", "selection rate"),
                                ("true_positive_rate", "TPR"),
                                ("false_positive_rate", "FPR"),
                            )
                        ],
                        "layout": {"barmode": "group"},
                    }
                ],
            }
        )
    failed = sum(not c.passed for c in report.checks)
    return _render(
        {
            "title": title,
            "subtitle": f"{report.n_rows:,} rows",
            "passed": report.passed,
            "verdict": f"{len(report.checks) - failed} of {len(report.checks)} checks passed",
            "findings": _findings(report.findings),
            "sections": sections,
        }
    )


def explanation_html(report: ExplanationReport, *, title: str = "Explanations") -> str:
    sections: list[dict[str, Any]] = []
    if report.global_importance:
        feats = report.global_importance[:30]
        sections.append(
            {
                "title": "Global importance (mean |SHAP|)",
                "charts": [
                    {
                        "id": "importance",
                        "title": "Mean |SHAP| by feature",
                        "data": [
                            {
                                "type": "bar",
                                "orientation": "h",
                                "y": [f for f, _ in feats][::-1],
                                "x": [v for _, v in feats][::-1],
                                "marker": {"color": CURRENT_COLOR},
                            }
                        ],
                        "layout": {"margin": {"l": 160}},
                    }
                ],
            }
        )
    for i, row in enumerate(report.rows):
        top = row.contributions[:15]
        sections.append(
            {
                "title": f"Row {row.row}: prediction {row.prediction:.4g} "
                f"(base {row.base_value:.4g})",
                "table": {
                    "header": ["feature", "value", "contribution"],
                    "rows": [{"bad": False, "cells": [c.feature, c.value, c.shap]} for c in top],
                },
                "charts": [
                    {
                        "id": f"row-{i}",
                        "title": "Contributions",
                        "data": [
                            {
                                "type": "bar",
                                "orientation": "h",
                                "y": [c.feature for c in top][::-1],
                                "x": [c.shap for c in top][::-1],
                                "marker": {
                                    "color": [
                                        "#cf222e" if c.shap > 0 else CURRENT_COLOR for c in top
                                    ][::-1]
                                },
                            }
                        ],
                        "layout": {"margin": {"l": 160}},
                    }
                ],
            }
        )
    return _render(
        {
            "title": title,
            "subtitle": f"{report.explainer} explainer · output: {report.output}",
            "passed": True,
            "verdict": f"{len(report.rows)} row(s) explained",
            "findings": [],
            "sections": sections,
        }
    )


def write_html(html: str, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out
