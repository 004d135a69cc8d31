"""What the jobs of this worker process use, built once by the entry point."""

from __future__ import annotations

from scoreboard.apply import Applier
from scoreboard.settings import Settings

_installed: tuple[Applier, Settings] | None = None


def install(applier: Applier, settings: Settings) -> None:
    global _installed
    _installed = (applier, settings)


def _get() -> tuple[Applier, Settings]:
    if _installed is None:
        raise RuntimeError("the worker context is not installed; start workers with `python -m workers`")
    return _installed


def applier() -> Applier:
    return _get()[0]


def settings() -> Settings:
    return _get()[1]
