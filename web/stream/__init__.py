"""The live stream: ``create_stream_app(settings)`` for the ``stream`` process, and
``init_stream`` to mount the same route in the API app (one origin in development).

The stream process talks to Redis only: it never opens a database connection.
"""

from __future__ import annotations

import os

import redis
from flask import Flask

from scoreboard.redis_client import Keys, make_pool
from scoreboard.scripts import Scripts
from scoreboard.settings import Settings
from web import errors, metrics, query_params, security
from web.responses import json_response
from web.stream import lifecycle
from web.stream.hub import Hub


def make_stream_redis(settings: Settings) -> redis.Redis:
    """A Redis client whose pool is bounded: a reconnect storm waits, it never opens
    thousands of connections (one of them holds the subscription). Behind a Sentinel, its
    connections follow the primary it names."""
    pool = make_pool(
        settings, max_connections=settings.stream.redis_connections, blocking_timeout=10,
        client_name=f"{settings.redis_prefix}stream:{os.getpid()}",  # whose connections are whose
    )
    return redis.Redis(connection_pool=pool)


def init_stream(app: Flask, settings: Settings, client: redis.Redis | None = None) -> Hub:
    """Mount ``GET /api/scoreboard/stream`` on ``app`` with a hub of its own (started lazily)."""
    from web.stream.routes import blp

    client = client or make_stream_redis(settings)
    hub = Hub(settings, client, Keys(settings.redis_prefix), Scripts(client))
    app.extensions["stream_hub"] = hub
    lifecycle.register(hub)
    app.register_blueprint(blp)
    return hub


def create_stream_app(settings: Settings) -> Flask:
    """Build the stream process's application (no work happens at import time)."""
    app = Flask(__name__, static_folder=None)
    app.config.update(SECRET_KEY=settings.secret_key, MAX_CONTENT_LENGTH=settings.http.max_content_length)
    hub = init_stream(app, settings)
    errors.install(app)
    metrics.install(app, settings)  # GET /metrics
    query_params.install(app, query_params.declared({_stream_rule(app).rule: OPENAPI_OPERATION}, app,
                                                    SECURITY_SCHEMES))

    @app.get("/healthz")
    def healthz():
        return json_response(b'{"status":"ok"}')

    @app.get("/readyz")
    def readyz():
        """200 when Redis answers and the event subscription is in sync, else 503."""
        hub.start()
        checks = {}
        try:
            hub.redis.ping()
            checks["redis"] = "ok"
        except redis.RedisError as exc:
            checks["redis"] = f"error: {type(exc).__name__}"
        checks["subscription"] = "ok" if hub.ready.wait(2) else "error: not in sync"
        ok = all(v == "ok" for v in checks.values())
        body = {"status": "ok" if ok else "unavailable", "checks": checks, "viewers": len(hub.viewers),
                "version": hub.version, "counters": dict(hub.stats)}
        return json_response(body, 200 if ok else 503)

    security.install_headers(app, settings)  # the web's: nosniff, CSP, frame and referrer rules, HSTS
    security.trust_proxies(app, settings)

    return app


def document(spec, app: Flask) -> None:
    """Add the stream to the API's OpenAPI document (flask-smorest's spec)."""
    for name, scheme in SECURITY_SCHEMES.items():
        spec.components.security_scheme(name, scheme)
    spec.path(rule=_stream_rule(app), operations=OPENAPI_OPERATION)


def _stream_rule(app: Flask):
    return next(r for r in app.url_map.iter_rules() if r.endpoint == "stream.stream")


