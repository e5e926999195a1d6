"""Tasks plug into the one trainer, evaluator and command line: config schema, model, loss, prediction, metrics.

A task is a :class:`~vpd.tasks.base.Task` subclass registered with :func:`register_task` in its module; the modules
of the built-in tasks are listed once in ``_BUILTIN`` and imported on first use (so ``import vpd`` stays light).
"""

from __future__ import annotations

import importlib

from vpd.configuration import ConfigError
from vpd.tasks.base import Task

_BUILTIN = ("vpd.tasks.depth", "vpd.tasks.semantic", "vpd.tasks.referring", "vpd.tasks.onestep")
_TASKS: dict[str, type[Task]] = {}


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: makes ``cls`` available as ``model.task: <cls.name>``."""
    _TASKS[cls.name] = cls
    return cls


def _load_builtin() -> None:
    for module in _BUILTIN:
        importlib.import_module(module)


def task_names() -> list[str]:
    _load_builtin()
    return sorted(_TASKS)


def task_class(name: str) -> type[Task]:
    """The task class registered as ``name``; ConfigError naming the known tasks otherwise."""
    _load_builtin()
    if name not in _TASKS:
        raise ConfigError(f"model.task: unknown task {name!r}; known: {', '.join(sorted(_TASKS))}")
    return _TASKS[name]


def get_task(name: str) -> Task:
    return task_class(name)()
