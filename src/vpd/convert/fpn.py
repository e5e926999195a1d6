"""The key map of the official segmentation decoder (mmseg ``FPN`` neck + ``FPNHead``) into
:mod:`vpd.modeling.heads.fpn`.

The official VPD seg checkpoint (and mmsegmentation's) stores, besides the backbone:

- ``neck.lateral_convs.{i}.conv.{weight,bias}`` -> ``neck.lateral.{i}.{weight,bias}``
- ``neck.fpn_convs.{i}.conv.{weight,bias}`` -> ``neck.output.{i}.{weight,bias}``
- ``decode_head.scale_heads.{i}.{j}.conv.weight`` and ``.bn.{weight,bias,running_mean,running_var,
  num_batches_tracked}`` -> ``head.scale_heads.{i}.{j}.*`` (same names; ``j`` even: blocks, odd: upsamplings)
- ``decode_head.conv_seg.{weight,bias}`` -> ``head.conv_seg.*``

It is a pure key map: every key under the two prefixes must be one of these, anything else is an error naming it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from vpd.convert.backbone import take
from vpd.modeling.heads.fpn import FPNConfig, num_scale_blocks

_NECK_KEY = re.compile(r"(lateral_convs|fpn_convs)\.(\d+)\.conv\.(weight|bias)")
_NECK_NAMES = {"lateral_convs": "lateral", "fpn_convs": "output"}
_HEAD_KEY = re.compile(
    r"conv_seg\.(weight|bias)"
    r"|scale_heads\.\d+\.\d+\.(conv\.weight|bn\.(weight|bias|running_mean|running_var|num_batches_tracked))"
)


def convert_fpn_state_dict(
    state: Mapping[str, torch.Tensor],
    used: set[str],
    *,
    neck_prefix: str = "neck.",
    head_prefix: str = "decode_head.",
) -> dict[str, torch.Tensor]:
    """Maps the official neck and decode-head entries of ``state`` to vpd's ``neck.*`` / ``head.*`` keys.

    Args:
        state: the whole source state dict (other keys are left alone).
        used: collects every consumed source key, for the caller's unexpected-key check (``check_all_used``).
        neck_prefix, head_prefix: where the release keeps the two modules.

    Returns:
        The mapped tensors (the same tensor objects, not copies).

    Raises:
        ValueError: no neck or no head keys, or a key under their prefixes that the official modules do not have.
    """
    neck = take(state, neck_prefix, used)
    head = take(state, head_prefix, used)
    if not neck or not head:
        raise ValueError(f"no FPN neck ({neck_prefix}*) or no decode head ({head_prefix}*) keys in the checkpoint")
    out: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, value in neck.items():
        match = _NECK_KEY.fullmatch(key)
        if match is None:
            unknown.append(neck_prefix + key)
            continue
        out[f"neck.{_NECK_NAMES[match[1]]}.{match[2]}.{match[3]}"] = value
    for key, value in head.items():
        if _HEAD_KEY.fullmatch(key) is None:
            unknown.append(head_prefix + key)
            continue
        out["head." + key] = value
    if unknown:
        more = f" (+{len(unknown) - 3} more)" if len(unknown) > 3 else ""
        raise ValueError(f"{len(unknown)} keys the FPN neck / FPNHead do not have: {', '.join(unknown[:3])}{more}")
    return out


def infer_fpn_config(state: Mapping[str, torch.Tensor], *, dropout: float = 0.1) -> FPNConfig:
    """The neck/head shape of a converted state dict (vpd's ``neck.*`` / ``head.*`` keys) from its tensors.

    ``feature_strides`` is reported as mmseg's nominal (4, 8, 16, ...) after checking that level ``i`` holds the
    ``max(1, i)`` blocks that rule implies; ``dropout`` is not stored in any tensor and is passed through.

    Raises:
        ValueError: a piece is missing, or the levels do not form an FPN of this kind.
    """
    levels = sorted({int(k.split(".")[2]) for k in state if k.startswith("neck.lateral.")})
    if not levels or levels != list(range(len(levels))):
        raise ValueError(f"the FPN neck's lateral convs are not numbered 0..n-1: {levels}")
    try:
        in_channels = tuple(int(state[f"neck.lateral.{i}.weight"].shape[1]) for i in levels)
        out_channels = int(state["neck.lateral.0.weight"].shape[0])
        channels = int(state["head.scale_heads.0.0.conv.weight"].shape[0])
        num_classes = int(state["head.conv_seg.weight"].shape[0])
    except KeyError as err:
        raise ValueError(f"the FPN neck / head lacks {err}") from None
    strides = tuple(4 * 2**i for i in levels)
    for i in levels:
        blocks = sorted(
            int(k.split(".")[3]) for k in state if k.startswith(f"head.scale_heads.{i}.") and k.endswith(".conv.weight")
        )
        expected = num_scale_blocks(strides[i], strides[0])
        step = 2 if i > 0 else 1
        if blocks != list(range(0, step * expected, step)):
            raise ValueError(
                f"FPN head level {i} has blocks {blocks}; a {len(levels)}-level Semantic FPN has "
                f"{list(range(0, step * expected, step))}"
            )
    heads = sorted({int(k.split(".")[2]) for k in state if k.startswith("head.scale_heads.")})
    if heads != list(levels):
        raise ValueError(f"the FPN head has scale heads {heads} for neck levels {levels}")
    return FPNConfig(
        in_channels=in_channels,
        out_channels=out_channels,
        channels=channels,
        num_classes=num_classes,
        feature_strides=strides,
        dropout=dropout,
    )
