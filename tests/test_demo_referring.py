"""`vpd demo --task referring` works end to end: the locally built CLIP, the baselines, a tiny run and its report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from runs import as_cli, small_demo_vae
from vpd.cli import main

TINY_REFERRING = [
    "data.train.args={num_scenes: 4, height: 64, width: 64, seed: 1, expressions_per_scene: 2}",
    "data.val.args={num_scenes: 2, height: 64, width: 64, seed: 2, expressions_per_scene: 2}",
    "train.batch_size=2",
    "train.max_steps=2",
    "train.log_every=1",
    "train.eval_every=0",
    "train.checkpoint_every=0",
    "train.progress=false",
]


def test_referring_demo_end_to_end_small(tmp_path, monkeypatch):
    from vpd.demo import run_demo
    from vpd.demo.referring import REFERRING_MODELS

    small_demo_vae(monkeypatch)
    demo = run_demo(tmp_path, TINY_REFERRING, progress=False, task="referring")
    assert demo.task == "referring" and set(demo.metrics) == set(REFERRING_MODELS)
    for metrics in demo.metrics.values():
        assert {"oIoU", "mIoU", "P@0.5"} <= set(metrics) and 0 <= metrics["oIoU"] <= 1
    # the oracle knows the category: it is never worse than ignoring the sentence on these rooms
    assert demo.metrics["largest of category"]["mIoU"] >= demo.metrics["largest object"]["mIoU"] - 1e-9
    report = (tmp_path / "report.html").read_text()
    assert "largest of category" in report and "<svg" in report and report.count("data:image/png") >= 2
    assert "weighted cross-entropy + 1 x Dice loss" in report  # the recipe's model.dice_loss
    assert Path(tmp_path / "report.png").stat().st_size > 10_000
    assert (tmp_path / "model" / "config.json").is_file()
    assert (tmp_path / "tiny_clip" / "tokenizer_config.json").is_file()
    # the frozen VAE encoded each room it saw once, into the demo's latent cache: one file per room (4 training and
    # 2 validation rooms of 2 sentences each), never one per sentence
    assert 0 < len(list((tmp_path / "latent_cache").rglob("*.safetensors"))) <= 6
    # the model starts from the VAE the demo pretrained and saved in diffusers' layout (frozen: still equal)
    from diffusers import AutoencoderKL

    from vpd.modeling.referring import VPDReferring

    vae = AutoencoderKL.from_pretrained(tmp_path / "demo_vae").state_dict()
    ours = VPDReferring.from_pretrained(tmp_path / "model").backbone.vae.state_dict()
    assert ours and all(torch.equal(t, vae[k]) for k, t in ours.items())


def test_demo_clip_has_one_token_per_word_of_the_grammar(tmp_path):
    from transformers import CLIPTokenizer

    from vpd.data.synthetic import SyntheticReferringDataset
    from vpd.demo.referring import build_demo_clip

    tokenizer = CLIPTokenizer.from_pretrained(build_demo_clip(tmp_path / "clip"))
    rooms = SyntheticReferringDataset(6, height=64, width=64, seed=3)
    for index in range(len(rooms)):
        text = rooms.load(index).text
        assert text is not None
        assert len(tokenizer(text)["input_ids"]) == len(text.split()) + 2, text  # <start> words <end>


def test_baselines_score_their_own_masks():
    from vpd.data.synthetic import SyntheticReferringDataset
    from vpd.demo.referring import baseline_metrics

    rooms = SyntheticReferringDataset(3, height=64, width=64, seed=4)
    perfect = baseline_metrics(rooms, lambda i: rooms.load(i).targets["mask"])
    assert perfect["oIoU"] == 1.0 and perfect["P@0.9"] == 1.0
    empty = baseline_metrics(rooms, lambda i: np.zeros_like(rooms.load(i).targets["mask"]))
    assert empty["oIoU"] == 0.0


def test_demo_command_runs_the_referring_demo(monkeypatch, tmp_path, capsys):
    import vpd.demo
    from vpd.demo import DemoResult
    from vpd.demo.referring import REFERRING_MODELS

    def fake_run_demo(output_dir, overrides, progress=True, *, task="depth"):
        metrics = {name: {"oIoU": 0.25, "mIoU": 0.125, "P@0.5": 0.0625} for name in REFERRING_MODELS}
        return DemoResult(metrics, {"total": 1.0}, Path(output_dir), task=task)

    monkeypatch.setattr(vpd.demo, "run_demo", fake_run_demo)
    assert main(["demo", "--task", "referring", "--out", str(tmp_path), *as_cli(["train.max_steps=1"])]) == 0
    table = capsys.readouterr().out
    assert "largest of category" in table and "0.0625" in table and "oIoU" in table
