"""Turning library exceptions into the one-line messages vpd shows users."""

from __future__ import annotations


def first_line(err: BaseException) -> str:
    """The first non-empty line of an exception's message, or its type name when it has none."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0].strip("'\"") if lines else type(err).__name__
