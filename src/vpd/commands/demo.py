"""``vpd demo``: the embedded default -- train and evaluate a tiny VPD model on synthetic rooms, on the CPU."""

from __future__ import annotations

import argparse

from vpd.commands.train import add_overrides_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="a whole task pipeline on synthetic data, no weights or downloads (minutes on a CPU)",
        description="Generate synthetic rooms, train a tiny VPD model on this machine, compare it with the untrained "
        "model and baselines on held-out rooms, and write a report. depth (the default): a constant and a "
        "layout-prior baseline and a real Middlebury photo; semantic: a majority-class baseline, mIoU / aAcc / mAcc; "
        "referring: largest-object baselines, oIoU / mIoU / P@0.5; onestep: affine-invariant depth and normals.",
    )
    parser.add_argument(
        "--task",
        choices=("depth", "semantic", "referring", "onestep"),
        default="depth",
        help="which demo (default: depth)",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="output folder (report.html, report.png, the run); default runs/demo, or runs/demo_<task>",
    )
    add_overrides_argument(
        parser,
        "--set train.max_steps=300 (the recipes: configs/demo_synthetic_{depth,semantic,referring,onestep}.yaml)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from vpd.demo import run_demo, summary_table

    demo = run_demo(args.out, args.overrides, task=args.task)
    print()
    print(summary_table(demo))
    print(f"\nwall time {demo.seconds['total']:.0f}s -> {demo.output_dir}/report.html, report.png")
    return 0
