"""``vpd convert``: official VPD / mmsegmentation checkpoints and the one-step projects' folders -> vpd's format
(config.json + model.safetensors)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from vpd.commands.train import positive_number


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert an official checkpoint to vpd's format",
        description="Convert a released VPD checkpoint (depth: official or mmsegmentation; ADE20K segmentation) "
        "into a folder that vpd loads (config.json + model.safetensors). The layout is detected from the keys.",
    )
    parser.add_argument("checkpoint", help="the released file (.pth / .ckpt / .safetensors)")
    parser.add_argument("output", help="output folder (config.json + model.safetensors)")
    parser.add_argument(
        "--format",
        default=None,
        metavar="NAME",
        help="source layout (vpd-depth, mmseg-vpd-depth, vpd-semantic, vpd-referring); detected from the keys when "
        "omitted",
    )
    parser.add_argument(
        "--max-depth", type=positive_number(float), default=None, help="depth: max_depth (default: 10, NYUv2)"
    )
    parser.add_argument(
        "--num-heads", type=positive_number(int), default=None, help="UNet attention heads (default 8, SD-1.x)"
    )
    parser.add_argument(
        "--text-encoder",
        default=None,
        metavar="SRC",
        help="referring: the CLIP (folder or hub id) the model encodes expressions with, recorded in its config "
        "(default: openai/clip-vit-large-patch14, as the official models)",
    )
    parser.add_argument(
        "--bundle-text-encoder",
        action="store_true",
        default=None,
        help="referring: also copy that CLIP into the output folder, so the model needs nothing else",
    )
    onestep = parser.add_argument_group(
        "one-step projects",
        "checkpoint may also be a GenPercept UNet folder (with --base) or a Marigold / E2E-FT / Lotus pipeline folder "
        "or hub id (model_index.json); it is loaded with vpd.modeling.onestep_loading.load_onestep",
    )
    onestep.add_argument("--preset", default=None, help="genpercept, genpercept-dpt, e2eft, lotus-d or marigold")
    onestep.add_argument("--target", default=None, help="depth, disparity, normals, matting or dis")
    onestep.add_argument("--base", default=None, help="GenPercept: the Stable Diffusion 2.1 folder or hub id")
    onestep.add_argument("--dpt-head", default=None, help="GenPercept: the dpt_head folder")
    onestep.add_argument(
        "--empty-text-embedding", default=None, help="a [1, 2, D] tensor file, when the checkpoint has no text encoder"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from vpd.convert.registry import convert_checkpoint
    from vpd.modeling.stable_diffusion import is_single_file

    output = Path(args.output)
    if output.exists() and not (output.is_dir() and not any(output.iterdir())) and not args.overwrite:
        raise FileExistsError(f"{output} already exists; pass --overwrite to replace it, or choose another folder")
    if output.exists() and not output.is_dir():
        raise NotADirectoryError(f"{output} is a file; the output is a folder (config.json + model.safetensors)")
    print(f"reading {args.checkpoint} ...", file=sys.stderr, flush=True)  # a full SD-1.5 model is 3.6 GB
    model: Any
    source = str(args.checkpoint)
    looks_like_hub_id = source.count("/") == 1 and not source.startswith((".", "/", "~")) and not os.path.exists(source)
    if not (os.path.isdir(source) or (looks_like_hub_id and not is_single_file(source))):
        model = convert_checkpoint(
            args.checkpoint,
            args.format,
            max_depth=args.max_depth,
            num_heads=args.num_heads,
            text_encoder=args.text_encoder,
            bundle_text_encoder=args.bundle_text_encoder,
        )
    else:  # a one-step project's folder or hub id
        from vpd.modeling.onestep_loading import load_onestep

        model = load_onestep(
            args.checkpoint,
            preset=args.preset,
            target=args.target,
            base=args.base,
            dpt_head=args.dpt_head,
            empty_text_embedding=args.empty_text_embedding,
        )
    out = model.save_pretrained(output)
    params = sum(p.numel() for p in model.parameters())
    print(f"converted {args.checkpoint} ({model.model_type}) -> {out} ({params / 1e6:.1f}M parameters)")
    return 0
