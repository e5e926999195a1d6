"""``vpd eval``: a model on a recipe's validation set with the recipe's protocol; a table, JSON and a CSV."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vpd.commands.train import add_config_arguments
from vpd.runtime import DTYPE_CHOICES

if TYPE_CHECKING:
    from vpd.training.config import RunConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate a model with a recipe's protocol",
        description="Evaluate a model on the recipe's data.val with its eval protocol (crop, depth range, flip, "
        "sliding windows). Writes metrics.json and per_sample.csv (with --split: one folder per split).",
    )
    add_config_arguments(parser)
    parser.add_argument(
        "--model",
        default=None,
        help="a vpd model folder or hub id, or an official VPD / mmseg checkpoint file (converted on the fly); "
        "default: the recipe's model.init",
    )
    parser.add_argument("--output", default=None, help="results folder (default: <train.output_dir>/eval)")
    parser.add_argument(
        "--split",
        nargs="+",
        default=None,
        metavar="NAME",
        help="evaluate on these splits of data.val's dataset in turn (sets data.val.args.split; RefCOCO: val testA "
        "testB), each into <output>/<split>/, with a table of all at the end",
    )
    parser.add_argument(
        "--save-predictions",
        action="store_true",
        help="also write each prediction (depth: 16-bit PNG in vpd predict's units; labels: 8-bit PNG)",
    )
    parser.add_argument(
        "--dtype",
        choices=DTYPE_CHOICES,
        default="fp32",
        help="compute precision (default fp32, as the published numbers were measured; auto: bf16 on CUDA and on "
        "CPUs with bf16 matrix units, else fp32)",
    )
    parser.set_defaults(run=run)


def load_any_model(source: str, config: RunConfig) -> Any:
    """A vpd folder / hub id, or a released checkpoint file converted on the fly with the recipe's settings (what the
    weights do not hold: the depth range, the class names)."""
    from vpd.modeling.stable_diffusion import is_single_file
    from vpd.tasks import get_task

    task = get_task(config.model.task)
    if is_single_file(source):
        from vpd.convert.registry import convert_checkpoint

        return convert_checkpoint(source, task=task.name, **task.conversion_settings(config))
    return task.load_model(source)


def format_table(metrics: dict[str, float]) -> str:
    names = list(metrics)
    widths = [max(len(n), 7) for n in names]
    header = "  ".join(n.rjust(w) for n, w in zip(names, widths))
    values = "  ".join(f"{metrics[n]:.4f}".rjust(w) for n, w in zip(names, widths))
    return f"{header}\n{values}"


def run(args: argparse.Namespace) -> int:
    from accelerate import Accelerator

    from vpd.data.io import write_json_atomic
    from vpd.data.registry import build_dataset
    from vpd.runtime import announce_precision, resolve_dtype
    from vpd.tasks import get_task
    from vpd.training.config import load_run_config

    config = load_run_config(args.config, args.overrides)
    source = args.model or config.model.init
    if not source:
        raise ValueError("no model: pass --model (a vpd folder, hub id or official checkpoint) or set model.init")
    if config.data.val is None:
        raise ValueError("the recipe has no data.val to evaluate on")
    task = get_task(config.model.task)
    splits = args.split or [None]
    datasets = []  # all built first: a bad split name fails before the model loads
    for split in splits:
        val_args = dict(config.data.val.args) if split is None else {**config.data.val.args, "split": split}
        where = "data.val" if split is None else f"data.val (--split {split})"
        datasets.append((split, val_args, build_dataset(config.data.val.kind, val_args, where=where)))
    accelerator = Accelerator()
    dtype, reason = resolve_dtype(args.dtype, accelerator.device)
    if accelerator.is_main_process:
        announce_precision(dtype, reason, accelerator.device)
    model = load_any_model(source, config).to(accelerator.device, dtype).eval()
    output = Path(args.output or Path(config.train.output_dir) / "eval")

    by_split = {}
    for split, val_args, dataset in datasets:
        folder = output if split is None else output / split
        if split is not None and accelerator.is_main_process:
            print(f"split {split}: {len(dataset)} samples")
        metrics = _evaluate_into(folder, task, model, dataset, config, accelerator, source, val_args, args)
        by_split[split] = metrics
    if args.split and accelerator.is_main_process:
        rows = [{"split": split, **metrics} for split, metrics in by_split.items()]
        write_json_atomic(output / "splits.json", {"model": str(source), "splits": rows})
        print(f"\n{format_rows(rows)}\n-> {output}/splits.json")
    return 0


def _evaluate_into(
    output: Path,
    task: Any,
    model: Any,
    dataset: Any,
    config: RunConfig,
    accelerator: Any,
    source: str,
    val_args: dict[str, Any],
    args: argparse.Namespace,
) -> dict[str, float]:
    """One evaluation of ``model`` on ``dataset`` into ``output`` (metrics.json, per_sample.csv, further tables)."""
    import torch

    from vpd.configuration import to_dict
    from vpd.data.io import write_csv_atomic, write_json_atomic
    from vpd.runtime import dtype_name
    from vpd.training.evaluate import evaluate

    assert config.data.val is not None
    on_batch = None
    if args.save_predictions:
        def on_batch(batch: dict, prediction: torch.Tensor) -> None:
            for name, item in zip(batch["name"], prediction):
                task.save_prediction(model, item, output / "predictions" / name)

    start = time.perf_counter()
    result = evaluate(
        task,
        model,
        dataset,
        config.eval,
        device=accelerator.device,
        rank=accelerator.process_index,
        world_size=accelerator.num_processes,
        num_workers=config.data.num_workers,
        on_batch=on_batch,
    )
    if accelerator.is_main_process:
        output.mkdir(parents=True, exist_ok=True)
        summary = {
            "model": str(source),
            "task": task.name,
            "dataset": {"kind": config.data.val.kind, **val_args},
            "protocol": to_dict(config.eval),
            "dtype": dtype_name(next(model.parameters()).dtype),
            "samples": len(result.rows),
            "seconds": round(time.perf_counter() - start, 1),
            "metrics": result.metrics,
            **result.tables,
        }
        write_json_atomic(output / "metrics.json", summary)
        written = ["metrics.json"]
        for name, rows in (("per_sample", result.rows), *result.tables.items()):
            if rows:
                write_csv_atomic(output / f"{name}.csv", rows)
                written.append(f"{name}.csv")
        for rows in result.tables.values():
            print(format_rows(rows))
        print(format_table(result.metrics))
        print(f"{len(result.rows)} samples in {summary['seconds']}s -> {output}/{', '.join(written)}")
    return result.metrics


def format_rows(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of dict rows (floats with 4 decimals, NaN as nan)."""
    names = list(rows[0])
    cells = [[f"{row[n]:.4f}" if isinstance(row[n], float) else str(row[n]) for n in names] for row in rows]
    widths = [max(len(n), *(len(c[i]) for c in cells)) for i, n in enumerate(names)]
    lines = ["  ".join(n.rjust(w) for n, w in zip(names, widths))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(cell, widths)) for cell in cells]
    return "\n".join(lines)
