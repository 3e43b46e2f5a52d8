"""The dashboard under ``/ui``: server-rendered pages over the same services as the API.

:func:`install` mounts the frame (sign-in, sign-out, static files), every page module
that exists (:mod:`bastion.web.pages`) and the HTML error pages; call it after the API's
error handlers are installed. Public names: :func:`install`, :func:`ui_requires`,
:func:`render`.
"""

from __future__ import annotations

from fastapi import Depends, FastAPI

from bastion.web.frame import check_csrf, render, ui_requires

__all__ = ["install", "render", "ui_requires"]


def install(app: FastAPI) -> None:
    from bastion.web import routes
    from bastion.web.errors import install_ui_errors
    from bastion.web.pages import mount_pages

    # Every unsafe method under /ui carries its CSRF token, on every router.
    csrf = [Depends(check_csrf)]
    app.include_router(routes.router, dependencies=csrf)
    mount_pages(app, dependencies=csrf)
    install_ui_errors(app)
