"""JSON responses, built one way (orjson, ``application/json``) by every route."""

from __future__ import annotations

import orjson
from flask import Response


def json_response(body: dict | bytes, status: int = 200) -> Response:
    """``body`` (a dict, or JSON already encoded) as a JSON response with ``status``."""
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return Response(data, status=status, mimetype="application/json")