def _error(description: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _event(name: str, data: str, event_id: dict | None = None, data_schema: str | None = None) -> dict:
    """One kind of event as a parsed event stream holds it: ``event``, ``data`` (one JSON
    text, ``data_schema`` when given), ``id`` (the last one sent, when there was one) and
    ``retry``."""
    properties = {
        "event": {"type": "string", "enum": [name]},
        "data": {"type": "string", "description": data, "pattern": "^\\{.*\\}$"},
        "id": event_id or {"type": "string", "pattern": "^[0-9]+(-[0-9]+)?$",
                           "description": "the id of the last event sent with one"},
        "retry": {"type": "integer", "minimum": 0, "description": "ms to wait before reconnecting"},
    }
    if data_schema:
        properties["data"]["x-content-schema"] = {"$ref": f"#/components/schemas/{data_schema}"}
    return {"type": "object", "required": ["event", "data", *(["id"] if event_id else [])],
            "properties": properties, "additionalProperties": False}


STREAM_EVENT = {
    "oneOf": [
        _event("scoreboard", "the board's top 10, as `GET /api/scoreboard` answers it, with `board` and `period`",
               {"type": "string", "pattern": "^[0-9]+$", "description": "the board's version"}, "Board"),
        _event("score", "one of the caller's submissions applied: "
               '`{"job_id", "score", "rank", "score_delta", "flagged"}`',
               {"type": "string", "pattern": "^[0-9]+-[0-9]+$", "description": "`<version>-<k>`"}),
        _event("rejected", 'one of the caller\'s submissions refused by a worker: `{"job_id", "error"}`',
               {"type": "string", "pattern": "^[0-9]+-[0-9]+$", "description": "`<version>-<k>`"}),
        _event("period_closed", '`{"board", "period", "entries", "next_period"}`: the final top 10 of the '
               "period that closed; the new period's `scoreboard` follows"),
        _event("logout", '`{"reason": "revoked" | "expired" | "banned"}`: the stream ends'),
        _event("resync", '`{"reason": "replay_gap"}`: personal events after `Last-Event-ID` are no '
               "longer held; re-read `GET /api/users/me`"),
        _event("reconnect", '`{"reason"}`: this server is shutting down or resyncing; reconnect'),
    ],
}

# The stream takes the access token in a query parameter or a cookie too (EventSource sends no header).
SECURITY_SCHEMES = {
    "accessTokenQuery": {"type": "apiKey", "in": "query", "name": "access_token",
                         "description": "an access token, for a client that cannot send a header"},
    "accessTokenCookie": {"type": "apiKey", "in": "cookie", "name": "access_token",
                          "description": "an access token, for a client that cannot send a header"},
}

OPENAPI_OPERATION = {
    "get": {
        "tags": ["board"],
        "summary": "The live board and the caller's own events (Server-Sent Events)",
        "description": (
            "Authenticated by `Authorization: Bearer`, the `access_token` query parameter or the "
            "`access_token` cookie; without any of them, an anonymous viewer gets the board events "
            "alone (never a personal event), up to a configured number of streams per client address. "
            "A page on another origin that sends the header gets its CORS preflight answered. "
            "First `retry:` and `event: scoreboard` (the current top 10, "
            "`id:` its version); then `event: scoreboard` whenever the top 10 changes (at most once "
            "per board interval, latest wins), `event: score` / `event: rejected` for the caller's "
            "own submissions (`id: <version>-<k>`, replayed after `Last-Event-ID` or the "
            "`last_event_id` query parameter), `: ping` at least every 15 s, `event: logout` then "
            "the end when the token is revoked or expires or the user is banned (`{\"reason\": \"revoked\"|"
            "\"expired\"|\"banned\"}`), `event: resync` when personal events "
            "after `Last-Event-ID` are no longer held (re-read `GET /api/users/me`), and "
            "`event: reconnect` when the server shuts down."
        ),
        "security": [{"bearerAuth": []}, {"accessTokenQuery": []}, {"accessTokenCookie": []}, {}],  # {}: anonymous
        "parameters": [
            {"name": "board", "in": "query", "required": False, "description": "the board to watch (404 unknown_board)",
             "schema": {"type": "string", "default": "all-time", "pattern": "^[a-z0-9-]{1,32}$"}},
            {"name": "last_event_id", "in": "query", "required": False, "schema": {"type": "string"}},
            {"name": "Last-Event-ID", "in": "header", "required": False, "schema": {"type": "string"}},
        ],
        "responses": {
            "200": {"description": "An event stream; `schema` describes one event of it, as OpenAPI before 3.2 "
                                   "reads `text/event-stream`",
                    "content": {"text/event-stream": {"schema": STREAM_EVENT}}},
            "401": _error("invalid_token, token_expired, token_revoked (a token that is present but not valid); "
                          "missing_token for an Authorization header that is not Bearer"),
            "403": _error("user_banned"),
            "404": _error("unknown_board"),
            "429": _error("too_many_streams: the cap on open streams per user, or per client address without a token"),
            "503": _error("unavailable: the stream is catching up or shutting down"),
            "default": {"$ref": "#/components/responses/DEFAULT_ERROR"},
        },
    }
}
