"""The dashboard's pages: one module each, listed here once (the nav's one place).

A page module ``bastion.web.pages.<slug>`` exposes ``router: APIRouter`` whose landing
route is ``GET /ui/<slug>``. A module that does not exist (yet) is neither mounted nor
shown. The nav shows a page to a viewer who holds the permission its landing route
declares (read from the route itself, so the nav and the guard cannot disagree).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

from bastion.api.deps import route_guards
from bastion.auth.permissions import Permission
from bastion.auth.principal import Principal


@dataclass(frozen=True)
class PageEntry:
    slug: str
    title: str
    #: The permission a page needs until its module declares its own (its landing route's).
    permission: Permission

    @property
    def href(self) -> str:
        return f"/ui/{self.slug}"


PAGES: tuple[PageEntry, ...] = (
    PageEntry("overview", "Overview", Permission.METRICS_READ),
    PageEntry("gateway", "Gateway", Permission.METRICS_READ),
    PageEntry("models", "Models", Permission.MODELS_READ),
    PageEntry("monitoring", "Monitoring", Permission.MONITORING_READ),
    PageEntry("documents", "Documents", Permission.DOCUMENTS_READ),
    PageEntry("evidence", "Evidence", Permission.REPORTS_READ),
    PageEntry("audit", "Audit", Permission.AUDIT_READ),
    PageEntry("admin", "Keys & policy", Permission.KEYS_MANAGE),
)


@dataclass(frozen=True)
class NavItem:
    slug: str
    title: str
    href: str
    permission: Permission


def page_module(slug: str) -> ModuleType | None:
    name = f"{__name__}.{slug}"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:  # the page exists but something it imports does not
            raise
        return None


def _landing_permission(router: APIRouter, entry: PageEntry) -> Permission:
    for route in router.routes:
        if (
            isinstance(route, APIRoute)
            and route.path == entry.href
            and "GET" in (route.methods or ())
        ):
            found = route_guards(route)
            if len(found) == 1:
                return found[0].permission
    return entry.permission


def mount_pages(app: FastAPI, dependencies: Sequence[Any] = ()) -> list[NavItem]:
    """Include every page module that exists; the nav items, in order, for ``app``."""
    items: list[NavItem] = []
    for entry in PAGES:
        module = page_module(entry.slug)
        if module is None:
            continue
        router: APIRouter = module.router
        app.include_router(router, dependencies=list(dependencies))
        items.append(
            NavItem(entry.slug, entry.title, entry.href, _landing_permission(router, entry))
        )
    app.state.ui_nav = tuple(items)
    return items


def nav_for(app: FastAPI, principal: Principal | None) -> list[NavItem]:
    if principal is None:
        return []
    items: tuple[NavItem, ...] = getattr(app.state, "ui_nav", ())
    return [item for item in items if principal.can(item.permission)]
