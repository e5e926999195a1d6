"""``vpd serve``: a browser demo (gradio) over any model ``vpd predict`` writes for.

The page takes a photo, a model (its task read from the model's ``config.json``) and, for a referring model, a
sentence; it shows the task's preview (a depth or normals colour map, a segmentation or mask overlay) and offers the
full-precision file to download (the 16-bit depth / map PNG, the label PNG, the mask). Predictions go through the
same predictor and writer as ``vpd predict`` (:mod:`vpd.inference.outputs`), so a served file equals the one
``vpd predict`` writes for that image. Models load on first use, once.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vpd.inference.base import ImagePredictor
from vpd.inference.outputs import Writer, writer_for
from vpd.limits import MAX_MODEL_PIXELS

#: Where ``vpd demo`` leaves its models (``runs/demo/model``, ``runs/demo_<task>[/<target>]/model``).
DEMO_RUNS = Path("runs")


def demo_models(root: str | os.PathLike[str] = DEMO_RUNS) -> list[Path]:
    """The model folders earlier ``vpd demo`` runs left under ``root``, depth first."""
    root = Path(root)
    found = [*root.glob("demo*/model"), *root.glob("demo*/*/model")]
    return sorted((path for path in found if (path / "config.json").is_file()), key=lambda p: (p.parent.name, p))


@dataclass
class ServedModel:
    """One model of the page: its label, where it loads from, its task's writer and (once used) its predictor."""

    label: str
    source: str
    writer: type[Writer]
    defaults: argparse.Namespace  # vpd predict's options at their defaults, what the writer reads
    predictor: ImagePredictor | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Served:
    """What one prediction produced: the preview PNG, the file to download, a one-line summary."""

    preview: Path
    download: Path
    summary: str


