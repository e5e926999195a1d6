"""``vpd convert``: official VPD / mmsegmentation checkpoints -> vpd's format (config.json + model.safetensors)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from vpd.commands.train import positive_number

FORMATS = {
    "vpd-depth": "official wl-zhao/VPD NYUv2 depth checkpoint ({'model': state_dict})",
    "mmseg-vpd-depth": "mmsegmentation VPD depth checkpoint ({'meta', 'state_dict'})",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert an official checkpoint to vpd's format",
        description="Convert a released checkpoint into a folder that VPDDepth.from_pretrained loads.",
    )
    parser.add_argument("checkpoint", help="the released file (.pth / .ckpt / .safetensors)")
    parser.add_argument("output", help="output folder (config.json + model.safetensors)")
    parser.add_argument(
        "--format",
        choices=sorted(FORMATS),
        default=None,
        help="source layout; detected from the keys when omitted. "
        + "; ".join(f"{k}: {v}" for k, v in FORMATS.items()),
    )
    parser.add_argument(
        "--max-depth", type=positive_number(float), default=None, help="override max_depth (default: 10, NYUv2)"
    )
    parser.add_argument(
        "--num-heads", type=positive_number(int), default=None, help="UNet attention heads (default 8, SD-1.x)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from vpd.convert.vpd_depth import Layout, convert_vpd_depth
    from vpd.modeling.depth import VPDDepthConfig

    output = Path(args.output)
    if output.exists() and not (output.is_dir() and not any(output.iterdir())) and not args.overwrite:
        raise FileExistsError(f"{output} already exists; pass --overwrite to replace it, or choose another folder")
    if output.exists() and not output.is_dir():
        raise NotADirectoryError(f"{output} is a file; the output is a folder (config.json + model.safetensors)")

    layouts: dict[str | None, Layout | None] = {"vpd-depth": "vpd", "mmseg-vpd-depth": "mmseg", None: None}
    layout = layouts[args.format]
    base = VPDDepthConfig()
    if args.max_depth is not None:
        base = dataclasses.replace(base, max_depth=args.max_depth)
    print(f"reading {args.checkpoint} ...", file=sys.stderr, flush=True)  # a full SD-1.5 model is 3.6 GB
    model = convert_vpd_depth(args.checkpoint, layout, base_config=base, num_heads=args.num_heads)
    out = model.save_pretrained(output)
    params = sum(p.numel() for p in model.parameters())
    print(f"converted {args.checkpoint} -> {out} ({params / 1e6:.1f}M parameters)")
    return 0
