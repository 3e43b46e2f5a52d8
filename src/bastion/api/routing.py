"""The route class every router uses: request bodies read as strictly as the gateway's.

FastAPI reads a JSON body with the standard library, which takes lone surrogates (that
no database or UTF-8 writer takes afterwards) and recurses until it crashes on deep
nesting. :class:`StrictJSONRoute` reads it with :func:`bastion.jsonio.loads_request`
instead, so every route refuses such a body with ``400 invalid_json`` saying why,
before a model or a service sees it.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Path, Request, Response
from fastapi.routing import APIRoute

from bastion import jsonio
from bastion.api.schemas import ErrorDetail


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            # JSONDecodeError is what FastAPI turns into a 400 invalid_json.
            self._json = jsonio.loads_request(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict


#: The largest value a path or query integer may take: PostgreSQL's ``integer`` (MLflow's
#: version column among them) refuses more with a server error, so it is refused at the
#: door, with a 422 naming the parameter, on every database alike.
INT32_MAX = 2**31 - 1

VersionPath = Annotated[int, Path(ge=1, le=INT32_MAX, description="The version number (1, 2, ...)")]

_DESCRIPTIONS = {
    400: "The body is not valid JSON (`invalid_json`) or the request is malformed "
    "(`invalid_request`)",
    401: "No API key, or one that is not valid",
    403: "The key's role lacks the permission this route needs",
    404: "No such object",
    409: "The object's state does not allow this",
    413: "The request body is too large",
    415: "The document's format is not one Bastion reads (`unsupported_format`)",
    422: "A parameter or body field is out of range or of the wrong type (`param` names it)",
    429: "A rate limit or budget is spent (`Retry-After` says when to try again)",
    502: "The upstream provider failed or answered with something unusable",
    503: "A service Bastion needs is unavailable (ledger, counters, circuit open)",
    504: "The upstream provider did not answer in time",
}


#: The error shape, inline: with ``model=`` FastAPI would document it under the route's
#: own media type (text/plain for a card), while errors are always JSON.
ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error"],
    "properties": {"error": ErrorDetail.model_json_schema()},
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for error statuses, each in the one error shape."""
    return {
        s: {
            "description": _DESCRIPTIONS[s],
            "content": {"application/json": {"schema": ERROR_SCHEMA}},
        }
        for s in statuses
    }


#: What every guarded route may answer besides its success.
GUARDED = (400, 401, 403, 413, 422)