class Server:
    """The models of one page, predicting into ``workdir`` (a temporary folder by default).

    Args:
        models: model folders or hub ids; each one's task is read from its config now (a bad one fails here).
        device, dtype: as for ``vpd predict`` (``dtype="auto"`` picks bf16 where the hardware has it).
    """

    def __init__(
        self,
        models: Sequence[str | os.PathLike[str]],
        *,
        device: str = "cpu",
        dtype: str = "auto",
        workdir: str | os.PathLike[str] | None = None,
    ) -> None:
        if not models:
            raise ValueError("no model to serve: pass --model PATH (or run `vpd demo` first)")
        self.device, self.dtype = device, dtype
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="vpd-serve-"))
        self.models: dict[str, ServedModel] = {}
        for source in models:
            writer = writer_for(source)
            name = Path(source).parent.name + "/" + Path(source).name if Path(source).name == "model" else str(source)
            label = f"{name} ({writer.task})"
            self.models[label] = ServedModel(label, str(source), writer, predict_defaults(str(source)))
        self._count = 0
        self._count_lock = threading.Lock()

    @property
    def labels(self) -> list[str]:
        return list(self.models)

    def _predictor(self, served: ServedModel) -> Any:  # each task's predictor has its own __call__
        with served.lock:
            if served.predictor is None:
                cls = served.writer.predictor_class()
                served.predictor = cls.from_pretrained(served.source, device=self.device, dtype=self.dtype)
            return served.predictor

    def predict(self, label: str, image: np.ndarray | None, expression: str = "", cmap: str = "spectral") -> Served:
        """Predicts ``image`` (``[H, W, 3]`` uint8 RGB) with the model ``label``; ValueError names a bad input."""
        if label not in self.models:
            raise ValueError(f"unknown model {label!r}; serving: {', '.join(self.models)}")
        if image is None:
            raise ValueError("upload a photo first")
        image = np.asarray(image)
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=-1)
        if image.ndim != 3 or image.shape[-1] not in (3, 4) or image.dtype != np.uint8:
            raise ValueError(f"expected an RGB photo, got an array of shape {image.shape} and dtype {image.dtype}")
        image = image[..., :3]
        served = self.models[label]
        expression = (expression or "").strip()
        if served.writer.takes_expressions and not expression:
            raise ValueError("a referring model needs a sentence: type what to segment, e.g. 'the chair on the left'")
        start = time.perf_counter()
        predictor = self._predictor(served)
        args = argparse.Namespace(**{**vars(served.defaults), "cmap": cmap})
        writer = served.writer(predictor, args)
        formats = served.writer.default_formats
        options = writer.options(formats)
        if served.writer.takes_expressions:
            options["expressions"] = [[expression]]
        size = (int(image.shape[0]), int(image.shape[1]))
        resolution = predictor.resolution_within(size, predictor.default_processing_resolution, MAX_MODEL_PIXELS)
        with served.lock:  # one prediction per model at a time (the predictors keep per-call state)
            prediction = predictor([image], processing_resolution=resolution, max_pixels=None, **options)[0]
        with self._count_lock:
            self._count += 1
            folder = self.workdir / f"{self._count:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        writer.write(prediction, str(folder / "photo"), image, formats)
        preview = _one(folder, served.writer.suffixes[served.writer.preview])
        download = _one(folder, served.writer.suffixes[served.writer.download])
        seconds = time.perf_counter() - start
        summary = f"{served.writer.task}: {size[0]}x{size[1]} photo in {seconds:.1f} s; download {download.name}"
        return Served(preview, download, summary)

    def build(self) -> Any:
        """The gradio page (``gradio.Blocks``); ``launch()`` it, or use :func:`launch`."""
        os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a machine that may be offline
        import gradio as gr

        from vpd.inference.visualize import COLORMAPS

        def run(label: str, image: np.ndarray | None, expression: str, cmap: str) -> tuple[str, str, str]:
            try:
                served = self.predict(label, image, expression, cmap)
            except ValueError as err:
                raise gr.Error(str(err)) from None
            return str(served.preview), str(served.download), served.summary

        referring = any(m.writer.takes_expressions for m in self.models.values())
        with gr.Blocks(title="vpd") as page:
            gr.Markdown("## vpd: visual perception with diffusion models\nUpload a photo, pick a model, predict.")
            with gr.Row():
                with gr.Column():
                    model = gr.Dropdown(self.labels, value=self.labels[0], label="model (task)", elem_id="vpd-model")
                    photo = gr.Image(type="numpy", label="photo", sources=["upload"], height=360, elem_id="vpd-photo")
                    expression = gr.Textbox(label="sentence (referring models)", visible=referring,
                                            elem_id="vpd-expression")  # fmt: skip
                    cmap = gr.Dropdown(list(COLORMAPS), value="spectral", label="colour map (depth)")
                    button = gr.Button("Predict", variant="primary", elem_id="vpd-predict")
                with gr.Column():
                    preview = gr.Image(label="result", interactive=False, height=360,
                                       buttons=["download", "fullscreen"], elem_id="vpd-result")  # fmt: skip
                    download = gr.File(label="download", interactive=False, elem_id="vpd-download")
                    summary = gr.Markdown(elem_id="vpd-summary")
            button.click(run, [model, photo, expression, cmap], [preview, download, summary])
        return page


def _one(folder: Path, suffix: str) -> Path:
    found = sorted(folder.glob(f"*{suffix}"))
    if not found:
        raise RuntimeError(f"the writer left no *{suffix} in {folder}")
    return found[0]


def predict_defaults(model: str) -> argparse.Namespace:
    """``vpd predict``'s options at their defaults (what a writer reads), for ``model``."""
    from vpd.cli import build_parser

    return build_parser().parse_args(["predict", "--model", model, "--output", os.devnull])


def launch(server: Server, *, host: str = "127.0.0.1", port: int = 7860, block: bool = True) -> Any:
    """Starts the page at ``http://host:port`` (the files it may serve: the server's work folder only); with
    ``block=False`` returns at once (the page runs in a thread; ``.close()`` the returned page to stop it)."""
    page = server.build()
    page.queue(default_concurrency_limit=1)
    page.launch(server_name=host, server_port=port, prevent_thread_lock=not block, quiet=True, show_error=True,
                allowed_paths=[str(server.workdir)], footer_links=[])  # fmt: skip
    return page
