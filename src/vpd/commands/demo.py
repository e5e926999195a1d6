"""``vpd demo``: the embedded default -- train and evaluate a tiny VPD depth model on synthetic rooms, on the CPU."""

from __future__ import annotations

import argparse

from vpd.commands.train import add_overrides_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="the whole depth pipeline on synthetic data, no weights or downloads (a few minutes on a CPU)",
        description="Generate synthetic rooms, train a tiny VPD depth model on this machine, compare it with the "
        "untrained model, a constant and a layout-prior baseline, predict a real Middlebury photo, and write a report.",
    )
    parser.add_argument("--out", default="runs/demo", help="output folder (report.html, report.png, the run)")
    add_overrides_argument(parser, "--set train.max_steps=300 (the recipe: configs/demo_synthetic_depth.yaml)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from vpd.demo import run_demo
    from vpd.report import MODELS

    demo = run_demo(args.out, args.overrides)
    print()
    print(f"{'model':13s} {'abs_rel':>8s} {'rmse':>8s} {'d1':>8s}   {'Middlebury abs_rel (aligned)':>28s}")
    for name in MODELS:
        m = demo.metrics[name]
        print(f"{name:13s} {m['abs_rel']:8.4f} {m['rmse']:8.4f} {m['d1']:8.4f}   {demo.middlebury[name]:28.4f}")
    print(f"\nwall time {demo.seconds['total']:.0f}s -> {demo.output_dir}/report.html, report.png")
    return 0
