"""The two domains and the directions between them: one place for what "a2b" and "b2a" mean.

genA2B translates domain A images into domain B (direction "a2b"), genB2A the other way ("b2a"). A
direction reads its source domain's images and is judged against its target domain's.
"""

from __future__ import annotations

from typing import Literal

from .errors import UserError

Direction = Literal["a2b", "b2a"]
DIRECTIONS: tuple[Direction, Direction] = ("a2b", "b2a")
#: The generator that translates each direction, under the official names.
GENERATOR_OF = {"a2b": "genA2B", "b2a": "genB2A"}


def check_direction(direction: str) -> Direction:
    if direction not in DIRECTIONS:
        raise UserError(f"`direction` must be 'a2b' or 'b2a', got {direction!r}")
    return direction  # type: ignore[return-value]


def directions_for(choice: str) -> tuple[Direction, ...]:
    """'a2b', 'b2a' or 'both' as a tuple of directions."""
    if choice == "both":
        return DIRECTIONS
    return (check_direction(choice),)


def source_and_target(direction: str) -> tuple[str, str]:
    """The domain letters a direction reads from and writes to: a2b -> ("A", "B")."""
    return ("A", "B") if check_direction(direction) == "a2b" else ("B", "A")


def reverse(direction: str) -> Direction:
    """The direction that translates back: the cycle of a2b is b2a."""
    return "b2a" if check_direction(direction) == "a2b" else "a2b"
