"""gunicorn's logger for the web and stream processes: access lines only when asked for,
and never a credential in them.

gunicorn writes an access line for every request whenever a log configuration is given
(``logconfig_dict``), even with ``accesslog`` unset; here they are written only when
``accesslog`` is set (``ACCESS_LOG`` in ``web/gunicorn_conf.py``, or ``--access-logfile``),
whatever ``LOG_LEVEL`` says, as JSON lines like every other (the path given is not used:
they go to stderr with the rest). Each line carries ``method``, ``path``, ``query``,
``status``, ``bytes``, ``duration_ms``, ``remote_addr`` and the response's ``request_id``.

Credentials are redacted from everything the line can show: the value of every query
parameter whose name speaks of one (``access_token`` above all: a browser's EventSource
can only send its token that way), and the ``Authorization``, ``Cookie``, ``Set-Cookie``
and CSRF headers, whether ``access_log_format`` names them as headers or as environ
variables.
"""

from __future__ import annotations

import logging
import re
import traceback
from urllib.parse import unquote_plus

from gunicorn.glogging import Logger

REDACTED = "[redacted]"
# Query parameters and headers whose value is, or may be, a credential.
_SECRET_NAME = re.compile(r"token|password|secret|auth|key|jwt|signature|cookie|csrf|session", re.IGNORECASE)
# gunicorn's atoms (``access_log_format``) that hold a query or a URL with one.
_QUERY_ATOMS = frozenset({"q", "{query_string}e"})
_URI_ATOMS = frozenset({"f", "{referer}i", "{raw_uri}e", "{request_uri}e", "{http_referer}e"})


def redact_query(query: str) -> str:
    """``query`` with the value of each parameter whose (decoded) name speaks of a
    credential replaced by ``[redacted]``; the other parameters as they came."""
    if not query:
        return query
    parts = []
    for part in query.split("&"):
        name, equals, _value = part.partition("=")
        parts.append(f"{name}={REDACTED}" if equals and _SECRET_NAME.search(unquote_plus(name)) else part)
    return "&".join(parts)


def redact_uri(uri: str) -> str:
    """A request target (path and query) with its query redacted."""
    path, mark, query = uri.partition("?")
    return f"{path}{mark}{redact_query(query)}"


class AccessLogger(Logger):
    """gunicorn's ``Logger`` with the access line switched by ``accesslog`` and redacted."""

    def setup(self, cfg):
        super().setup(cfg)
        enabled = bool(cfg.accesslog)
        self.access_log.setLevel(logging.INFO if enabled else logging.CRITICAL + 1)
        self._access_log_enabled = enabled

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        atoms["r"] = f"{environ['REQUEST_METHOD']} {redact_uri(environ.get('RAW_URI', ''))} {environ['SERVER_PROTOCOL']}"
        for key, value in atoms.items():
            if key in _QUERY_ATOMS:
                atoms[key] = redact_query(str(value or ""))
            elif key in _URI_ATOMS:
                atoms[key] = redact_uri(str(value))
            elif key.startswith("{") and _SECRET_NAME.search(key):
                atoms[key] = REDACTED
        return atoms

    def access(self, resp, req, environ, request_time):
        if not self.access_log_enabled:
            return
        atoms = self.atoms(resp, req, environ, request_time)
        fields = {
            "method": atoms["m"],
            "path": atoms["U"],
            "query": atoms["q"],
            "status": int(atoms["s"]) if str(atoms["s"]).isdigit() else atoms["s"],
            "bytes": atoms["B"],
            "duration_ms": atoms["M"],
            "remote_addr": atoms["h"],
            "request_id": atoms.get("{x-request-id}o"),
        }
        try:
            self.access_log.info(self.cfg.access_log_format, self.atoms_wrapper_class(atoms),
                                 extra={k: v for k, v in fields.items() if v not in (None, "")})
        except Exception:
            self.error(traceback.format_exc())
