"""Compiled inference: ``torch.compile`` with a persistent cache, and weight freezing (opt-in) only where it is exact.

Inductor's weight freezing (constant-folding the frozen weights, e.g. BatchNorm into the convolution before it, and
prepacking them for the CPU's kernels) is asked for with ``freeze=True``: on a 2-core AMD EPYC (AVX2) it took the full
SD-1.5-size depth model at 480x480 in fp32 to 0.84-0.86x the eager time (0.89-0.96x compiled without it), at about
twice the peak memory while compiling. torch 2.13 folds BatchNorm into a ``ConvTranspose2d(32, 32, 2, 2,
bias=False)`` wrongly (VPD's depth head has two such pairs). So :func:`freezing_is_exact` first compiles that very
pair with freezing on the installed torch and compares it with eager; where it does not match, the parts of the model
that hold both a ``ConvTranspose`` and a ``BatchNorm`` (:func:`folds_wrongly`: the depth head) compile without
freezing and the rest (the backbone: VAE encoder, UNet) with it, said in one printed line. The compiled kernels are
cached on disk (``TORCHINDUCTOR_CACHE_DIR``, default ``~/.cache/vpd/inductor``), so a second process starts faster.
"""

from __future__ import annotations

import copy
import functools
import os
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

#: Largest difference to eager that counts as exact in the freezing probe (its outputs are O(1)).
FREEZING_PROBE_TOLERANCE = 1e-4

_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


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


def folds_wrongly(module: nn.Module) -> bool:
    """Whether ``module`` holds the pattern the freezing probe checks: a ``ConvTranspose`` and a ``BatchNorm``."""
    modules = list(module.modules())
    return any(isinstance(m, _TRANSPOSED) for m in modules) and any(isinstance(m, _BATCH_NORMS) for m in modules)


def compile_model(model: nn.Module, *, freeze: bool = False) -> Any:
    """``torch.compile(model)`` for inference, with the persistent kernel cache; with ``freeze``, inductor's weight
    freezing where it is exact: everywhere when :func:`freezing_is_exact`, else on each top-level part of ``model``
    that does not :func:`folds_wrongly` (one printed line names the parts left unfrozen).

    The model itself is not changed: a split model is a shallow copy (sharing the weights) whose parts are compiled.
    """
    cache_dir()
    if not freeze or freezing_is_exact() or not folds_wrongly(model):
        return _compile(model, freezing=freeze)
    unfrozen = [name for name, child in model.named_children() if folds_wrongly(child)]
    parts = {name: _compile(child, freezing=name not in unfrozen) for name, child in model.named_children()}
    print(
        f"vpd: weight freezing off for {', '.join(unfrozen)}: torch {torch.__version__} folds BatchNorm into "
        "ConvTranspose2d wrongly (checked on this install); on for the rest",
        file=sys.stderr,
    )
    split = copy.copy(model)
    split._modules = {**model._modules, **parts}  # the copy's own table of parts: the model keeps its own
    return split
