"""File lists of the depth datasets: whitespace-separated relative paths, one sample per line (BTS / VPD's NYUv2
and KITTI lists, Marigold's lists), read with one-line errors naming the file and the line."""

from __future__ import annotations

import os
from collections.abc import Callable, Collection

__all__ = ["join_relative", "parse_file_list", "read_path_list"]


def read_path_list(
    path: str,
    form: str,
    counts: Collection[int],
    *,
    none_column: int | None = None,
    valid: Callable[[list[str]], bool] | None = None,
) -> list[list[str]]:
    """Reads a Marigold-style file list: whitespace-separated relative paths, one sample per line.

    Args:
        path: the list file.
        form: the expected line, for the error message (e.g. ``"rgb_path depth_path"``).
        counts: the accepted numbers of fields per line.
        none_column: lines whose field at this index is the literal ``None`` (a KITTI frame without ground truth)
            are skipped, as Marigold's KITTI and vKITTI loaders do.
        valid: a further check of a line's fields (False: the line is malformed).

    Returns:
        The fields of each non-blank line, in file order.

    Raises:
        FileNotFoundError: the list does not exist.
        ValueError: a line with another number of fields (file and 1-based line named), or no sample at all.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: file list not found")
    rows: list[list[str]] = []
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) not in counts or (valid is not None and not valid(fields)):
                raise ValueError(f"{path}:{line_number}: expected '{form}', got {line.strip()[:200]!r}")
            if none_column is not None and fields[none_column] == "None":
                continue
            rows.append(fields)
    if not rows:
        raise ValueError(f"{path}: file list has no sample")
    return rows


def parse_file_list(path: str, *, allow_none_depth: bool = False) -> list[tuple[str, str | None]]:
    """Parses a BTS/VPD file list: one ``"rgb_rel depth_rel [focal]"`` line per sample; blank lines are skipped.

    Args:
        path: the list file.
        allow_none_depth: accept the literal ``None`` as depth path (KITTI lists mark frames without ground truth so).

    Returns:
        ``(rgb_rel, depth_rel)`` pairs as written (leading ``/`` kept); ``depth_rel`` is ``None`` for ``None`` entries.

    Raises:
        FileNotFoundError: the list does not exist.
        ValueError: a malformed line, naming the file and the 1-based line number, or no line at all.
    """

    def valid(fields: list[str]) -> bool:
        if len(fields) == 3:
            try:
                float(fields[2])
            except ValueError:
                return False
        return allow_none_depth or fields[1] != "None"

    rows = read_path_list(path, "rgb_path depth_path [focal]", (2, 3), valid=valid)
    return [(fields[0], None if fields[1] == "None" else fields[1]) for fields in rows]


def join_relative(base: str, rel: str) -> str:
    """``base/rel``: the lists write paths as ``/scene/file`` to be concatenated onto a root, so a leading ``/`` of
    ``rel`` is taken as relative (``os.path.join`` would treat it as absolute)."""
    return os.path.join(base, rel.lstrip("/\\"))
