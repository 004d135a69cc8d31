"""Flask extensions, created unbound and attached by ``create_app``."""

from __future__ import annotations

import json
import math
import time

from flask import g, request
from flask.sessions import SessionInterface
from flask_limiter import Limiter
from flask_smorest import Api
from flask_smorest import Blueprint as SmorestBlueprint
from webargs.flaskparser import FlaskParser

from web import errors, schemas
from web.verified_tokens import CachingJWTManager


def rate_limit_key() -> str:
    """Per user when the view's JWT check has passed, else per client address.

    Reads the token ``jwt_required`` already decoded, rather than decoding it again.
    """
    decoded = g.get("_jwt_extended_jwt")
    identity = decoded.get("sub") if decoded else None
    return f"user:{identity}" if identity else f"ip:{request.remote_addr}"


class JsonOnlyParser(FlaskParser):
    """Bodies must be JSON: anything else is 415, not a misleading schema error; JSON nested
    deeper than Python's parser can recurse is malformed (400), not a crash. A query is
    held to its schema's ``unknown`` like a body (``Strict``: an unknown name is 422), where
    webargs would drop unknown query names by default."""

    DEFAULT_UNKNOWN_BY_LOCATION = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION, "query": None, "querystring": None}

    def _raw_load_json(self, req):
        try:
            return super()._raw_load_json(req)
        except RecursionError:
            raise json.JSONDecodeError("nested too deeply", "(the request body)", 0) from None

    def load_json(self, req, schema):
        if req.content_length or req.headers.get("Transfer-Encoding"):
            if not req.is_json:
                from flask import abort

                abort(415)
        return super().load_json(req, schema)


class ScoreboardApi(Api):
    """flask-smorest's Api with the contract's error body, documented and produced."""

    ERROR_SCHEMA = schemas.ErrorSchema

    def handle_http_exception(self, error):
        return errors.from_http_exception(error)


class NoCookieSession(SessionInterface):
    """The API keeps no Flask session (callers carry JWTs; the dashboard sets its own
    cookies): skip opening and signing one on every request."""

    def open_session(self, app, request):
        return None  # Flask then uses a null session, which it never saves

    def save_session(self, app, session, response):
        pass


def limit_reset_in() -> int | None:
    """Seconds until the breached rate limit resets (for ``Retry-After``). Flask-Limiter's
    per-response headers are off (they cost two Redis round trips on every request): only
    a 429 asks."""
    try:
        breached = [lim for lim in limiter.current_limits if lim.breached]
        if breached:
            now = time.time()
            return max(1, max(min(lim.limit.get_expiry(), math.ceil(lim.window[0] - now)) for lim in breached))
    except Exception:  # the limit's storage is gone: a plain one second
        return 1
    return None


jwt = CachingJWTManager()
limiter = Limiter(key_func=rate_limit_key, headers_enabled=False, strategy="fixed-window")
api = ScoreboardApi()


class Blueprint(SmorestBlueprint):
    """A flask-smorest blueprint whose JSON bodies go through ``JsonOnlyParser``."""

    ARGUMENTS_PARSER = JsonOnlyParser()

    def errors(self, *codes: int):
        """Decorator: document each of these statuses as an answer in the contract's error shape."""
        def decorate(view):
            for code in codes:
                view = self.alt_response(code, schema=schemas.ErrorSchema)(view)
            return view
        return decorate
