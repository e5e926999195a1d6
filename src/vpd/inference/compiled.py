"""Compiled inference: ``torch.compile`` with a persistent cache, and weight freezing only where it is exact.

Inductor's weight freezing (constant-folding the frozen weights, e.g. BatchNorm into the convolution before it) is
fastest, but torch 2.13 folds BatchNorm into a ``ConvTranspose2d(32, 32, 2, 2, bias=False)`` wrongly (1.5 off on a
two-layer model; VPD's depth head has two such pairs). So before freezing, :func:`freezing_is_exact` compiles that
very pair with and without freezing on the installed torch and compares it with eager; freezing is used only when it
matches, and otherwise left off with one printed line. The compiled kernels are cached on disk
(``TORCHINDUCTOR_CACHE_DIR``, default ``~/.cache/vpd/inductor``), so a second process starts in seconds.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

#: Largest difference to eager that counts as exact in the freezing probe (its outputs are O(1)).
FREEZING_PROBE_TOLERANCE = 1e-4


def cache_dir() -> str:
    """Where compiled kernels persist: ``$TORCHINDUCTOR_CACHE_DIR``, set to ``~/.cache/vpd/inductor`` if unset."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vpd" / "inductor"
    return os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(default))


def _probe_model() -> nn.Module:
    generator = torch.Generator().manual_seed(0)
    deconv = nn.ConvTranspose2d(32, 32, 2, 2, bias=False)
    norm = nn.BatchNorm2d(32)
    with torch.no_grad():
        deconv.weight.copy_(torch.randn(deconv.weight.shape, generator=generator) * 0.1)
        norm.weight.copy_(torch.randn(32, generator=generator))
        norm.bias.copy_(torch.randn(32, generator=generator))
        norm.running_mean = torch.randn(32, generator=generator)
        norm.running_var = torch.rand(32, generator=generator) + 0.5
    return nn.Sequential(deconv, norm).eval()


@functools.cache
def freezing_is_exact() -> bool:
    """Whether inductor's weight freezing reproduces eager on the installed torch for the pattern it is known to
    break (BatchNorm after ``ConvTranspose2d(32, 32, 2, 2, bias=False)``); compiled once per process."""
    cache_dir()
    model = _probe_model()
    x = torch.randn(1, 32, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(x)
        frozen = _compile(model, freezing=True)(x)
    return bool((frozen - expected).abs().max() <= FREEZING_PROBE_TOLERANCE)


def _compile(model: nn.Module, freezing: bool) -> Any:
    """``torch.compile(model)``; with ``freezing``, every call (each may compile a new size) runs under inductor's
    ``freezing`` setting, which ``torch.compile(options=...)`` does not pass on here."""
    compiled: Any = torch.compile(model)
    if freezing:
        from torch._inductor import config as inductor_config

        forward = compiled.forward

        @functools.wraps(forward)
        def frozen_forward(*args: Any, **kwargs: Any) -> Any:
            with inductor_config.patch(freezing=True):
                return forward(*args, **kwargs)

        compiled.forward = frozen_forward
    return compiled


def compile_model(model: nn.Module, *, freeze: bool = True) -> Any:
    """``torch.compile(model)`` for inference, with the persistent kernel cache; with ``freeze``, inductor's weight
    freezing when :func:`freezing_is_exact` (otherwise without it, said in one line on stderr)."""
    cache_dir()
    use_freezing = False
    if freeze:
        use_freezing = freezing_is_exact()
        if not use_freezing:
            print(
                f"vpd: compiling without weight freezing: torch {torch.__version__} folds BatchNorm into "
                "ConvTranspose2d wrongly (checked on this install)",
                file=sys.stderr,
            )
    return _compile(model, freezing=use_freezing)
