"""The demos' stand-in for Stable Diffusion's pretrained VAE.

VPD and the one-step models build on a VAE that was trained on billions of images: its latents keep what a
perception head needs. The demos have no weights to load, and a random VAE encoder scrambles the rooms so much that
the one-step and referring models barely learn in a few CPU minutes. So those demos first train the tiny SD-shaped
VAE (``TINY_VAE_CONFIG``) as an autoencoder on synthetic rooms of another seed than their training and validation
rooms (a minute or two), save it in diffusers' layout and build their models with ``model.vae=<that folder>`` --
exactly what a user does to swap in e.g. ``stabilityai/sd-vae-ft-mse``.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vpd.demo.common import sets

#: The rooms the demo VAE learns from: a seed no demo trains or evaluates on.
VAE_ROOMS: dict[str, Any] = {"num_scenes": 400, "height": 96, "width": 128, "seed": 11}
#: Optimiser steps of the demo VAE's pretraining (batches of 8 random 64x64 windows).
VAE_STEPS = 300
#: The autoencoder's loss: L1 reconstruction + this weight x the KL of the latent posterior (as SD's VAE, small).
KL_WEIGHT = 1e-6


def pretrain_demo_vae(
    folder: str | Path,
    steps: int = VAE_STEPS,
    lr: float = 1e-3,
    batch_size: int = 8,
    crop: int | None = 64,
    rooms: dict[str, Any] | None = None,
    seed: int = 0,
    progress: bool = True,
) -> tuple[Path, float]:
    """Trains the tiny VAE as an autoencoder on synthetic rooms and saves it into ``folder`` (diffusers layout:
    ``config.json`` + ``diffusion_pytorch_model.safetensors``, written into a temporary sibling and renamed).

    Each step trains on ``batch_size`` random ``crop`` x ``crop`` windows of the rooms (None: whole rooms); the VAE is
    convolutional, so it then encodes rooms of any size.

    Returns:
        ``folder`` and the mean L1 reconstruction error (images in [-1, 1]) over the last 20 steps.
    """
    from diffusers import AutoencoderKL
    from tqdm.auto import tqdm

    from vpd.data.synthetic import SyntheticDataset
    from vpd.modeling.stable_diffusion import TINY_VAE_CONFIG

    folder = Path(folder)
    torch.manual_seed(seed)
    dataset = SyntheticDataset(**(rooms or VAE_ROOMS))
    images = np.stack([dataset.load(i).image for i in range(len(dataset))])
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    vae: Any = AutoencoderKL(**TINY_VAE_CONFIG)
    vae.train()
    optimizer = torch.optim.Adam(vae.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    recent: list[float] = []
    bar = tqdm(range(steps), desc="demo VAE", disable=not progress, leave=False)
    for _ in bar:
        batch = pixels[torch.randint(len(pixels), (batch_size,), generator=generator)]
        if crop is not None:
            batch = _random_crops(batch, crop, generator)
        posterior = vae.encode(batch).latent_dist
        reconstruction = vae.decode(posterior.sample(generator=generator)).sample
        l1 = (reconstruction - batch).abs().mean()
        loss = l1 + KL_WEIGHT * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        recent = [*recent[-19:], l1.item()]
        bar.set_postfix(l1=f"{recent[-1]:.3f}")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        vae.eval().save_pretrained(tmp)
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder, float(np.mean(recent)) if recent else float("nan")


def _random_crops(images: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """One random ``size`` x ``size`` window of each image of ``[B, C, H, W]``."""
    height, width = images.shape[-2:]
    if size > min(height, width):
        raise ValueError(f"crop {size} is larger than the {height}x{width} rooms")
    tops = torch.randint(height - size + 1, (len(images),), generator=generator).tolist()
    lefts = torch.randint(width - size + 1, (len(images),), generator=generator).tolist()
    return torch.stack([x[:, t : t + size, s : s + size] for x, t, s in zip(images, tops, lefts)])


def demo_vae_override(output_dir: Path, overrides: Sequence[str], progress: bool) -> list[str]:
    """``["model.vae=<output_dir>/demo_vae"]`` after pretraining the demo VAE there, or nothing when the user's
    ``overrides`` already set ``model.vae`` (their own VAE, or ``model.vae=null`` for a random one)."""
    if sets(overrides, "model.vae"):
        return []
    tic = time.perf_counter()
    rooms = VAE_ROOMS
    folder, l1 = pretrain_demo_vae(output_dir / "demo_vae", steps=VAE_STEPS, rooms=rooms, progress=progress)
    if progress:
        print(
            f"demo: the tiny VAE pretrained as an autoencoder on {rooms['num_scenes']} other rooms "
            f"(L1 {l1:.3f} on [-1, 1]) in {time.perf_counter() - tic:.0f} s: {folder}"
        )
    return [f"model.vae={folder}"]
