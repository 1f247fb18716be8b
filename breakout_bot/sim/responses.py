"""aiohttp responses carrying the wire's JSON (sim/wire.py shapes it)."""

from __future__ import annotations

import json

from aiohttp import web

from . import wire
from .errors import ApiError


def json_response(obj: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=json.dumps(obj), status=status, content_type="application/json", headers=headers)


def raw_json(body: str) -> web.Response:
    """A body already written as JSON text (served bars are assembled from cached rows)."""
    return web.Response(text=body, content_type="application/json")


def error_response(e: ApiError, headers: dict[str, str] | None = None) -> web.Response:
    return json_response(wire.error_json(e), status=e.status, headers=headers)
