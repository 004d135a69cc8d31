"""The Flask application: ``create_app(settings)`` (served by ``web.wsgi``)."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from rq import Queue
from sqlalchemy.exc import DisconnectionError, OperationalError

from scoreboard.accounts import make_hasher
from scoreboard.db import instrument_pool, make_engine, make_read_router
from scoreboard.redis_client import Keys, ReplicaAcks, make_redis
from scoreboard.scripts import Scripts
from scoreboard.settings import Settings
from scoreboard.navigation import Cursors
from scoreboard.submissions import Submissions
from web import bodies, errors, identity, metrics, openapi, query_params, request_ids, security
from web.board.cached import CachedBoard
from web.extensions import NoCookieSession, api, jwt, limit_reset_in, limiter
from web.scrape import ScrapeCollector
from web.services import Services


def create_app(settings: Settings) -> Flask:
    """Build the API application from ``settings`` (no work happens at import time)."""
    app = Flask(__name__, static_folder=None)
    app.session_interface = NoCookieSession()
    keys = Keys(settings.redis_prefix)
    redis = make_redis(settings)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.http.max_content_length,
        JWT_SECRET_KEY=settings.jwt_secret_key,
        JWT_ALGORITHM="HS256",
        JWT_DECODE_ALGORITHMS=["HS256"],
        JWT_ACCESS_TOKEN_EXPIRES=timedelta(seconds=settings.sessions.access_expires),
        JWT_REFRESH_TOKEN_EXPIRES=timedelta(seconds=settings.sessions.refresh_expires),
        JWT_TOKEN_LOCATION=["headers"],
        RATELIMIT_ENABLED=settings.limits.enabled,
        # the limits share the app's pool: the same server, Sentinel's primary and TLS
        RATELIMIT_STORAGE_URI="redis://",
        RATELIMIT_STORAGE_OPTIONS={"connection_pool": redis.connection_pool},
        RATELIMIT_KEY_PREFIX=keys.ratelimit_prefix,
        RATELIMIT_SWALLOW_ERRORS=False,
        API_TITLE="Live score board",
        API_VERSION="1.0.0",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api",
        OPENAPI_JSON_PATH="openapi.json",
    )
    engine = make_engine(settings)
    scripts = Scripts(redis)
    app.extensions["scoreboard"] = Services(
        settings=settings,
        engine=engine,
        redis=redis,
        scripts=scripts,
        keys=keys,
        submissions=Submissions(redis, scripts, keys),
        cursors=Cursors(settings.secret_key),
        queue=Queue(settings.batching.queue, connection=redis),
        hasher=make_hasher(settings),
        reads=make_read_router(settings, engine),
        replica_acks=ReplicaAcks.of(settings),
    )

    jwt.init_app(app)
    identity.install(jwt)
    limiter.init_app(app)
    api.init_app(app)
    openapi.install(api, tuple(settings.actions.by_name))
    errors.install(app, unavailable=(OperationalError, DisconnectionError), retry_after=limit_reset_in)
    instrument_pool(engine)
    metrics.install(app, settings, ScrapeCollector(redis, keys, (settings.batching.queue, settings.batching.maintenance_queue)))
    security.install(app, settings)

    from web.actions import blp as actions_blp
    from web.admin import blp as admin_blp
    from web.admin import dashboard
    from web.auth import blp as auth_blp
    from web.board import blp as board_blp
    from web.boards import blp as boards_blp
    from web.ops import blp as ops_blp
    from web.scores import blp as scores_blp

    for blueprint in (auth_blp, actions_blp, scores_blp, board_blp, boards_blp, ops_blp):
        api.register_blueprint(blueprint)
    api.register_blueprint(admin_blp)
    dashboard.install(app, redis, settings.redis)

    # The live stream (also its own process, `stream` in the Procfile) and the web page.
    from web.page import blp as page_blp
    from web.stream import document, init_stream

    init_stream(app, settings)
    document(api.spec, app)
    app.register_blueprint(page_blp)
    described = api.spec.to_dict()
    query_params.install(app, query_params.declared(described["paths"], app,
                                                    described["components"].get("securitySchemes", {})))

    request_ids.install(app)
    bodies.install(app, settings)  # after the request id, so its log lines carry it
    app.wsgi_app = CachedBoard(app.wsgi_app, app.extensions["scoreboard"], security.common_headers(settings))

    security.trust_proxies(app, settings)
    return app
