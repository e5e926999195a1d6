"""Overrides that make any depth recipe a seconds-long run: a tiny model on a few small synthetic rooms."""

from __future__ import annotations

from pathlib import Path

from vpd.training.config import RunConfig, load_run_config

TINY_MODEL = [
    "model.architecture=tiny",
    "model.pretrained=null",
    "model.class_embeddings=random",
    "model.fused_channels=64",
    "model.head_channels=16",
    "model.deconv_channels=[16,16,16]",
]
TINY_DATA = [
    "data.train.kind=synthetic",
    "data.train.args={num_scenes: 8, height: 64, width: 96, seed: 1}",
    "data.val.kind=synthetic",
    "data.val.args={num_scenes: 2, height: 64, width: 96, seed: 2}",
    "augment.crop_size=[64,64]",
    "data.num_workers=0",
    "eval.windows=null",
    "eval.crop=none",
]
TINY_TRAIN = ["optim.schedule=constant", "train.batch_size=4", "train.max_steps=2", "train.progress=false"]
TINY_RUN = TINY_MODEL + TINY_DATA + TINY_TRAIN


def tiny_run_config(output_dir: Path, *extra: str) -> RunConfig:
    return load_run_config("demo_synthetic_depth", [*TINY_RUN, f"train.output_dir={output_dir}", *extra])


def as_cli(overrides: list[str]) -> list[str]:
    return [arg for override in overrides for arg in ("--set", override)]


def small_demo_vae(monkeypatch) -> None:
    """The demos' VAE pretraining (``vpd.demo.autoencoder``) cut to 2 steps on 4 small rooms."""
    import vpd.demo.autoencoder

    monkeypatch.setattr(vpd.demo.autoencoder, "VAE_STEPS", 2)
    monkeypatch.setattr(vpd.demo.autoencoder, "VAE_ROOMS", {"num_scenes": 4, "height": 64, "width": 64, "seed": 11})
