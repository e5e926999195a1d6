"""`vpd demo --task onestep` works end to end: a tiny depth and normals run, the real photo, the report."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from runs import as_cli, small_demo_vae
from vpd.cli import main

TINY_ONESTEP = [
    "data.train.args={num_scenes: 4, height: 48, width: 64, seed: 1}",
    "data.val.args={num_scenes: 2, height: 48, width: 64, seed: 2}",
    "train.batch_size=2",
    "train.max_steps=2",
    "train.log_every=1",
    "train.eval_every=0",
    "train.checkpoint_every=0",
    "train.progress=false",
]


def test_onestep_demo_end_to_end_small(tmp_path, monkeypatch):
    from vpd.demo import run_demo, summary_table

    small_demo_vae(monkeypatch)
    demo = run_demo(tmp_path, TINY_ONESTEP, progress=False, task="onestep")
    assert demo.task == "onestep"
    assert set(demo.metrics) == {"untrained depth", "trained depth", "untrained normals", "trained normals"}
    assert math.isfinite(demo.metrics["trained depth"]["abs_rel"])
    assert 0 <= demo.metrics["trained normals"]["mean"] <= 180
    assert set(demo.middlebury) == {"untrained", "trained"} and all(math.isfinite(v) for v in demo.middlebury.values())
    assert {r["target"] for r in demo.history} == {"depth", "normals"}
    report = (tmp_path / "report.html").read_text()
    assert "Middlebury" in report and report.count("<svg") >= 2
    assert report.count("data:image/png") == 3  # the 2 held-out rooms and the photo
    assert Path(tmp_path / "report.png").stat().st_size > 10_000
    assert (tmp_path / "depth" / "model" / "config.json").is_file()
    assert (tmp_path / "normals" / "model" / "config.json").is_file()
    # both models start from the VAE the demo pretrained and saved in diffusers' layout (frozen: still equal)
    from diffusers import AutoencoderKL

    from vpd.modeling.onestep import OneStepModel

    vae = AutoencoderKL.from_pretrained(tmp_path / "demo_vae").state_dict()
    for target in ("depth", "normals"):
        ours = OneStepModel.from_pretrained(tmp_path / target / "model").vae.state_dict()
        assert ours and all(torch.equal(t, vae[k]) for k, t in ours.items())
    table = summary_table(demo)
    assert "abs_rel" in table and "a11.25" in table


def test_demo_command_takes_onestep(monkeypatch, tmp_path, capsys):
    import vpd.demo
    from vpd.demo import DemoResult

    def fake_run_demo(output_dir, overrides, progress=True, *, task="depth"):
        metrics = {f"{m} depth": {"abs_rel": 0.25, "d1": 0.5, "rmse": 1.0} for m in ("untrained", "trained")} | {
            f"{m} normals": {"mean": 30.0, "median": 20.0, "a11.25": 10.0} for m in ("untrained", "trained")
        }
        return DemoResult(
            metrics, {"total": 1.0}, Path(output_dir), task=task, middlebury={"untrained": 0.3, "trained": 0.2}
        )

    monkeypatch.setattr(vpd.demo, "run_demo", fake_run_demo)
    assert main(["demo", "--task", "onestep", "--out", str(tmp_path), *as_cli(["train.max_steps=1"])]) == 0
    table = capsys.readouterr().out
    assert "normals" in table and "a11.25" in table and "0.2500" in table
