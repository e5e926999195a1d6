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

Memory: a model may name ``compile_parts`` to be compiled one graph each (the depth model: backbone, head; its bf16
peak was 0.10-0.26 GiB lower than as one graph), and every compilation ends by handing the compiler's garbage back
(:func:`release_after_compiling`).
"""

from __future__ import annotations

import copy
import functools
import gc
import os
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vpd.runtime import release_freed_memory

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

    A model that names its ``compile_parts`` (e.g. :class:`~vpd.modeling.depth.VPDDepth`: backbone, head) has each
    compiled as a graph of its own, its forward's glue running eagerly between them. Each compilation is followed by
    :func:`release_after_compiling`. The model itself is not changed: a split model is a shallow copy (sharing the
    weights) whose parts are compiled.
    """
    cache_dir()
    release_after_compiling()
    parts: tuple[str, ...] = getattr(model, "compile_parts", ())
    exact = not freeze or freezing_is_exact()
    if not parts and (exact or not folds_wrongly(model)):
        return _compile(model, freezing=freeze)
    names = parts or tuple(name for name, _ in model.named_children())
    unfrozen = [] if exact else [name for name in names if folds_wrongly(model._modules[name])]  # type: ignore[arg-type]
    compiled = {
        name: _compile(model._modules[name], freezing=freeze and name not in unfrozen)  # type: ignore[arg-type]
        for name in names
    }
    if unfrozen:
        print(
            f"vpd: weight freezing off for {', '.join(unfrozen)}: torch {torch.__version__} folds BatchNorm into "
            "ConvTranspose2d wrongly (checked on this install); on for the rest",
            file=sys.stderr,
        )
    split = copy.copy(model)
    split._modules = {**model._modules, **compiled}  # the copy's own table of parts: the model keeps its own
    return split


def release_after_compiling() -> None:
    """From now on, every compilation in this process ends by collecting the compiler's garbage and handing the
    heap's free pages back (:func:`vpd.runtime.release_freed_memory`), before the compiled code first runs: the
    SD-size bf16 depth model (packed, one graph a part) then peaked at 2.55 GiB in its first, compiling call, against
    2.75 GiB without. A dynamo compile-end callback, registered once (again after ``torch.compiler.reset()``, which
    drops callbacks); nothing where this torch has no such callbacks."""
    try:
        from torch._dynamo.callback import callback_handler
    except ImportError:
        return
    if _release not in getattr(callback_handler, "end_callbacks", ()):
        callback_handler.register_end_callback(_release)


def _release(*_: Any) -> None:
    gc.collect()
    release_freed_memory()
