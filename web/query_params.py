"""Query parameters an operation does not declare are refused (422 ``invalid_request``).

The OpenAPI document says which query parameters each operation takes; a request with
another one is a client's mistake (a misspelt ``limt=5`` would otherwise be ignored and
answer something else than was asked). Operations with a query schema refuse unknown
names when webargs parses it (``JsonOnlyParser`` keeps the schema's ``unknown=RAISE`` for
the query too); this hook holds every other documented operation to its declared names,
before the view runs. Requests outside the document (the page, the RQ dashboard,
``/metrics``) are left alone.

Loads nothing but Flask, so the stream process uses it too.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from flask import Flask, request

from web.errors import error_response

UNKNOWN = ["Unknown field."]  # marshmallow's own message for an unknown field
_HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def declared(paths: Mapping[str, dict], app: Flask,
             security_schemes: Mapping[str, dict] = {}) -> dict[tuple[str, str], frozenset[str]]:
    """{(endpoint, METHOD): the query parameter names its operation declares} for every
    operation of an OpenAPI ``paths`` object served by ``app``, the names of the query
    API keys (``security_schemes``) its security requirements take included."""
    by_path = {}
    for rule in app.url_map.iter_rules():
        by_path.setdefault(_openapi_path(rule.rule), []).append(rule.endpoint)
    names = {}
    for path, item in paths.items():
        shared = _query_names(item.get("parameters", ()))
        for method, operation in item.items():
            if method not in _HTTP_METHODS:
                continue
            for endpoint in by_path.get(path, ()):
                names[endpoint, method.upper()] = (shared | _query_names(operation.get("parameters", ()))
                                                   | _query_keys(operation.get("security", ()), security_schemes))
    return names


def install(app: Flask, names: dict[tuple[str, str], frozenset[str]]) -> None:
    """Refuse, on ``app``, a query parameter that the request's operation does not declare."""

    @app.before_request
    def _refuse_undeclared_query():
        if not request.args or request.url_rule is None:
            return None
        method = "GET" if request.method == "HEAD" else request.method
        allowed = names.get((request.url_rule.endpoint, method))
        if allowed is None:
            return None
        unknown = sorted(set(request.args) - allowed)
        if unknown:
            return error_response(422, "invalid_request", "The query does not match the schema.",
                                  {name: UNKNOWN for name in unknown})
        return None


def _query_names(parameters: Iterable[dict]) -> frozenset[str]:
    return frozenset(p["name"] for p in parameters if isinstance(p, dict) and p.get("in") == "query")


def _query_keys(requirements: Iterable[dict], schemes: Mapping[str, dict]) -> frozenset[str]:
    return frozenset(schemes[name]["name"] for requirement in requirements for name in requirement
                     if schemes.get(name, {}).get("type") == "apiKey" and schemes[name].get("in") == "query")


def _openapi_path(rule: str) -> str:
    """``/a/<int:b>/c`` as OpenAPI writes it: ``/a/{b}/c``."""
    out, rest = [], rule
    while "<" in rest:
        head, _, tail = rest.partition("<")
        variable, _, rest = tail.partition(">")
        out.append(head + "{" + variable.rpartition(":")[2] + "}")
    return "".join(out) + rest
