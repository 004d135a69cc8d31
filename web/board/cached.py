"""``GET /api/scoreboard`` answered from the board cache before Flask is involved.

The board is the API's hottest read and, when cached, one Redis GET. Routing, query
parsing, the hooks and the response machinery of the full app cost several times that,
so this WSGI middleware answers the plain forms of the request itself (no query, or a
canonical ``limit`` of 1-100, no ``Origin``): the same body and headers as the full
app, the same metrics. Everything else, and every cache miss or Redis error, goes on to
the full app, which validates, refills the cache, falls back to PostgreSQL or answers the
error. ``tests/test_board.py`` checks that both answers stay the same.
"""

from __future__ import annotations

import re
import time

import redis

from scoreboard import metrics, ranking
from web import request_ids
from web.metrics import count_request
from web.security import API_CSP
from web.services import Services

PATH = "/api/scoreboard"
DEFAULT_LIMIT = 10
_LIMIT = re.compile(r"limit=(100|[1-9][0-9]?)")
_FROM_CACHE = metrics.BOARD_READS.labels("cache")


class CachedBoard:
    """WSGI middleware in front of ``app`` (see the module's docstring).

    Args:
        app: the full application's WSGI callable.
        services: its Redis connection and keys.
        headers: the headers every response of the full app carries (``security.common_headers``).
    """

    def __init__(self, app, services: Services, headers: list[tuple[str, str]]):
        self.app = app
        self.redis = services.redis
        self.keys = services.keys
        self.headers = [("Content-Type", "application/json"), *headers, ("Content-Security-Policy", API_CSP)]

    def __call__(self, environ, start_response):
        limit = self._plain_limit(environ)
        if limit is None:
            return self.app(environ, start_response)
        started = time.perf_counter()
        try:
            body = ranking.cached_board(self.redis, self.keys, limit)
        except redis.RedisError:
            body = None  # the full app answers it (and retries, or says 503)
        if body is None:
            return self.app(environ, start_response)
        request_id = request_ids.from_header(environ.get("HTTP_X_REQUEST_ID", ""))
        start_response("200 OK", [*self.headers, ("Content-Length", str(len(body))), ("X-Request-ID", request_id)])
        _FROM_CACHE.inc()
        count_request("GET", PATH, 200, time.perf_counter() - started)
        return [body]

    @staticmethod
    def _plain_limit(environ) -> int | None:
        """The limit of a plain board request, None for any other request."""
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "GET" or "HTTP_ORIGIN" in environ:
            return None
        query = environ.get("QUERY_STRING", "")
        if not query:
            return DEFAULT_LIMIT
        match = _LIMIT.fullmatch(query)
        return int(match.group(1)) if match else None
