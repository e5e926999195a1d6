"""Tasks plug into the one trainer and evaluator: model, loss, prediction, metrics, visualisation."""

from __future__ import annotations

from vpd.tasks.base import Task


def get_task(name: str) -> Task:
    from vpd.tasks.depth import DepthTask

    tasks: dict[str, type[Task]] = {"depth": DepthTask}
    if name not in tasks:
        raise ValueError(f"unknown task {name!r}; known: {', '.join(sorted(tasks))}")
    return tasks[name]()
