"""``vpd serve``: the browser demo (:mod:`vpd.inference.app`)."""

from __future__ import annotations

import argparse

from vpd.commands.predict import _int_in
from vpd.runtime import DTYPE_CHOICES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="a browser demo: upload a photo, pick a model, see and download the prediction",
        description="Serve a web page (gradio) that predicts uploaded photos with vpd models: depth, semantic or "
        "referring segmentation, one-step depth / normals. Without --model it serves the models earlier `vpd demo` "
        "runs left in runs/, and trains the tiny depth demo model first (minutes on a CPU) when there are none.",
    )
    parser.add_argument("--model", action="append", metavar="PATH_OR_HUB_ID",
                        help="a vpd model folder or hub id (repeatable; the page offers each)")  # fmt: skip
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0: all)")
    parser.add_argument("--port", type=_int_in(1, 65535), default=7860, help="port (default 7860)")
    parser.add_argument("--device", default="auto", metavar="DEVICE",
                        help="cpu, cuda, cuda:1, ...; default: cuda when available")  # fmt: skip
    parser.add_argument("--dtype", choices=DTYPE_CHOICES, default="auto", metavar="NAME",
                        help=f"precision, one of {', '.join(DTYPE_CHOICES)} (default auto)")  # fmt: skip
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import importlib.util

    if importlib.util.find_spec("gradio") is None:
        raise ImportError("vpd serve needs gradio: pip install 'vpd[serve]'")
    from vpd.inference.app import Server, demo_models, launch
    from vpd.runtime import resolve_device, resolve_dtype

    models = args.model or [str(path) for path in demo_models()]
    if not models:
        from vpd.demo import run_demo

        print("vpd serve: no --model and no demo model in runs/: training the tiny depth demo model first (runs/demo)")
        models = [str(run_demo(task="depth").output_dir / "model")]
    device = resolve_device(args.device)
    resolve_dtype(args.dtype, device)  # an unusable precision stops here, before the page starts
    server = Server(models, device=str(device), dtype=args.dtype)
    print(f"vpd serve: {len(server.models)} model{'s' * (len(server.models) != 1)} "
          f"({', '.join(server.labels)}) at http://{args.host}:{args.port} (Ctrl+C stops)")  # fmt: skip
    launch(server, host=args.host, port=args.port)
    return 0
