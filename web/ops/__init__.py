"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

from sqlalchemy import text

from web import schemas
from web.extensions import Blueprint
from web.responses import json_response
from web.services import services

blp = Blueprint("ops", __name__, description="Operations")


@blp.route("/healthz", methods=["GET"])
@blp.response(200, schemas.Health)
def healthz():
    """200 while the process runs."""
    return json_response(b'{"status":"ok"}')


@blp.route("/readyz", methods=["GET"])
@blp.response(200, schemas.Health)
@blp.alt_response(503, schema=schemas.Health)
def readyz():
    """200 when PostgreSQL and Redis answer, else 503."""
    s = services()
    checks = {}
    try:
        with s.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["postgresql"] = "ok"
    except Exception as exc:  # any failure means not ready
        checks["postgresql"] = f"error: {type(exc).__name__}"
    try:
        s.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {type(exc).__name__}"
    ok = all(v == "ok" for v in checks.values())
    body = {"status": "ok" if ok else "unavailable", "checks": checks}
    return json_response(body, 200 if ok else 503)
