"""The Monitoring page: drift per feature over time, performance once labels arrived,
fairness by group, the findings an alert rule routes (with their evidence), and the
HTML reports of the same window.

The page calls :func:`~bastion.serving.watch.watch_model`; a report is
:func:`~bastion.serving.watch.report_html`, served as a sandboxed document (its charts
are plotly.js inlined, so it also opens offline once saved).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from bastion.api.deps import RuntimeDep
from bastion.auth.permissions import Permission
from bastion.auth.principal import Principal
from bastion.serving.watch import WatchView, report_html, watch_model
from bastion.web.frame import CHART_CSP, render, ui_requires

router = APIRouter(include_in_schema=False)

Reader = Annotated[Principal, Depends(ui_requires(Permission.MONITORING_READ))]

#: A report runs its own inline scripts (plotly.js and its charts) in a sandbox: an
#: opaque origin with no cookies, no requests, nothing of the dashboard in reach.
REPORT_CSP = (
    "sandbox allow-scripts; default-src 'none'; script-src 'unsafe-inline'; "
    "style-src 'unsafe-inline'; img-src data: blob:; font-src data:; frame-ancestors 'none'"
)
#: plotly.js sets style attributes on what it draws (heatmaps, colour bars, legends),
#: which no hash admits: this page's styles may be inline (plotly.js issue #2355);
#: scripts stay this server's files only.
WINDOWS = ("24h", "7d", "30d")
PALETTE = ("#0969da", "#cf222e", "#1a7f37", "#9a6700", "#8250df", "#bf3989")


def charts(view: WatchView) -> dict[str, dict[str, Any]]:
    """The page's plotly figures, as data (the frame's charts.js draws them)."""
    out: dict[str, dict[str, Any]] = {}
    if view.drift:
        features = [d.feature for d in view.drift][:30]
        out["drift-heatmap"] = {
            "data": [
                {
                    "type": "heatmap",
                    "x": view.buckets,
                    "y": features,
                    "z": [d.psi_by_bucket for d in view.drift[:30]],
                    "colorscale": "YlOrRd",
                    "reversescale": True,
                    "zmin": 0,
                    "zmax": 0.5,
                    "colorbar": {"title": {"text": "PSI"}},
                    "hovertemplate": "%{y} · %{x}<br>PSI %{z:.3f}<extra></extra>",
                }
            ],
            "layout": {
                "title": {"text": "PSI per feature and period (≥ 0.25: drift)"},
                "margin": {"l": 130},
                "height": max(260, 26 * len(features) + 90),
                "xaxis": {"type": "category"},
            },
        }
    if view.performance:
        metrics = [m for m in ("accuracy", "f1", "roc_auc") if view.performance[0].metrics.get(m)]
        traces: list[dict[str, Any]] = []
        for i, metric in enumerate(metrics):
            colour = PALETTE[i % len(PALETTE)]
            traces.append(
                {
                    "type": "scatter",
                    "mode": "lines+markers",
                    "name": metric,
                    "x": [p.bucket for p in view.performance],
                    "y": [p.metrics.get(metric) for p in view.performance],
                    "line": {"color": colour},
                }
            )
            base = view.performance_baseline.get(metric)
            if base is not None:
                traces.append(
                    {
                        "type": "scatter",
                        "mode": "lines",
                        "name": f"{metric} (registered)",
                        "x": [p.bucket for p in view.performance],
                        "y": [base] * len(view.performance),
                        "line": {"color": colour, "dash": "dash"},
                    }
                )
        out["performance"] = {
            "data": traces,
            "layout": {
                "title": {"text": "Performance per period (dashed: registered)"},
                "xaxis": {"type": "category"},
                "height": 320,
            },
        }
    for i, table in enumerate(view.fairness):
        if len(table.features) != 1:  # intersections are tables, not charts
            continue
        groups = [g for g in table.groups if g.get("selection_rate") is not None]
        out[f"fairness-{i}"] = {
            "data": [
                {
                    "type": "bar",
                    "name": label,
                    "x": [str(g["group"]) for g in groups],
                    "y": [g.get(key) for g in groups],
                }
                for key, label in (
                    ("selection_rate", "selection rate"),
                    ("true_positive_rate", "TPR"),
                    ("false_positive_rate", "FPR"),
                )
            ],
            "layout": {
                "barmode": "group",
                "title": {"text": " & ".join(table.features)},
                "height": 300,
            },
        }
    return out


@router.get("/ui/monitoring")
def monitoring_page(
    request: Request, runtime: RuntimeDep, _: Reader, model: str | None = None, window: str = "7d"
) -> HTMLResponse:
    view = watch_model(runtime.db, runtime.policy.policy.monitoring, model, window)
    return render(
        request,
        "monitoring.html",
        {"w": view, "charts": charts(view), "windows": WINDOWS},
        headers={"Content-Security-Policy": CHART_CSP},
    )


@router.get("/ui/monitoring/{model}/reports/{kind}")
def report(model: str, kind: str, runtime: RuntimeDep, _: Reader, window: str = "7d") -> Response:
    html = report_html(runtime.db, runtime.policy.policy.monitoring, model, kind, window)
    return HTMLResponse(
        html,
        headers={
            "Content-Security-Policy": REPORT_CSP,
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )
