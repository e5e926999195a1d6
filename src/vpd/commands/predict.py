"""``vpd predict``: predictions for image files and folders with any vpd model; the task comes from the model.

Depth models write, for every input image ``<root>/<rel>/<name>.<ext>``, ``<output>/<rel>/<name>_depth.png``
(uint16, millimetres; 1/256 m, the KITTI convention, for models whose ``max_depth`` exceeds 65.535 m; see
``--png-scale``), ``<name>_depth.npy`` (float32 metres) and ``<name>_depth_color.png`` (near = red with the default
Spectral map). Segmentation models write ``<name>_labels.png`` (uint8 class ids), ``<name>_labels_color.png`` (the
ADE20K palette), ``<name>_overlay.png`` (colours over the photo) and, on request, ``<name>_probs.npy`` (float16
``[C, H, W]``). Referring segmentation models take sentences, ``--expression TEXT`` (repeatable, for every image)
and / or ``--expressions FILE.jsonl`` (lines ``{"image": path, "expression": text}``, paths relative to the file's
folder, several lines per image allowed; its images are inputs too, keeping their folders below the file's), and
write per image and sentence ``k`` ``<name>_<k>_mask.png`` (0 / 255), ``<name>_<k>_overlay.png`` (the mask over the
photo under a band with the sentence) and ``<name>_<k>_prob.png`` (16-bit, probability x 65535), then
``<name>_expressions.json`` (``k`` -> sentence and files). The folder structure below each input folder is kept; a file
given directly lands in ``<output>`` itself. Every file is written atomically (``vpd.inference.outputs``).

Error policy: problems that make the whole run pointless (no images, a missing model, an unknown scene, a device
this machine lacks, an unusable PNG scale, a referring model without sentences or a bad line in ``--expressions``
(naming file and line), sentences for a model that takes none, two inputs that would write the same output, an
output that would replace an input, an output folder that cannot be written) stop before any prediction with one
line and exit code 2. An image that cannot be read (corrupt, truncated, not an image, too large to decode safely) or
predicted (too elongated for the windows asked for) is skipped with one line naming it; the others are still
predicted and the run ends with a list of the failures and exit code 1. An image larger than ``--max-pixels`` runs
at the largest processing resolution within that budget, said in one line, and its depth is resized back to the full
size.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from vpd.commands.train import positive_number
from vpd.limits import MAX_MODEL_PIXELS, MAX_PROCESSING_RESOLUTION, MAX_WINDOWS
from vpd.runtime import DTYPE_CHOICES

COLORMAP_NAMES = ("spectral", "turbo", "gray")  # vpd.inference.visualize.COLORMAPS, without importing numpy here


@dataclass(frozen=True)
class _Job:
    source: str  # the image file
    stem: str  # output path without suffix, relative to --output


def _int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    what = f">= {low}" if high is None else f"from {low} to {high}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer {what}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected an integer {what}, got {value}")
        return value

    return parse


def _resample_methods(text: str) -> tuple[str, str]:
    from vpd.inference.onestep import RESAMPLE_METHODS

    parts = [part.strip() for part in text.split(",")]
    if len(parts) > 2 or any(part not in RESAMPLE_METHODS for part in parts):
        raise argparse.ArgumentTypeError(f"expected IN or IN,OUT from {', '.join(RESAMPLE_METHODS)}, got {text!r}")
    return parts[0], parts[-1]


def _sentence(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a non-empty sentence, got {text!r}")
    return text


def _formats(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    if not names:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of formats, got {text!r}")
    return names


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="predict depth maps or segmentations for images and folders",
        description="Predict with a vpd model (depth, semantic or referring segmentation, from the model's config) "
        "for image files and folders (searched recursively).",
    )
    parser.add_argument(
        "inputs",
        nargs="*",
        metavar="INPUT",
        help="image files and/or folders of images (referring: may be left out with --expressions)",
    )
    parser.add_argument(
        "--model",
        required=True,
        metavar="PATH_OR_HUB_ID",
        help="checkpoint folder (config.json + model.safetensors) or hub id",
    )
    parser.add_argument("--output", "-o", required=True, metavar="DIR", help="output folder (created)")
    parser.add_argument(
        "--scene",
        default=None,
        metavar="NAME",
        help="depth: scene class name (or index) to condition on, e.g. bedroom for NYUv2 models; "
        "default: the mean of all class embeddings (unknown scene)",
    )
    parser.add_argument(
        "--expression",
        action="append",
        type=_sentence,
        default=None,
        metavar="TEXT",
        help="referring: a sentence naming the object to segment, for every input image (repeatable)",
    )
    parser.add_argument(
        "--expressions",
        default=None,
        metavar="FILE.jsonl",
        help='referring: lines {"image": path, "expression": text} (paths relative to the file\'s folder; several '
        "lines per image allowed); its images are predicted too",
    )
    parser.add_argument("--flip", action="store_true", help="average with the horizontally flipped prediction")
    parser.add_argument(
        "--ms", action="store_true", help="segmentation: the official multi-scale test (scales 1.0-1.5 of 2048x512)"
    )
    parser.add_argument(
        "--windows",
        metavar="N",
        type=_int_in(1, MAX_WINDOWS),
        default=None,
        help="depth: sliding square windows along the longer side (official NYUv2 test: 2); default: whole image",
    )
    parser.add_argument(
        "--processing-resolution",
        metavar="N",
        type=_int_in(0, MAX_PROCESSING_RESOLUTION),
        default=None,
        help="resize so the longer side has N pixels before the model, outputs resized back; 0: native (the default, "
        "except one-step models: the checkpoint's, else 768); referring: the model sees N x N (0: the official "
        "512 x 512)",
    )
    parser.add_argument(
        "--steps",
        metavar="N",
        type=_int_in(1),
        default=None,
        help="one-step family, Marigold models: denoising steps (default: the checkpoint's)",
    )
    parser.add_argument(
        "--ensemble-size",
        metavar="N",
        type=_int_in(1),
        default=None,
        help="one-step family, Marigold models: predictions averaged after scale-and-shift alignment (default 1)",
    )
    parser.add_argument(
        "--resample",
        metavar="IN[,OUT]",
        type=_resample_methods,
        default=None,
        help="one-step family: how the image is resized to the processing resolution and the map back, one of "
        "nearest, nearest-exact, bilinear, bicubic, area (diffusers' Marigold names; OUT defaults to IN); default: "
        "each project's own",
    )
    parser.add_argument(
        "--max-pixels",
        metavar="N",
        type=_int_in(1),
        default=MAX_MODEL_PIXELS,
        help=f"pixel budget of one image as the model sees it (default {MAX_MODEL_PIXELS}, 2048x2048); larger images "
        "run at the largest processing resolution within it, said per image",
    )
    parser.add_argument(
        "--batch-size",
        metavar="N",
        type=_int_in(1),
        default=1,
        help="images (and crops; referring: sentences of an image) per model call (default 1)",
    )
    parser.add_argument(
        "--device", default="auto", metavar="DEVICE", help="cpu, cuda, cuda:1, mps, ...; default: cuda when available"
    )
    parser.add_argument(
        "--dtype",
        choices=DTYPE_CHOICES,
        default="auto",
        help="compute precision; auto (default): bf16 on CUDA and on CPUs with bf16 matrix units (AMX, "
        "AVX512-BF16), else fp32 (the choice is printed); fp16 needs a GPU or a CPU with fp16 units",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="run the model through torch.compile: minutes on the first image of each size (printed), faster after; "
        "compiled kernels are cached in $TORCHINDUCTOR_CACHE_DIR (default ~/.cache/vpd/inductor)",
    )
    parser.add_argument(
        "--freeze-weights",
        action="store_true",
        help="with --compile: inductor's weight freezing wherever it is exact on this torch (faster on a CPU, about "
        "twice the peak memory while compiling)",
    )
    parser.add_argument(
        "--winograd",
        action="store_true",
        help="fp32 on the CPU: Winograd 3x3 convolutions (128+ input channels, 64x64 to 512x512 inputs): fewer "
        "multiplications; the transformed filters take 4x those layers' weight memory",
    )
    parser.add_argument(
        "--no-pack-weights",
        action="store_true",
        help="bf16 on the CPU: keep the convolution weights in torch's layout, reordered on every call (by default "
        "they are packed for oneDNN once: faster, same outputs, no more memory)",
    )
    parser.add_argument(
        "--formats",
        metavar="LIST",
        type=_formats,
        default=None,
        help="comma-separated outputs; depth: png16 (uint16 PNG), npy (float32 metres), color (default: all); "
        "segmentation: labels, color, overlay (default) and probs (float16 scores .npy); "
        "referring: mask, overlay, prob (default: all)",
    )
    parser.add_argument(
        "--cmap", choices=COLORMAP_NAMES, default=None, help="depth: colour map of the colour PNG (spectral: near red)"
    )
    parser.add_argument(
        "--png-scale",
        metavar="UNITS",
        type=positive_number(float),
        default=None,
        help="depth: 16-bit PNG units per metre; default 1000 (millimetres), or 256 (KITTI convention) for models "
        "whose max_depth exceeds the 65.535 m that millimetres can hold",
    )
    parser.set_defaults(run=run)


def _is_within(path: str, folder: str) -> bool:
    try:
        return os.path.commonpath([path, folder]) == folder
    except ValueError:  # different drives on Windows
        return False


def read_expressions(path: str) -> list[tuple[str, str]]:
    """``(image, sentence)`` per non-blank line of a ``--expressions`` JSON-lines file, image paths joined onto the
    file's folder.

    Raises:
        FileNotFoundError: no such file, or a line naming a missing image (with the line number).
        ValueError: a line that is not a JSON object with a non-empty string ``image`` and ``expression`` (naming the
            file and line), or no lines at all.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--expressions {path}: no such file")
    base = os.path.dirname(os.path.abspath(path))
    pairs: list[tuple[str, str]] = []
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                where = f"{path}:{number}"
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f"{where}: not valid JSON ({err.msg} at column {err.colno})") from None
                if not isinstance(record, dict):
                    raise ValueError(f"{where}: expected an object with keys image and expression, got "
                                     f"{type(record).__name__}")  # fmt: skip
                image, text = record.get("image"), record.get("expression")
                if not isinstance(image, str) or not image.strip():
                    raise ValueError(f'{where}: "image": expected an image path, got {image!r}')
                if not isinstance(text, str) or not text.strip():
                    raise ValueError(f'{where}: "expression": expected a non-empty sentence, got {text!r}')
                full = os.path.join(base, image)
                if not os.path.isfile(full):
                    raise FileNotFoundError(f"{where}: {full}: no such image file")
                pairs.append((os.path.normpath(full), text))
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    if not pairs:
        raise ValueError(f"--expressions {path}: no lines with an image and an expression")
    return pairs


def _expression_jobs(path: str, pairs: list[tuple[str, str]]) -> list[_Job]:
    """One job per image of an ``--expressions`` file, its stem the path below the file's folder."""
    base = os.path.dirname(os.path.abspath(path))
    jobs: dict[str, _Job] = {}
    for image, _ in pairs:
        key = os.path.realpath(image)
        if key in jobs:
            continue
        relative = os.path.relpath(os.path.abspath(image), base)
        if relative.startswith(os.pardir) or os.path.isabs(relative):  # outside the file's folder: its name alone
            relative = os.path.basename(image)
        jobs[key] = _Job(image, os.path.splitext(relative)[0])
    return list(jobs.values())


def collect_jobs(inputs: list[str], output: str, suffixes: Sequence[str], extra: Sequence[_Job] = ()) -> list[_Job]:
    """The images to predict and their output stems, checked for collisions before any work is done; ``extra``
    jobs (the images of ``--expressions``) are added unless an input already holds them.

    Raises:
        FileNotFoundError: an input does not exist.
        ValueError: no images, two inputs mapping to the same output, or an output that is an input file.
    """
    from vpd.data.io import list_images

    out_real = os.path.realpath(output)
    jobs: list[_Job] = []
    for entry in inputs:
        if os.path.isdir(entry):
            files = list_images(entry, recursive=True)
            if out_real != os.path.realpath(entry):
                # A previous run's outputs in a sub-folder of an input folder must not become inputs of this one.
                # (With --output equal to the input folder, they would be refused below as overwriting inputs.)
                files = [f for f in files if not _is_within(os.path.realpath(f), out_real)]
            if not files:
                raise ValueError(f"{entry}: no image files outside the output folder {output}")
            for path in files:
                relative = os.path.relpath(path, entry)  # list_images joins onto entry: no '..' even via symlinks
                jobs.append(_Job(path, os.path.splitext(relative)[0]))
        elif os.path.exists(entry):
            jobs.append(_Job(entry, os.path.splitext(os.path.basename(entry))[0]))
        else:
            raise FileNotFoundError(f"{entry}: no such file or folder")
    known = {os.path.realpath(job.source) for job in jobs}
    jobs += [job for job in extra if os.path.realpath(job.source) not in known]

    seen: dict[str, str] = {}
    for job in jobs:
        key = os.path.normcase(os.path.normpath(job.stem))
        if key in seen:
            raise ValueError(
                f"{seen[key]} and {job.source} would both write {os.path.join(output, job.stem)}_*; "
                "rename one or predict them in separate runs"
            )
        seen[key] = job.source
    sources = {os.path.realpath(job.source) for job in jobs}
    for job in jobs:
        for suffix in suffixes:
            target = os.path.realpath(os.path.join(output, job.stem + suffix))
            if target in sources:
                raise ValueError(f"output {target} would overwrite an input image; choose another --output")
    return jobs


def _check_writable(output: str) -> None:
    """Fails before a model is loaded when ``output`` (or the folder it would be created in) cannot be written."""
    folder = os.path.abspath(output)
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        raise NotADirectoryError(f"--output {output}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):  # also catches read-only file systems (EROFS), even for root
        raise PermissionError(f"--output {output}: {folder} is not writable")


def _sentences(args: argparse.Namespace) -> tuple[dict[str, list[str]], list[_Job]]:
    """For a referring model: the sentences of ``--expressions`` by image (real path) and its images as jobs.

    Raises:
        ValueError: neither ``--expression`` nor ``--expressions`` given, or a bad line (see :func:`read_expressions`).
    """
    if not args.expression and not args.expressions:
        raise ValueError(f"{args.model} is a referring model: give the sentences with --expression TEXT (every image) "
                         f"or --expressions FILE.jsonl")  # fmt: skip
    if not args.expressions:
        return {}, []
    pairs = read_expressions(args.expressions)
    sentences: dict[str, list[str]] = {}
    for image, text in pairs:
        sentences.setdefault(os.path.realpath(image), []).append(text)
    return sentences, _expression_jobs(args.expressions, pairs)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from tqdm import tqdm

    from vpd.data.io import read_image
    from vpd.errors import first_line, is_out_of_memory
    from vpd.inference.outputs import foreign_options, writer_for
    from vpd.runtime import resolve_device, resolve_dtype

    start = time.perf_counter()
    writer_class = writer_for(args.model)  # the task, from config.json: fails before anything is read
    for option, task in foreign_options(writer_class, args):
        flag = "--" + option.replace("_", "-")
        raise ValueError(f"{flag} applies to {task} models; {args.model} is a {writer_class.task} model")
    formats = args.formats or writer_class.default_formats
    unknown = [f for f in formats if f not in writer_class.suffixes]
    if unknown:
        raise ValueError(
            f"--formats: {', '.join(unknown)} is not a {writer_class.task} output; "
            f"expected a subset of {','.join(writer_class.suffixes)}"
        )
    if not args.inputs and not args.expressions:
        raise ValueError("no INPUT given: name image files or folders (a referring model also takes --expressions)")
    sentences, extra = _sentences(args) if writer_class.takes_expressions else (None, [])
    count = 1 if sentences is None else len(args.expression or []) + max(map(len, sentences.values()), default=0)
    jobs = collect_jobs(args.inputs, args.output, writer_class.output_suffixes(formats, max(count, 1)), extra)
    expressions: dict[str, list[str]] | None = None
    if sentences is not None:
        expressions = {}
        for job in jobs:
            found = [*(args.expression or []), *sentences.get(os.path.realpath(job.source), [])]
            expressions[job.source] = list(dict.fromkeys(found))  # a sentence repeated for an image: once
        missing = [job.source for job in jobs if not expressions[job.source]]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise ValueError(f"{missing[0]}{more}: no sentence for this image; give --expression TEXT (every image) "
                             f"or lines for it in --expressions")  # fmt: skip
    if args.freeze_weights and not args.compile:
        raise ValueError("--freeze-weights: needs --compile (freezing is part of compiling)")
    device = resolve_device(args.device)
    _check_writable(args.output)
    dtype, _ = resolve_dtype(args.dtype, device)  # an unusable precision stops the run before the model loads
    if args.winograd and (dtype != torch.float32 or torch.device(device).type != "cpu"):
        raise ValueError(f"--winograd: fp32 on the CPU only (this run: {str(dtype)[6:]} on {device}; add --dtype fp32)")
    predictor = writer_class.predictor_class().from_pretrained(
        args.model,
        device=device,
        dtype=args.dtype,
        compile=args.compile,
        freeze_weights=args.freeze_weights,
        winograd=args.winograd,
        pack_weights=False if args.no_pack_weights else None,
    )
    writer = writer_class(predictor, args)
    options = writer.options(formats)
    resolution_asked = args.processing_resolution
    if resolution_asked is None:
        resolution_asked = predictor.default_processing_resolution

    failures: list[str] = []
    done = 0

    def skip(job: _Job, reason: object) -> None:
        failures.append(job.source)
        tqdm.write(f"vpd predict: skipped {reason}", file=sys.stderr)
        progress.update(1)

    def predict(group: list[tuple[_Job, np.ndarray]], resolution: int) -> None:
        nonlocal done
        try:
            per_image = {} if expressions is None else {"expressions": [expressions[job.source] for job, _ in group]}
            predictions = predictor(
                [image for _, image in group],
                processing_resolution=resolution,
                batch_size=args.batch_size,
                max_pixels=None,  # budgeted per image below
                **options,
                **per_image,
            )
        except (ValueError, RuntimeError) as err:
            if isinstance(err, RuntimeError) and not is_out_of_memory(err):
                raise
            if len(group) > 1:  # find the image at fault; the others are still predicted
                for item in group:
                    predict([item], resolution)
                return
            reason: object = err
            if isinstance(err, RuntimeError):
                reason = f"out of memory ({first_line(err)}); try a smaller --max-pixels"
            skip(group[0][0], f"{group[0][0].source}: {reason}")
            return
        for (job, image), prediction in zip(group, predictions, strict=True):
            target = os.path.join(args.output, job.stem)
            try:
                writer.write(prediction, target, image, formats)
            except OSError as err:  # disk full, quota: every file is atomic, so none is left half-written
                raise OSError(f"writing {target}_*: {err.strerror or err}") from None
            done += 1
            progress.update(1)

    with tqdm(total=len(jobs), unit="image", file=sys.stderr, disable=None, dynamic_ncols=True) as progress:
        for first in range(0, len(jobs), args.batch_size):
            within: list[tuple[_Job, np.ndarray]] = []
            for job in jobs[first : first + args.batch_size]:
                try:
                    image = read_image(job.source)
                except (ValueError, OSError) as err:
                    skip(job, err)
                    continue
                size = (int(image.shape[0]), int(image.shape[1]))
                resolution = predictor.resolution_within(size, resolution_asked, args.max_pixels)
                if resolution == resolution_asked:
                    within.append((job, image))
                    continue
                fitted = predictor.processed_size(size, resolution)
                tqdm.write(
                    f"vpd predict: {job.source} is {size[0]}x{size[1]}; predicted at {fitted[0]}x{fitted[1]} "
                    f"(--max-pixels {args.max_pixels}) and resized back",
                    file=sys.stderr,
                )
                predict([(job, image)], resolution)
            if within:
                predict(within, resolution_asked)

    seconds = time.perf_counter() - start
    print(f"vpd predict: {done} image{'s' * (done != 1)} in {seconds:.1f} s -> {args.output}")
    if failures:
        shown = ", ".join(failures[:5]) + (f" (+{len(failures) - 5} more)" if len(failures) > 5 else "")
        print(f"vpd predict: {len(failures)} of {len(jobs)} images were skipped: {shown}", file=sys.stderr)
        return 1
    return 0
