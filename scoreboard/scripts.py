"""The Lua scripts that keep Redis state consistent, loaded once per client."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import redis
from redis.commands.core import Script

# Which shared snippets each script needs in front of it.
_NEEDS = {
    "accept": (),
    "seal": (),
    "rebuild": ("ranking",),
    "refresh": ("ranking", "board", "version"),
    "publish": ("ranking", "board", "version"),
    "announce": ("ranking", "board", "version"),
    "page": ("ranking",),
    "ensure_version": ("version",),
    "unlock": (),
    "republish": ("ranking", "board", "version"),
    "reconcile": ("ranking",),
    "lead": (),
}


@lru_cache(maxsize=None)
def _source(name: str) -> str:
    lua = resources.files("scoreboard") / "lua"
    parts = [(lua / f"{dep}.lua").read_text() for dep in _NEEDS[name]]
    parts.append((lua / f"{name}.lua").read_text())
    return "\n".join(parts)


class Scripts:
    """The registered scripts of one Redis client (``scripts.accept(keys=..., args=...)``)."""

    def __init__(self, client: redis.Redis):
        for name in _NEEDS:
            setattr(self, name, client.register_script(_source(name)))

    accept: Script
    seal: Script
    rebuild: Script
    refresh: Script
    publish: Script
    ensure_version: Script
    unlock: Script
    republish: Script
    reconcile: Script
    lead: Script
    announce: Script
    page: Script
