"""``vpd train``: one command on one CPU or, under ``accelerate launch``, on many GPUs and nodes."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable


def positive_number(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    """An argparse type: a finite number > 0 of ``kind``."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
        return value

    return parse


def add_overrides_argument(parser: argparse.ArgumentParser, example: str = "--set train.batch_size=8") -> None:
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a recipe value, e.g. {example} (repeatable; values are read as YAML)",
    )


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        required=True,
        help="recipe: a YAML file or a packaged recipe name (depth_nyuv2, depth_nyuv2_mmseg, depth_kitti, "
        "demo_synthetic_depth)",
    )
    add_overrides_argument(parser, "--set model.pretrained=path/to/sd --set train.batch_size=8")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model from a recipe",
        description="Train from a recipe. The run folder (train.output_dir) keeps the merged config, TensorBoard "
        "logs, metrics.jsonl, checkpoints (a rerun resumes from the latest) and the exported model.",
    )
    add_config_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from vpd.training.config import load_run_config
    from vpd.training.trainer import Trainer

    config = load_run_config(args.config, args.overrides)
    trainer = Trainer(config)
    result = trainer.fit()
    if trainer.is_main:
        print(json.dumps({"output_dir": str(trainer.output_dir), **result}, indent=2, default=float))
    return 0
