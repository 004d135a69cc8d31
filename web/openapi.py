"""What the OpenAPI document says beyond what flask-smorest derives from the schemas.

- The configured action types, as the ``enum`` of every ``ActionTypeName`` (the schema
  takes any text: an unknown one is 422 ``unknown_action_type``).
- ``schemas.STORABLE_TEXT`` on every text of a request schema that has no pattern or
  enum of its own: the NUL characters and unpaired surrogates that ``Strict`` refuses.
- ``BEARER`` (``REFRESH`` for the refresh), the security requirement of the operations
  that need a token, declared by
  ``web.identity.token_required`` and ``web.admin.auth.admin_required`` where the view
  requires it.
- ``links``: OpenAPI links from one operation's answer to the next operation it feeds,
  for clients and for stateful testing.
"""

from __future__ import annotations

from flask_smorest import Api
from flask_smorest import Blueprint as SmorestBlueprint
from marshmallow import fields

from web import schemas

BEARER_SCHEME = "bearerAuth"
BEARER = [{BEARER_SCHEME: []}]
REFRESH_SCHEME = "refreshToken"
REFRESH = [{REFRESH_SCHEME: []}]


def install(api: Api, action_types: tuple[str, ...]) -> None:
    """Teach ``api``'s document the above; call it before registering the blueprints."""
    api.spec.components.security_scheme(BEARER_SCHEME, {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": "an access token (`access_token` of `POST /api/auth/login`)"})
    api.spec.components.security_scheme(REFRESH_SCHEME, {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": "a refresh token (`refresh_token` of `POST /api/auth/login`), as Bearer"})
    converter = api.ma_plugin.converter
    names = list(action_types)

    def action_type_enum(self, field, **kwargs) -> dict:
        return {"enum": names} if isinstance(field, schemas.ActionTypeName) else {}

    def storable_text(self, field, ret, **kwargs) -> dict:
        if (isinstance(field, fields.String) and isinstance(field.parent, schemas.Strict)
                and "pattern" not in ret and "enum" not in ret):
            return dict(schemas.STORABLE_TEXT)
        return {}

    converter.add_attribute_function(action_type_enum)
    converter.add_attribute_function(storable_text)


def documented_security(view, requirement: list = BEARER):
    """Declare ``requirement`` (default ``BEARER``) as ``view``'s security requirement in the document."""
    return SmorestBlueprint.doc(security=requirement)(view)


def operation(path: str, method: str) -> str:
    """An ``operationRef`` to the operation at ``path`` (as the document writes it)."""
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method.lower()


def links(status_code: int, **named: dict):
    """Document OpenAPI links from ``status_code`` answers of the view to other operations.

    Args:
        status_code: the answer's status (as given to ``blp.response``).
        **named: each link by name: ``{"operationRef": operation(...), "parameters": {...},
            "requestBody": ..., "description": ...}``.
    """
    return SmorestBlueprint.doc(responses={status_code: {"links": named}})
