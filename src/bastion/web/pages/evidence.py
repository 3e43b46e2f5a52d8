"""Evidence: compliance reports built from the ledger, and the legal clocks.

The landing page lists the frameworks Bastion maps to its evidence and the open
incidents and data-subject requests with their legal deadlines. A framework and a period
give the report's summary on the page: each control, the evidence found for it (events
by kind and count), the gaps with what would close them, the chain's verification over
the period. That view is the same report body ``GET /api/reports/compliance`` renders,
built through the same service; it is not recorded. A file (HTML with charts, PDF,
Markdown, OSCAL JSON) is the API's report: its digest is recorded in the ledger, so
``bastion report verify`` can check it later.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from bastion.api.deps import RuntimeDep
from bastion.api.routes.evidence import evidence_service
from bastion.auth.permissions import Permission
from bastion.auth.principal import Principal
from bastion.evidence.mapping import builtin_frameworks
from bastion.web.frame import CHART_CSP, render, ui_requires

router = APIRouter(include_in_schema=False)

Auditor = Annotated[Principal, Depends(ui_requires(Permission.REPORTS_READ))]
FrameworkQ = Annotated[str, Query(min_length=1, max_length=50)]
PeriodQ = Annotated[str, Query(min_length=1, max_length=80)]
EXTENSIONS = {"html": "html", "pdf": "pdf", "md": "md", "json": "oscal.json"}


def quarter_to_date(today: date) -> str:
    """This calendar quarter so far: the period the landing page offers first."""
    first = date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
    return f"{first.isoformat()}..{today.isoformat()}"


def _frameworks() -> list[dict[str, Any]]:
    return [
        {"id": key, "title": f.framework.title, "controls": len(f.framework.controls)}
        for key, f in builtin_frameworks().items()
    ]


@router.get("/ui/evidence")
def evidence_page(request: Request, runtime: RuntimeDep, _: Auditor) -> HTMLResponse:
    now = datetime.now(UTC)
    clocks = evidence_service(runtime).clocks.items(open_only=True)
    return render(
        request,
        "evidence.html",
        {
            "frameworks": _frameworks(),
            "period": quarter_to_date(now.date()),
            "last_quarter": _last_quarter(now.date()),
            "clocks": [c.to_dict(now) for c in clocks],
        },
    )


def _last_quarter(today: date) -> str:
    first = date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
    end = first - timedelta(days=1)
    start = date(end.year, 3 * ((end.month - 1) // 3) + 1, 1)
    return f"{start.isoformat()}..{end.isoformat()}"


@router.get("/ui/evidence/report")
async def report_page(
    request: Request,
    runtime: RuntimeDep,
    _: Auditor,
    framework: FrameworkQ,
    period: PeriodQ,
) -> HTMLResponse:
    body = await run_in_threadpool(evidence_service(runtime).body, framework, period.strip())
    return render(
        request,
        "evidence_report.html",
        {
            "report": body,
            "framework": framework,
            "period": period.strip(),
            "activity": activity_chart(body["activity"]),
        },
        headers={"Content-Security-Policy": CHART_CSP},
    )


def activity_chart(activity: dict[str, Any]) -> dict[str, Any]:
    """Events per day by family, stacked, with approvals and incidents as lines."""
    days = activity["days"]
    data: list[dict[str, Any]] = [
        {"type": "bar", "name": family, "x": days, "y": counts}
        for family, counts in activity["families"].items()
    ]
    for name in ("approvals", "incidents"):
        if any(activity[name]):
            data.append(
                {
                    "type": "scatter",
                    "mode": "lines+markers",
                    "name": name,
                    "x": days,
                    "y": activity[name],
                    "yaxis": "y2",
                }
            )
    return {
        "data": data,
        "layout": {
            "title": {"text": "Events in the period, per day"},
            "barmode": "stack",
            "height": 300,
            "xaxis": {"type": "category", "title": {"text": "day (UTC)"}},
            "yaxis": {"title": {"text": "events"}},
            "yaxis2": {
                "overlaying": "y",
                "side": "right",
                "showgrid": False,
                "rangemode": "tozero",
                "title": {"text": "approvals, incidents"},
            },
        },
    }


@router.get("/ui/evidence/report/file")
async def report_file(
    runtime: RuntimeDep,
    who: Auditor,
    framework: FrameworkQ,
    period: PeriodQ,
    format: Literal["html", "pdf", "md", "json"] = "html",
) -> Response:
    """The report as a file, recorded in the ledger by its digest (as the API's)."""
    done = await run_in_threadpool(
        lambda: evidence_service(runtime).generate(
            framework, period.strip(), format, actor=who.actor
        )
    )
    label = re.sub(r"[^A-Za-z0-9._-]+", "_", done.body["period"]["label"])
    name = f"bastion-{framework}-{label}.{EXTENSIONS[format]}"
    return Response(
        done.content,
        media_type=done.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Bastion-Report-Digest": done.digest,
        },
    )
