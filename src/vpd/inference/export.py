"""ONNX export (``vpd export --format onnx``): a saved vpd model -> one ``.onnx`` file that runs without torch.

The graph takes ``images`` ``float32 [B, 3, H, W]`` RGB in [0, 1] at the height and width it was exported for (the batch
is dynamic), plus ``class_ids`` ``int64 [B]`` for a depth model (the scene class; -1 selects the mean embedding) or
``noise`` ``float32 [B, 4, H/8, W/8]`` for a model that samples its latent from the VAE posterior (Lotus-D: standard
normal noise, which the caller draws so that a run is reproducible), and returns the model's map: ``depth`` ``[B, 1, H,
W]`` in metres, semantic ``logits`` ``[B, C, H, W]``, or a one-step model's ``prediction`` (``[B, 1, H, W]`` in [0, 1],
normals ``[B, 3, H, W]``). Height and width are fixed: the models pad to a multiple of 64 and crop back in Python
arithmetic, which torch's exporter does not yet carry through symbolically (exported with dynamic sizes, the graph
answered other sizes with a wrongly shaped map), so export once per processing size. ``fp16`` stores weights and
computes in half precision (for GPU runtimes; the inputs and outputs stay float32). The file is written atomically; its
metadata names the model type, the size and the dtype.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

#: What ``vpd export --format`` accepts.
EXPORT_FORMATS = ("onnx",)
#: The dtypes an export can store.
EXPORT_DTYPES = ("fp32", "fp16")


class MapGraph(nn.Module):
    """The model with tensors in and one tensor out, as the exported graph runs it (the model's ``export_forward``,
    images and floating inputs in ``dtype``, the map out in float32)."""

    def __init__(self, model: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.model: Any = model
        self.dtype = dtype

    def forward(self, images: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        """``extra``: the graph's second input where the model has one (depth: ``class_ids``; Lotus-D: ``noise``)."""
        inputs = [images] if extra is None else [images, extra]
        inputs = [t.to(self.dtype) if t.is_floating_point() else t for t in inputs]
        return self.model.export_forward(*inputs).float()


def exportable(model: nn.Module) -> tuple[list[str], str]:
    """The graph's input and output names for ``model`` (its ``export_inputs`` / ``export_output``); ValueError
    naming what cannot be exported."""
    if not hasattr(model, "export_forward"):
        raise ValueError(f"ONNX export takes depth, semantic and one-step models, not a {type(model).__name__}")
    exported: Any = model
    return list(exported.export_inputs), str(exported.export_output)


def example_inputs(model: nn.Module, batch: int, height: int, width: int, seed: int = 0) -> list[torch.Tensor]:
    """Random inputs for :class:`MapGraph` (images, then ``class_ids`` -1 or latent ``noise`` where the graph takes
    one): what the export traces with and what checks compare torch and onnxruntime on."""
    generator = torch.Generator().manual_seed(seed)
    inputs, _ = exportable(model)
    example = [torch.rand(batch, 3, height, width, generator=generator)]
    if "class_ids" in inputs:
        example.append(torch.full((batch,), -1, dtype=torch.long))
    if "noise" in inputs:
        example.append(torch.randn(batch, 4, height // 8, width // 8, generator=generator))
    return example


def check_export(
    model: nn.Module, path: str | os.PathLike[str], *, height: int, width: int, dtype: str
) -> tuple[list[str], str]:
    """Everything :func:`export_onnx` refuses, checked before its slow trace; returns the graph's input and output
    names. Raises ValueError (or ImportError without the ``onnx`` extra) naming the problem."""
    inputs, output = exportable(model)
    if height < 8 or width < 8 or height % 8 or width % 8:
        raise ValueError(f"--height / --width: expected positive multiples of 8, got {height}x{width}")
    if dtype not in EXPORT_DTYPES:
        raise ValueError(f"--dtype {dtype!r}: ONNX export stores one of {', '.join(EXPORT_DTYPES)}")
    if Path(path).suffix != ".onnx":
        raise ValueError(f"{path}: expected a .onnx file name")
    missing = [name for name in ("onnx", "onnxscript") if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(f"ONNX export needs {' and '.join(missing)}: pip install 'vpd[onnx]'")
    return inputs, output


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    height: int,
    width: int,
    dtype: str = "fp32",
    opset: int = 18,
    optimize: bool = True,
) -> Path:
    """Exports ``model`` (eval mode, on the CPU) for ``height`` x ``width`` images into ``path`` (``.onnx``).

    ``optimize`` runs onnxscript's graph optimiser on the exported graph (constant folding, dead-code removal,
    pattern rewrites): on the tiny depth model at 128x160, 1416 nodes and 13.7 MB against 3785 and 20.1 MB, the same
    outputs, and onnxruntime 1.25-1.4x faster on the result; it is a third to 40% of the export's time.

    Raises:
        ValueError: a model that cannot be exported, a size that is not a positive multiple of 8, an unknown dtype.
    """
    inputs, output = check_export(model, path, height=height, width=width, dtype=dtype)
    path = Path(path)
    torch_dtype = torch.float16 if dtype == "fp16" else torch.float32
    example = example_inputs(model, 2, height, width)  # a batch above 1, so that the batch stays dynamic
    batch_dim = torch.export.Dim.AUTO
    dynamic = dict(zip(("images", "extra"), [{0: batch_dim}] * len(example)))
    # the exporter warns about every torchvision operator it cannot register when torchvision is absent (vpd uses
    # none) and about pytree internals; neither concerns the user
    quiet = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            # the exporter swaps module attributes for copies as it traces (the backbone's attention-map store
            # among them), and the cast would change the caller's model: export a copy, leave ``model`` as it was
            graph = MapGraph(copy.deepcopy(model).to("cpu", torch_dtype).eval(), torch_dtype).eval()
            program = torch.onnx.export(
                graph,
                tuple(example),
                dynamo=True,
                opset_version=opset,
                input_names=inputs,
                output_names=[output],
                dynamic_shapes=dynamic,
                optimize=optimize,
                verbose=False,
            )
    finally:
        quiet.setLevel(level)
    assert program is not None
    metadata = {"vpd_model_type": getattr(model, "model_type", type(model).__name__), "height": str(height),
                "width": str(width), "dtype": dtype}  # fmt: skip
    for key, value in metadata.items():
        program.model.metadata_props[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as tmp:
        staged = Path(tmp) / path.name
        program.save(staged, external_data=False)
        os.replace(staged, path)
    return path


def run_onnx(path: str | os.PathLike[str], images: Any, extra: Any = None) -> Any:
    """Runs an exported file with onnxruntime (CPU): ``images`` float32 ``[B, 3, H, W]`` in [0, 1] -> the map as a
    numpy array. ``extra``: the graph's second input where it has one (``class_ids``, default -1; ``noise``, default
    standard normal from seed 0). Needs ``onnxruntime`` (the ``onnx`` extra)."""
    import numpy as np
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {"images": np.asarray(images, dtype=np.float32)}
    batch, _, height, width = feed["images"].shape
    names = [i.name for i in session.get_inputs()]
    if "class_ids" in names:
        feed["class_ids"] = np.asarray(np.full(batch, -1) if extra is None else extra, dtype=np.int64)
    if "noise" in names:
        if extra is None:
            extra = np.random.default_rng(0).standard_normal((batch, 4, height // 8, width // 8))
        feed["noise"] = np.asarray(extra, dtype=np.float32)
    return session.run(None, feed)[0]
