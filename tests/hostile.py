"""The hostile-input harness: run one malformed input through a command or an API call and check the error policy.

Every entry point of vpd promises the same thing for bad input: a one-line message that names the problem (exit code
2 for the command line, one exception for the Python API), no traceback, no partial output file, and, where a run
handles many inputs, every good input of the same run still done. A :class:`Case` states one input and what must
happen; :func:`check` runs it and asserts all of that. Later tasks add their predictors and loaders as more cases.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from vpd.cli import main

#: A built case: argv for ``vpd`` (a list of str) or a zero-argument callable (the Python API).
Action = list[str] | Callable[[], Any]


@dataclass(frozen=True)
class Case:
    """One hostile input.

    Attributes:
        id: the test id.
        build: ``build(world) -> Action``; the world is the fixture's folder of models, images and checkpoints.
        code: expected exit code (CLI), or 0 / 2 for an API call that must succeed / raise.
        message: a regex that exactly one stderr line (CLI) or the exception message (API) must match.
        outputs: files (relative to the case's output folder, ``world.out``) that must exist afterwards; every
            other file there is a partial output and fails the case. None: a run folder whose logs may stay, but
            with no checkpoint, model or temporary file in it.
        error: for API cases, the exception type expected.
    """

    id: str
    build: Callable[[Any], Action]
    code: int
    message: str = ""
    outputs: tuple[str, ...] | None = ()
    error: type[BaseException] = ValueError
    needs: str = ""  # "mount": the case needs `mount -t tmpfs` (root); skipped where that is not allowed
    marks: tuple[Any, ...] = field(default_factory=tuple)


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``vpd <argv>`` in this process: (exit code, stdout, stderr). argparse's SystemExit counts as the exit code."""
    try:
        code = main(argv)
    except SystemExit as done:
        code = int(done.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def files_under(folder: Path) -> set[str]:
    if not folder.exists():
        return set()
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def check(case: Case, world: Any, capsys: pytest.CaptureFixture[str]) -> None:
    action = case.build(world)
    before = files_under(world.out)
    if callable(action):
        if case.code == 0:
            action()
        else:
            with pytest.raises(case.error) as raised:
                action()
            text = str(raised.value)
            assert "\n" not in text.strip(), f"{case.id}: multi-line message {text!r}"
            assert re.search(case.message, text), f"{case.id}: {text!r} does not match {case.message!r}"
    else:
        code, out, err = run_cli(action, capsys)
        assert "Traceback" not in err, f"{case.id}: traceback\n{err}"
        assert code == case.code, f"{case.id}: exit code {code}, expected {case.code}\n{err}"
        if case.message:
            matching = [line for line in (out + err).splitlines() if re.search(case.message, line)]
            assert len(matching) == 1, f"{case.id}: expected one line matching {case.message!r} in\n{out}{err}"
        if case.code == 2:
            errors = [line for line in err.splitlines() if "error:" in line]
            assert len(errors) == 1 and re.search(case.message, errors[0]), f"{case.id}: expected one error line\n{err}"
    new = files_under(world.out) - before
    if case.outputs is None:
        kept = [n for n in new if n.startswith(("checkpoints/step_", "model/", "model_best/"))]
        assert not kept, f"{case.id}: partial outputs {kept}"
    else:
        assert new == set(case.outputs), f"{case.id}: outputs {sorted(new)}, expected {sorted(case.outputs)}"
    leftovers = [p for p in world.root.rglob("*") if p.name.startswith(".") and (p.name.endswith(".tmp") or
                 p.name.startswith((".tmp-step_", ".model.")))]  # fmt: skip
    assert not leftovers, f"{case.id}: temporary files left behind: {leftovers}"


@contextlib.contextmanager
def tmpfs(path: Path, size: str, readonly: bool = False) -> Iterator[Path]:
    """A small (or read-only) file system at ``path``: real ENOSPC / EROFS, not a mock. Skips where mounting is
    not allowed (not root, or a container without the capability)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip()})")
    try:
        if readonly:
            subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True, capture_output=True)
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)
