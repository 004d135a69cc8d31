"""Action types: what a player can do, and the score deltas it may earn."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable

INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class ActionType:
    """One kind of action.

    Attributes:
        name: identifier clients send as ``action_type``.
        min_delta: smallest score delta one action may earn (may be negative).
        max_delta: largest score delta one action may earn.
        min_duration_ms: fastest humanly possible completion; faster ones get flagged.
    """

    name: str
    min_delta: int
    max_delta: int
    min_duration_ms: int

    def allows(self, delta: int) -> bool:
        """True when ``delta`` is inside this type's range and is not zero."""
        return delta != 0 and self.min_delta <= delta <= self.max_delta

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT_ACTION_TYPES: tuple[ActionType, ...] = (
    ActionType("coin_pickup", 1, 10, 100),
    ActionType("level_complete", 10, 1000, 5_000),
    ActionType("quest_complete", 50, 5_000, 30_000),
    ActionType("boss_defeat", 100, 10_000, 60_000),
    ActionType("penalty", -500, -1, 0),
)


def parse_action_types(raw: Iterable[dict[str, Any]]) -> tuple[ActionType, ...]:
    """Build action types from a JSON list of objects.

    Raises:
        ValueError: a field is missing, of the wrong type, or the range is empty.
    """
    types = []
    seen = set()
    for item in raw:
        try:
            at = ActionType(
                name=str(item["name"]),
                min_delta=int(item["min_delta"]),
                max_delta=int(item["max_delta"]),
                min_duration_ms=int(item.get("min_duration_ms", 0)),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"bad action type {item!r}: {exc}") from None
        if at.min_delta > at.max_delta or abs(at.min_delta) > INT64_MAX or abs(at.max_delta) > INT64_MAX:
            raise ValueError(f"action type {at.name!r} has an empty or oversized range")
        if at.name in seen:
            raise ValueError(f"action type {at.name!r} given twice")
        seen.add(at.name)
        types.append(at)
    if not types:
        raise ValueError("at least one action type is needed")
    return tuple(types)
