"""Flask extensions, created unbound and attached by ``create_app``."""

from __future__ import annotations

from flask import request
from flask_jwt_extended import JWTManager, get_jwt_identity, verify_jwt_in_request
from flask_limiter import Limiter
from flask_smorest import Api
from flask_smorest import Blueprint as SmorestBlueprint
from webargs.flaskparser import FlaskParser

from web import errors, schemas


def rate_limit_key() -> str:
    """Per user when a valid JWT came with the request, else per client address."""
    try:
        verify_jwt_in_request(optional=True)
        identity = get_jwt_identity()
    except Exception:
        identity = None
    return f"user:{identity}" if identity else f"ip:{request.remote_addr}"


class JsonOnlyParser(FlaskParser):
    """Bodies must be JSON: anything else is 415, not a misleading schema error."""

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


jwt = JWTManager()
limiter = Limiter(key_func=rate_limit_key, headers_enabled=True, strategy="fixed-window")
api = ScoreboardApi()


class Blueprint(SmorestBlueprint):
    """A flask-smorest blueprint whose JSON bodies go through ``JsonOnlyParser``."""

    ARGUMENTS_PARSER = JsonOnlyParser()
