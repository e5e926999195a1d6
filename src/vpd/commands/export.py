"""``vpd export``: a saved vpd model -> an ONNX file (:mod:`vpd.inference.export`), checked against torch."""

from __future__ import annotations

import argparse
import time

from vpd.commands.predict import _int_in


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a model to ONNX",
        description="Export a vpd depth, semantic or one-step model folder (or hub id) to an ONNX file for one image "
        "size (the batch stays dynamic), and check it with onnxruntime against torch on a random image.",
    )
    parser.add_argument("model", help="a vpd model folder or hub id")
    parser.add_argument("output", help="the .onnx file to write")
    parser.add_argument("--format", default="onnx", metavar="NAME", help="the export format (onnx, the default)")
    parser.add_argument("--height", type=_int_in(8), required=True, help="image height the graph takes (multiple of 8)")
    parser.add_argument("--width", type=_int_in(8), required=True, help="image width the graph takes (multiple of 8)")
    parser.add_argument("--dtype", default="fp32", metavar="NAME", help="stored precision: fp32 (default) or fp16")
    parser.add_argument("--no-check", action="store_true", help="skip the onnxruntime check against torch")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from vpd.inference.export import EXPORT_FORMATS, MapGraph, check_export, example_inputs, export_onnx, run_onnx
    from vpd.modeling.hub import PretrainedModel

    if args.format not in EXPORT_FORMATS:
        raise ValueError(f"--format {args.format!r}: expected one of {', '.join(EXPORT_FORMATS)}")
    model = PretrainedModel.from_pretrained(args.model)
    check_export(model, args.output, height=args.height, width=args.width, dtype=args.dtype)  # before the trace
    print(f"vpd export: tracing {args.model} for {args.height}x{args.width} images")
    start = time.perf_counter()
    path = export_onnx(model, args.output, height=args.height, width=args.width, dtype=args.dtype)
    print(f"exported {args.model} -> {path} ({args.height}x{args.width}, {args.dtype}) in "
          f"{time.perf_counter() - start:.1f} s")  # fmt: skip
    if args.no_check or args.dtype != "fp32":
        return 0
    example = example_inputs(model, 1, args.height, args.width)
    with torch.inference_mode():
        expected = MapGraph(model.float(), torch.float32)(*example).numpy()
    got = run_onnx(path, *(tensor.numpy() for tensor in example))
    print(f"onnxruntime vs torch on a random image: max abs difference {abs(got - expected).max():.2e}")
    return 0
