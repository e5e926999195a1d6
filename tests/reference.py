"""Helpers for the parity fixtures in tests/fixtures/reference (outputs of the official VPD code, see its README)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

REFERENCE = Path(__file__).parent / "fixtures" / "reference"
sys.path.insert(0, str(REFERENCE))
from weights_rule import fill_state_dict  # noqa: E402


def manifest(name: str) -> dict[str, Any]:
    return json.loads((REFERENCE / name / "manifest.json").read_text())


def official_state_dict(name: str) -> dict[str, torch.Tensor]:
    """The official-layout state dict of fixture ``name``, filled by the weight rule (what a release looks like)."""
    return fill_state_dict(manifest(name))


def load_io(name: str, size: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    folder = REFERENCE / name
    inputs = np.load(folder / f"input_{size}.npz")
    expected = np.load(folder / f"expected_{size}.npz")
    return {k: inputs[k] for k in inputs.files}, {k: expected[k] for k in expected.files}


def images_01(images_u8: np.ndarray) -> torch.Tensor:
    """uint8 [B, H, W, 3] -> float [B, 3, H, W] in [0, 1], exactly as the fixtures' README builds the input."""
    return torch.from_numpy(images_u8).permute(0, 3, 1, 2).float() / 255


def assert_close(ours: torch.Tensor, ref: np.ndarray, *, atol: float, rtol: float, what: str) -> float:
    """Compares ``ours[:n]`` with ``ref`` (float16 refs upcast); returns the max abs error."""
    ref32 = torch.from_numpy(ref.astype(np.float32))
    ours = ours[: ref32.shape[0]].float()
    assert ours.shape == ref32.shape, f"{what}: shape {tuple(ours.shape)} vs reference {tuple(ref32.shape)}"
    err = (ours - ref32).abs()
    bad = err > atol + rtol * ref32.abs()
    assert not bad.any(), f"{what}: {int(bad.sum())} values off, max abs error {float(err.max()):.3g}"
    return float(err.max())
