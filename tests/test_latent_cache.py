"""Training's latent cache: each image's frozen-encoder output computed once and read back exactly, keyed by content
and by the encoder's weights; training with it gives the run without it; random augmentation and a trainable encoder
are refused in one line."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from runs import as_cli
from vpd.cli import main
from vpd.configuration import ConfigError
from vpd.data.transforms import CenterCrop, Compose, HorizontalFlip, RandomCrop, Resize
from vpd.training.latent_cache import LatentCache, attach


class _Counting(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1).requires_grad_(False)
        self.seen = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen += len(x)
        return self.conv(x)


def test_cache_reads_back_exactly_and_keys_by_content_and_weights(tmp_path: Path) -> None:
    torch.manual_seed(0)
    encoder = _Counting()
    cache = LatentCache(tmp_path, encoder)
    images = torch.rand(3, 3, 8, 8)
    first = cache(images, encoder)
    assert encoder.seen == 3 and (cache.hits, cache.misses) == (0, 3)
    torch.testing.assert_close(first, encoder.conv(images), rtol=0, atol=0)
    mixed = torch.cat([images[1:2], torch.rand(1, 3, 8, 8), images[0:1]])  # two seen, one new, in another order
    again = cache(mixed, encoder)
    assert encoder.seen == 4 and (cache.hits, cache.misses) == (2, 4)
    torch.testing.assert_close(again[0], first[1], rtol=0, atol=0)
    torch.testing.assert_close(again[2], first[0], rtol=0, atol=0)
    assert not list(cache.folder.glob(".*"))  # atomic writes leave nothing behind
    assert "2 of 6 images read" in cache.summary()
    # another encoder (other weights) never reads these latents; an image changed in one value is a new key
    other = _Counting()
    assert LatentCache(tmp_path, other).folder != cache.folder
    images[0, 0, 0, 0] += 1e-3
    cache(images[:1], encoder)
    assert encoder.seen == 5


def test_transforms_say_whether_they_are_random() -> None:
    assert Compose([CenterCrop(8), Resize(4), HorizontalFlip(1.0)]).random is False
    assert Compose([CenterCrop(8), HorizontalFlip(0.5)]).random is True
    assert Compose([RandomCrop(8)]).random is True
    assert Compose([lambda sample, rng: sample]).random is True  # a transform that does not say: assumed random


def test_attach_refuses_a_trainable_encoder_and_models_without_one(tiny_depth_model: nn.Module, tmp_path: Path) -> None:
    caches = attach(tiny_depth_model, tmp_path)
    assert len(caches) == 1 and tiny_depth_model.backbone.latent_cache is caches[0]
    tiny_depth_model.backbone.vae.requires_grad_(True)
    with pytest.raises(ConfigError, match="the VAE encoder is being trained"):
        attach(tiny_depth_model, tmp_path)
    with pytest.raises(ConfigError, match="a Linear has no frozen encoder"):
        attach(nn.Linear(2, 2), tmp_path)


ONESTEP = ["model.task=onestep", "model.pretrained=null", "model.architecture=tiny", "model.preset=genpercept",
           "model.target=depth", "data.train.kind=synthetic", "data.val=null", "data.num_workers=0",
           "data.train.args={num_scenes: 4, height: 64, width: 64, seed: 1}", "optim.lr=1e-3", "train.max_steps=4",
           "train.batch_size=2", "train.grad_accum=1", "train.progress=false", "train.checkpoint_every=0",
           "augment.crop_size=null", "augment.flip=0"]  # fmt: skip


def _train(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, *extra: str) -> dict:
    recipe = tmp_path / "onestep.yaml"
    recipe.write_text("model:\n  task: onestep\n")
    overrides = [*ONESTEP, f"train.output_dir={tmp_path / name}", *extra]
    assert main(["train", "--config", str(recipe), *as_cli(overrides)]) == 0
    return json.loads(capsys.readouterr().out)


def test_training_with_the_cache_equals_training_without(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plain = _train(tmp_path, capsys, "plain")
    cache = f"train.latent_cache={tmp_path / 'latents'}"
    cached = _train(tmp_path, capsys, "cached", cache)
    assert math.isclose(cached["final_loss"], plain["final_loss"], rel_tol=1e-5)
    # 4 rooms, 4 steps of 2 (two epochs): each image encoded once, in the first epoch; read back in the second
    assert cached["latent_cache"] == {"hits": 4, "misses": 4}
    again = _train(tmp_path, capsys, "again", cache)  # a new run over the same images reads every latent
    assert again["latent_cache"] == {"hits": 8, "misses": 0}
    assert math.isclose(again["final_loss"], plain["final_loss"], rel_tol=1e-5)

    code = main(["train", "--config", str(tmp_path / "onestep.yaml"),
                 *as_cli([*ONESTEP, f"train.output_dir={tmp_path / 'x'}", "augment.flip=0.5", cache])])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "train.latent_cache: the training augmentation" in err and "Traceback" not in err


def test_vpd_backbone_reads_its_latents_from_the_cache(tiny_depth_model: nn.Module, tmp_path: Path) -> None:
    images = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        expected = tiny_depth_model(images).depth
        (cache,) = attach(tiny_depth_model, tmp_path)
        first, second = tiny_depth_model(images).depth, tiny_depth_model(images).depth
    assert (cache.hits, cache.misses) == (2, 2)
    torch.testing.assert_close(first, expected, rtol=0, atol=0)
    torch.testing.assert_close(second, expected, rtol=0, atol=0)
