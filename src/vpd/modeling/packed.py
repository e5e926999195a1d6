"""Convolution weights packed once for oneDNN, for bf16 inference on the CPU (``pack_weights``; on by default there).

oneDNN computes a convolution on weights in a blocked layout of its own. Given torch's plain ``[O, I, kh, kw]``
weights, every eager call reorders them first; for the UNet's 1280-channel layers at 16x16 that reordering is most of
the call (bf16, 2-core Intel Xeon with AMX, torch 2.13: 10.5 ms a call against 3.4 ms on weights packed beforehand;
640 channels at 32x32: 4.3 against 2.6 ms). Inductor's weight freezing packs them too, but keeps the plain weights
beside the packed ones (twice the weights' memory). :func:`pack_weights` instead turns each bf16 ``nn.Conv2d`` into a
:class:`PackedConv2d` in place: its weight is packed once for every input size and the plain
weight is freed, its memory handed back to the operating system, so the model takes no more memory than before. Each
convolution's output is bitwise that of ``nn.Conv2d`` (the same oneDNN kernels), but comes channels-last even for an
NCHW input, so the layers after it may round in another order: on the tiny official depth fixture the bf16 model moved
by 0.013 m at most (0.001 m on average; bf16 against fp32 is 0.019 m there). It works in eager mode and under
``torch.compile`` without freezing (the packed convolution is one operator between the compiled kernels).

A packed convolution is for inference: it runs on the CPU, in its weight's dtype, without gradients, and refuses
anything else with a one-line error. ``state_dict()`` still holds the plain weights (unpacked on the way out) and
``load_state_dict`` packs what it loads, so checkpoints are unchanged. fp32 is left alone: there the packed kernels are
no faster except at 1280 channels, and change the output's layout, which changes fp32's GroupNorm numerics.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vpd.runtime import dtype_name, release_freed_memory

#: The dtypes whose convolutions are packed (see the module: fp32 gains nothing).
PACKED_DTYPES = (torch.bfloat16,)

#: Plain weights freed between two hand-backs of the heap's free pages (each walks the whole heap: tens of ms in a
#: large process), so packing overshoots the model's memory by at most this much.
TRIM_BYTES = 64 * 2**20

# the input size the packing is asked for: packed for 64x64 or for the real size, the UNet's 320-1280-channel
# convolutions ran equally fast at 16x16 to 64x64, so the weights are packed once for every size
_NOMINAL_SIZE = 64


def packing_supported() -> bool:
    """Whether this torch build and CPU run oneDNN's bf16 convolutions (not on CPUs without AVX512 / AMX)."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def _geometry(conv: nn.Conv2d) -> tuple[list[int], list[int], list[int], int]:
    return list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups  # type: ignore[arg-type]


def _pack(conv: nn.Conv2d, weight: torch.Tensor) -> torch.Tensor:
    size = [1, conv.in_channels, _NOMINAL_SIZE, _NOMINAL_SIZE]
    return torch.ops.mkldnn._reorder_convolution_weight(weight.detach(), *_geometry(conv), size)


class PackedConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` whose weight is held packed for oneDNN (``packed_weight``); made by :func:`pack_weights`.

    ``weight`` reads back the plain weight (a new tensor each time). Same state dict as the convolution it replaces.
    """

    packed_weight: torch.Tensor

    @property
    def weight(self) -> torch.Tensor:  # type: ignore[override]
        return self.packed_weight.to_dense()

    def _repack(self, weight: torch.Tensor) -> None:
        self.packed_weight = _pack(self, weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or x.dtype != self.packed_weight.dtype:
            raise ValueError(
                f"{type(self).__name__}: packed weights run {dtype_name(self.packed_weight.dtype)} inputs on the "
                f"CPU, got {dtype_name(x.dtype)} on {x.device.type} (load the model again to run it elsewhere)"
            )
        if self.training or x.requires_grad:
            raise RuntimeError(
                f"{type(self).__name__}: packed weights are for inference (no training, no gradients); "
                "load the model again to train it"
            )
        with torch.no_grad():  # the bias needs no gradient either
            return torch.ops.mkldnn._convolution_pointwise(
                x, self.packed_weight, self.bias, *_geometry(self), "none", [], ""
            )

    def __getstate__(self) -> dict[str, Any]:  # deepcopy and pickle: the plain weight (a packed one has no storage)
        state = self.__dict__.copy()
        state["packed_weight"] = self.weight
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        weight = state.pop("packed_weight")
        super().__setstate__(state)
        self._repack(weight)

    def _save_to_state_dict(self, destination: dict[str, Any], prefix: str, keep_vars: bool) -> None:
        destination[prefix + "weight"] = self.weight
        super()._save_to_state_dict(destination, prefix, keep_vars)

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        key = prefix + "weight"
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
        if key in unexpected_keys:  # not a parameter here: packed below
            unexpected_keys.remove(key)
        if key not in state_dict:
            if strict:
                missing_keys.append(key)
            return
        weight = state_dict[key]
        expected = tuple(self.packed_weight.shape)
        if tuple(weight.shape) != expected:
            error_msgs.append(f"size mismatch for {key}: copying a param with shape {tuple(weight.shape)}, "
                              f"the shape in current model is {expected}.")  # fmt: skip
            return
        self._repack(weight.to(self.packed_weight.dtype))


def packable(module: nn.Module) -> bool:
    """Whether ``module`` is a plain ``nn.Conv2d`` with a CPU weight in a :data:`PACKED_DTYPES` dtype and zero
    padding given as numbers."""
    return (
        type(module) is nn.Conv2d
        and module.weight.device.type == "cpu"
        and module.weight.dtype in PACKED_DTYPES
        and module.padding_mode == "zeros"
        and not isinstance(module.padding, str)
    )


def pack_weights(model: nn.Module) -> int:
    """Packs every :func:`packable` convolution of ``model`` in place (each becomes a :class:`PackedConv2d`, its plain
    weight freed and its memory returned to the system) and returns how many there were. ``model`` is then for
    inference on the CPU only (see the module)."""
    if not packing_supported():
        return 0
    convolutions = list({id(m): m for m in model.modules() if packable(m)}.values())
    freed = 0
    for conv in convolutions:
        weight = conv._parameters.pop("weight")
        assert weight is not None
        conv.__class__ = PackedConv2d
        conv._repack(weight)  # type: ignore[operator]
        freed += weight.numel() * weight.element_size()
        del weight
        if freed >= TRIM_BYTES:  # the plain weights' pages, before the next packed weights take new ones
            release_freed_memory()
            freed = 0
    if freed:
        release_freed_memory()
    return len(convolutions)
