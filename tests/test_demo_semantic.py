"""`vpd demo --task semantic` works end to end: a tiny run, its report and metrics, and the command line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from runs import as_cli
from vpd.cli import main

TINY_SEMANTIC = [
    "data.train.args={num_scenes: 4, height: 48, width: 64, seed: 1}",
    "data.val.args={num_scenes: 2, height: 48, width: 64, seed: 2}",
    "augment.crop_size=[48,64]",
    "train.batch_size=2",
    "train.max_steps=2",
    "train.log_every=1",
    "train.eval_every=0",
    "train.checkpoint_every=0",
    "train.progress=false",
]


def test_semantic_demo_end_to_end_small(tmp_path):
    from vpd.demo import run_demo

    demo = run_demo(tmp_path, TINY_SEMANTIC, progress=False, task="semantic")
    assert demo.task == "semantic" and set(demo.metrics) == {"majority", "untrained", "trained"}
    for metrics in demo.metrics.values():
        assert {"mIoU", "aAcc", "mAcc"} <= set(metrics) and 0 <= metrics["aAcc"] <= 1
    assert set(demo.per_class) == set(demo.metrics) and len(demo.per_class["trained"]) == 33
    report = (tmp_path / "report.html").read_text()
    assert "Per-class IoU" in report and "<svg" in report and report.count("data:image/png") >= 2
    assert "SiLog" not in report
    assert Path(tmp_path / "report.png").stat().st_size > 10_000
    assert (tmp_path / "model").is_dir()


def test_majority_baseline_predicts_the_most_frequent_training_label():
    from vpd.data.synthetic import SEMANTIC_CLASSES, SyntheticDataset
    from vpd.demo import fit_majority

    rooms = SyntheticDataset(3, height=24, width=32, seed=1)
    labels = np.concatenate([rooms.load(i).targets["semantic"].ravel() for i in range(3)])
    baseline = fit_majority(rooms, SEMANTIC_CLASSES)
    assert baseline.label == np.bincount(labels[labels != 255]).argmax()
    logits = baseline(torch.zeros(2, 3, 5, 7)).logits
    assert logits.shape == (2, len(SEMANTIC_CLASSES), 5, 7) and bool((logits.argmax(1) == baseline.label).all())


def test_demo_command_takes_the_task(monkeypatch, tmp_path, capsys):
    import vpd.demo
    from vpd.cli import build_parser
    from vpd.demo import DemoResult

    args = build_parser().parse_args(["demo", "--task", "semantic", "--set", "train.max_steps=3"])
    assert (args.task, args.out, args.overrides) == ("semantic", None, ["train.max_steps=3"])
    assert build_parser().parse_args(["demo"]).task == "depth"  # `make demo` stays the depth demo
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "--task", "normals"])

    calls = []

    def fake_run_demo(output_dir, overrides, progress=True, *, task="depth"):
        calls.append((output_dir, overrides, task))
        metrics = {name: {"mIoU": 0.5, "aAcc": 0.75, "mAcc": 0.625} for name in ("majority", "untrained", "trained")}
        return DemoResult(metrics, {"total": 1.0}, Path(output_dir), task=task)

    monkeypatch.setattr(vpd.demo, "run_demo", fake_run_demo)
    assert main(["demo", "--task", "semantic", "--out", str(tmp_path), *as_cli(["train.max_steps=1"])]) == 0
    assert calls == [(str(tmp_path), ["train.max_steps=1"], "semantic")]
    table = capsys.readouterr().out
    assert "mIoU" in table and "majority" in table and "0.6250" in table and "report.html" in table
