"""The hostile-input table: malformed inputs through `vpd predict`, `DepthPredictor`, `vpd convert`, `vpd eval` and
`vpd train`, each checked for the error policy (see ``hostile.py``): exit code, one line naming the problem, no
traceback, no partial output, and the good inputs of the same run still done."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import shutil
import struct
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from hostile import Case, check, tmpfs
from reference import official_state_dict
from runs import TINY_RUN, as_cli
from vpd.configuration import ConfigError
from vpd.data.matting import DIS5K
from vpd.data.registry import build_dataset
from vpd.inference.predictor import DepthPredictor
from vpd.inference.segmentation import SemanticPredictor
from vpd.modeling.depth import build_vpd_depth, tiny_vpd_depth_config
from vpd.modeling.semantic import build_vpd_semantic, tiny_vpd_semantic_config

GOOD = "good_depth.png"  # the good image's 16-bit output, present whenever a run goes on past a bad input


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _png_header(width: int, height: int) -> bytes:
    """A syntactically valid PNG whose header claims ``width x height`` (the data is a few bytes of zeros)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _image(height: int = 24, width: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("hostile")
    model = build_vpd_depth(tiny_vpd_depth_config(), seed=0)
    model_dir = model.save_pretrained(root / "model")
    seg_model_dir = build_vpd_semantic(tiny_vpd_semantic_config(("wall", "floor", "chair")), seed=0).save_pretrained(
        root / "seg_model"
    )
    official = official_state_dict("vpd_depth_tiny")
    checkpoint = root / "official.pth"
    torch.save({"model": official}, checkpoint)
    return SimpleNamespace(
        root=root, model_dir=model_dir, seg_model_dir=seg_model_dir, official=official, checkpoint=checkpoint
    )


@pytest.fixture
def world(assets: SimpleNamespace, tmp_path: Path) -> SimpleNamespace:
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(_image()).save(inputs / "good.png")
    return SimpleNamespace(**{**vars(assets), "root": tmp_path, "inputs": inputs, "out": tmp_path / "out"})


# ---------------------------------------------------------------------------------------------------------- builders


def predict(world, *extra: str, inputs: str | None = None) -> list[str]:
    source = inputs or str(world.inputs)
    return ["predict", source, "--model", str(world.model_dir), "-o", str(world.out), "--formats", "png16", *extra]


def export(world, *extra: str, model: str | None = None, output: str | None = None) -> list[str]:
    target = output or str(world.out / "model.onnx")
    return ["export", model or str(world.model_dir), target, "--height", "64", "--width", "64", *extra]


def with_bad_image(name: str, write) -> callable:
    """A folder with the good image and one bad file: the bad one is skipped, the good one predicted."""

    def build(world):
        write(world.inputs / name)
        return predict(world)

    return build


def with_odd_image(name: str, write, *extra: str) -> callable:
    """A folder with the good image and one unusual but valid one: both predicted."""

    def build(world):
        write(world.inputs / name)
        return predict(world, *extra)

    return build


def save_pil(mode: str, size=(20, 16), **kwargs):
    def write(path: Path) -> None:
        array = _image(size[1], size[0], 3)
        image = Image.fromarray(array).convert(mode) if mode not in ("I;16", "F") else None
        if mode == "I;16":
            image = Image.fromarray(array[..., 0].astype(np.uint16) * 257)
        if mode == "F":
            image = Image.fromarray(array[..., 0].astype(np.float32))
        image.save(path, **kwargs)

    return write


def exif_rotated(path: Path) -> None:
    image = Image.fromarray(_image(16, 24, 5))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    image.save(path, exif=exif)


def broken_model(world, change) -> str:
    target = world.root / "broken_model"
    shutil.copytree(world.model_dir, target)
    change(target)
    return str(target)


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def nan_weights(folder: Path) -> None:
    state = load_file(folder / "model.safetensors")
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = torch.full_like(state[name], float("nan"))
    save_file(state, folder / "model.safetensors")


def edit_config(change) -> callable:
    def apply(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(change(config))

    return apply


def predict_with_model(change) -> callable:
    return lambda world: predict(world, "--model", broken_model(world, change))


def convert(world, checkpoint, *extra: str) -> list[str]:
    return ["convert", str(checkpoint), str(world.out), *extra]


def checkpoint_file(write) -> callable:
    def build(world):
        path = world.root / "bad.pth"
        write(path, world)
        return convert(world, path)

    return build


def official_with(change) -> callable:
    def write(path: Path, world) -> None:
        state = dict(world.official)
        change(state)
        torch.save({"model": state}, path)

    return checkpoint_file(write)


def first_conv(state: dict) -> str:
    return next(k for k in state if k.startswith("decoder.") and k.endswith("weight") and state[k].dim() == 4)


def truncated_safetensors(world) -> Path:
    path = world.root / "c.safetensors"
    save_file({"a": torch.zeros(64)}, path)
    truncate(path)
    return path


def existing_output(world, *extra: str) -> list[str]:
    world.out.mkdir()
    (world.out / "notes.txt").write_text("mine")
    return convert(world, world.checkpoint, *extra)


def eval_set(world, depth_dtype=np.uint16, value: int = 2000) -> list[str]:
    """`vpd eval` on a folder of two images with depth PNGs of ``depth_dtype`` filled with ``value``."""
    images, depths = world.root / "eval_images", world.root / "eval_depths"
    images.mkdir()
    depths.mkdir()
    for i in range(2):
        Image.fromarray(_image(32, 40, i)).save(images / f"{i}.png")
        Image.fromarray(np.full((32, 40), value, depth_dtype)).save(depths / f"{i}.png")
    overrides = [
        *TINY_RUN,
        "data.val.kind=folder",
        f"data.val.args={{images: {images}, depths: {depths}}}",
        f"train.output_dir={world.root / 'run'}",
    ]
    return ["eval", "--config", "demo_synthetic_depth", *as_cli(overrides), "--model", str(world.model_dir),
            "--output", str(world.out)]  # fmt: skip


def train(world, *overrides: str) -> list[str]:
    return ["train", "--config", "demo_synthetic_depth",
            *as_cli([*TINY_RUN, f"train.output_dir={world.out}", *overrides])]  # fmt: skip


def seg_predict(world, *extra: str) -> list[str]:
    return ["predict", str(world.inputs), "--model", str(world.seg_model_dir), "-o", str(world.out), *extra]


def ade_tree(world, drop_annotation: bool = False, label_value: int = 3) -> list[str]:
    """`vpd eval` of the segmentation model on a two-image ADEChallengeData2016 tree."""
    root = world.root / "ADEChallengeData2016"
    for folder in ("images/validation", "annotations/validation"):
        (root / folder).mkdir(parents=True)
    for i in range(2):
        Image.fromarray(_image(32, 40, i)).save(root / "images" / "validation" / f"ADE_val_{i:08d}.jpg")
        if not (drop_annotation and i == 1):
            Image.fromarray(np.full((32, 40), label_value, np.uint8)).save(
                root / "annotations" / "validation" / f"ADE_val_{i:08d}.png"
            )
    overrides = ["model.task=semantic", "data.val.kind=ade20k", f"data.val.args={{root: {root}, split: validation}}",
                 "data.train.kind=ade20k", f"data.train.args={{root: {root}, split: validation}}",
                 "eval.img_scale=null", "eval.crop=[32,32]", "eval.stride=[16,16]", f"train.output_dir={world.root}"]
    return ["eval", "--config", "semantic_ade20k", *as_cli(overrides), "--model", str(world.seg_model_dir),
            "--output", str(world.out)]  # fmt: skip


def refcoco_tree(world, refs: bytes | None = None, instances: str | None = "{}"):
    """A refer-API tree (``refcoco/refs(unc).p`` + ``instances.json``) with the given file contents."""
    from vpd.data.refcoco import RefCOCO

    folder = world.root / "refer" / "refcoco"
    folder.mkdir(parents=True)
    (folder / "refs(unc).p").write_bytes(refs if refs is not None else pickle.dumps([]))
    if instances is not None:
        (folder / "instances.json").write_text(instances)
    return RefCOCO(world.root / "refer", "refcoco", "train")


def referring_folder(world, text: str):
    from vpd.data.refcoco import ReferringFolder

    (world.root / "pairs.jsonl").write_text(text)
    return ReferringFolder(world.root / "pairs.jsonl")


def hypersim_list(world, text: str):
    from vpd.data.hypersim import Hypersim

    (world.root / "hypersim.txt").write_text(text)
    return Hypersim(world.root, world.root / "hypersim.txt")


def api(call) -> callable:
    return lambda world: (lambda: call(world))


def predictor(world) -> DepthPredictor:
    return DepthPredictor.from_pretrained(world.model_dir)


# ------------------------------------------------------------------------------------------------------------ table

SKIPPED = r"skipped .*{}"  # the one line naming a skipped image

CASES = [
    # --- vpd predict: bad images in a folder are skipped by name, the good one is still predicted (exit 1)
    Case("truncated-png", with_bad_image("bad.png", lambda p: p.write_bytes(_png_header(8, 8)[:40])), 1,
         SKIPPED.format("bad.png"), (GOOD,)),
    Case("zero-byte-png", with_bad_image("bad.png", lambda p: p.write_bytes(b"")), 1, SKIPPED.format("bad.png"),
         (GOOD,)),
    Case("text-named-jpg", with_bad_image("bad.jpg", lambda p: p.write_text("not an image")), 1,
         r"bad\.jpg: not an image", (GOOD,)),
    Case("decompression-bomb-20000px", with_bad_image("bomb.png", lambda p: p.write_bytes(_png_header(20000, 20000))),
         1, r"bomb\.png: image too large to decode safely \(20000x20000 = 400\.0 MP", (GOOD,)),
    Case("float-tiff", with_bad_image("f.tiff", save_pil("F")), 1, r"f\.tiff: floating-point image", (GOOD,)),
    Case("too-elongated-for-windows",
         lambda w: (Image.fromarray(_image(1, 400)).save(w.inputs / "thin.png"), predict(w, "--windows", "2"))[1],
         1, r"thin\.png: sliding windows: a 1x400 image needs more than 64", (GOOD,)),
    # --- vpd predict: unusual but valid images are predicted (exit 0)
    Case("rgba", with_odd_image("x.png", save_pil("RGBA")), 0, outputs=(GOOD, "x_depth.png")),
    Case("gray-alpha", with_odd_image("x.png", save_pil("LA")), 0, outputs=(GOOD, "x_depth.png")),
    Case("palette", with_odd_image("x.png", save_pil("P")), 0, outputs=(GOOD, "x_depth.png")),
    Case("16-bit-gray", with_odd_image("x.png", save_pil("I;16")), 0, outputs=(GOOD, "x_depth.png")),
    Case("1-bit", with_odd_image("x.png", save_pil("1")), 0, outputs=(GOOD, "x_depth.png")),
    Case("cmyk-jpeg", with_odd_image("x.jpg", save_pil("CMYK")), 0, outputs=(GOOD, "x_depth.png")),
    Case("1x1", with_odd_image("x.png", save_pil("RGB", size=(1, 1))), 0, outputs=(GOOD, "x_depth.png")),
    Case("exif-rotated", with_odd_image("x.jpg", exif_rotated), 0, outputs=(GOOD, "x_depth.png")),
    Case("png-named-jpg", with_odd_image("x.jpg", lambda p: Image.fromarray(_image()).save(p, format="PNG")), 0,
         outputs=(GOOD, "x_depth.png")),
    Case("over-pixel-budget", with_odd_image("big.png", save_pil("RGB", size=(90, 60)), "--max-pixels", "1500"), 0,
         r"big\.png is 60x90; predicted at 31x47 \(--max-pixels 1500\)", (GOOD, "big_depth.png")),
    Case("symlink-loop", lambda w: (os.symlink(w.inputs, w.inputs / "loop"), predict(w))[1], 0, r"1 image in",
         (GOOD,)),
    # --- vpd predict: whole-run problems stop before any output (exit 2)
    Case("missing-input", lambda w: predict(w, inputs=str(w.root / "nope.png")), 2, r"nope\.png: no such file"),
    Case("missing-model", lambda w: predict(w, "--model", str(w.root / "nomodel")), 2, r"nomodel: no such checkpoint"),
    Case("truncated-safetensors", predict_with_model(lambda f: truncate(f / "model.safetensors")), 2,
         r"model\.safetensors: incomplete or corrupt safetensors file"),
    Case("config-json-list", predict_with_model(edit_config(lambda c: json.dumps([c]))), 2,
         r"config\.json: expected a JSON object at the top level, got a list"),
    Case("config-json-corrupt", predict_with_model(edit_config(lambda c: json.dumps(c)[:-9])), 2,
         r"config\.json: not valid JSON"),
    Case("config-json-negative-max-depth", predict_with_model(edit_config(lambda c: json.dumps({**c, "max_depth": -1}))),
         2, r"config\.json: max_depth: expected a finite number > 0, got -1"),
    Case("nan-weights", predict_with_model(nan_weights), 2, r"tensors hold NaN or infinite values"),
    Case("device-bogus", lambda w: predict(w, "--device", "bogus"), 2, r"device 'bogus': not a device name"),
    Case("device-cuda-without-gpu", lambda w: predict(w, "--device", "cuda"), 2, r"device 'cuda': this machine has no",
         marks=(pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU"),)),
    Case("windows-1000000", lambda w: predict(w, "--windows", "1000000"), 2,
         r"argument --windows: expected an integer from 1 to 64, got 1000000"),
    Case("processing-resolution-1000000", lambda w: predict(w, "--processing-resolution", "1000000"), 2,
         r"--processing-resolution: expected an integer from 0 to 8192"),
    Case("png-scale-nan", lambda w: predict(w, "--png-scale", "nan"), 2, r"--png-scale: expected a finite number > 0"),
    Case("png-scale-1e9", lambda w: predict(w, "--png-scale", "1e9"), 2,
         r"--png-scale: png scale 1e\+09: 16 bits hold at most .* less than the model's max_depth 10 m; use at most 6553"),
    Case("png-scale-too-coarse", lambda w: predict(w, "--png-scale", "0.5"), 2, r"only 5 levels over the model's 0-10 m"),
    Case("batch-size-0", lambda w: predict(w, "--batch-size", "0"), 2, r"--batch-size: expected an integer >= 1"),
    Case("freeze-weights-without-compile", lambda w: predict(w, "--freeze-weights"), 2,
         r"--freeze-weights: needs --compile"),
    Case("winograd-in-bf16", lambda w: predict(w, "--winograd", "--dtype", "bf16"), 2,
         r"--winograd: fp32 on the CPU only \(this run: bfloat16 on cpu; add --dtype fp32\)"),
    Case("unknown-scene", lambda w: predict(w, "--scene", "garage"), 2, r"unknown scene 'garage'"),
    Case("output-is-a-file", lambda w: (w.root.joinpath("f").write_text("x"), predict(w, "-o", str(w.root / "f" / "o")))[1],
         2, r"is a file, not a folder"),
    Case("read-only-output", predict, 2, r"--output .* is not writable", needs="readonly"),
    Case("full-output", predict, 2, r"writing .*good_\*: No space left on device", needs="filled"),
    # --- DepthPredictor (Python API): one exception with one line
    Case("predictor-freeze-weights-without-compile",
         api(lambda w: DepthPredictor.from_pretrained(w.model_dir, freeze_weights=True)), 2,
         r"DepthPredictor: freeze_weights=True needs compile=True"),
    Case("predictor-pack-weights-in-fp32",
         api(lambda w: DepthPredictor.from_pretrained(w.model_dir, dtype="fp32", pack_weights=True)), 2,
         r"DepthPredictor: pack_weights=True packs bf16 convolutions on the CPU; the model is fp32 on cpu"),
    Case("predictor-pack-and-freeze-weights",
         api(lambda w: DepthPredictor.from_pretrained(w.model_dir, compile=True, freeze_weights=True, pack_weights=True)),
         2, r"DepthPredictor: pack_weights=True and freeze_weights=True: freezing packs the weights itself; choose one"),
    Case("predictor-from-a-path", api(lambda w: DepthPredictor(str(w.model_dir))), 2,
         r"expected a VPDDepth model, got str; .* use DepthPredictor\.from_pretrained\(", error=TypeError),
    Case("predictor-float-out-of-range", api(lambda w: predictor(w)(np.full((4, 4, 3), 2.0))), 2,
         r"float image values must lie in \[0, 1\]"),
    Case("predictor-windows-0", api(lambda w: predictor(w)(_image(), windows=0)), 2, r"windows: expected None"),
    Case("predictor-resolution-1000000", api(lambda w: predictor(w)(_image(), processing_resolution=10**6)), 2,
         r"processing_resolution: expected an integer from 0 .* to 8192"),
    Case("predictor-over-max-pixels", api(lambda w: predictor(w)(_image(60, 90), max_pixels=1500)), 2,
         r"images: 60x90 would run at 60x90, more than max_pixels=1500; pass processing_resolution=47"),
    Case("predictor-empty-array", api(lambda w: predictor(w)(np.zeros((0, 4, 3), np.uint8))), 2, r"image is empty"),
    Case("predictor-missing-file", api(lambda w: predictor(w)(str(w.root / "nope.png"))), 2, r"nope\.png: no such file",
         error=FileNotFoundError),
    Case("predictor-bomb-file", api(lambda w: (w.root.joinpath("b.png").write_bytes(_png_header(20000, 20000)),
                                              predictor(w)(str(w.root / "b.png")))), 2, r"too large to decode safely"),
    Case("from-pretrained-truncated", api(lambda w: DepthPredictor.from_pretrained(
        broken_model(w, lambda f: truncate(f / "model.safetensors")))), 2, r"incomplete or corrupt safetensors"),
    Case("seg-predictor-from-a-path", api(lambda w: SemanticPredictor(str(w.seg_model_dir))), 2,
         r"expected a VPDSemantic model, got str; .* use SemanticPredictor\.from_pretrained\(", error=TypeError),
    Case("seg-predictor-given-a-depth-model", api(lambda w: SemanticPredictor(predictor(w).model)), 2,
         r"expected a VPDSemantic model, got a VPDDepth", error=TypeError),
    Case("seg-predictor-bad-crop", api(lambda w: SemanticPredictor.from_pretrained(w.seg_model_dir)(_image(), crop=(0, 8))), 2,
         r"crop / stride\[0\]: expected a finite number >= 1, got 0"),
    Case("seg-predictor-float-out-of-range", api(lambda w: SemanticPredictor.from_pretrained(w.seg_model_dir)(np.full((4, 4, 3), -1.0))), 2,
         r"float image values must lie in \[0, 1\]"),
    # --- referring loaders (Python API until the referring task lands)
    Case("refcoco-malicious-refs-pickle", api(lambda w: refcoco_tree(w, refs=pickle.dumps([Evil()]))), 2,
         r"refs\(unc\)\.p: refused to load global posix\.system"),
    Case("refcoco-missing-instances", api(lambda w: refcoco_tree(w, instances=None)), 2, r"instances\.json",
         error=FileNotFoundError),
    Case("referring-folder-bad-line", api(lambda w: referring_folder(w, "not json\n")), 2, r"pairs\.jsonl:1: "),
    # --- one-step loaders
    Case("hypersim-bad-list-line", api(lambda w: hypersim_list(w, "a.png b.png c d\n")), 2, r"hypersim\.txt:1: expected "),
    Case("dis5k-missing-subset", api(lambda w: DIS5K(w.root, "DIS-TR")), 2, r"DIS-TR/im not found",
         error=FileNotFoundError),
    Case("mixed-weights-mismatch", api(lambda w: build_dataset(
        "mixed", {"datasets": [{"kind": "synthetic", "args": {"num_scenes": 1}}], "weights": [0.5, 0.5]})), 2,
         r"mixed\.weights: 2 weights for 1 datasets", error=ConfigError),
    Case("referring-folder-missing-mask", api(lambda w: referring_folder(
        w, json.dumps({"image": "in/good.png", "expression": "a thing", "mask": "nope.png"}) + "\n")), 2,
         r"nope\.png", error=FileNotFoundError),
    # --- vpd predict with a segmentation model
    Case("seg-predict-ok", seg_predict, 0, outputs=("good_labels.png", "good_labels_color.png", "good_overlay.png")),
    Case("seg-predict-bomb-skipped", lambda w: (w.inputs.joinpath("bomb.png").write_bytes(_png_header(20000, 20000)), seg_predict(w))[1], 1,
         r"bomb\.png: image too large", ("good_labels.png", "good_labels_color.png", "good_overlay.png")),
    Case("seg-predict-depth-option", lambda w: seg_predict(w, "--scene", "kitchen"), 2,
         r"--scene applies to depth models; .* is a semantic model"),
    Case("seg-predict-depth-format", lambda w: seg_predict(w, "--formats", "png16"), 2,
         r"--formats: png16 is not a semantic output; expected a subset of labels,color,overlay,probs"),
    Case("depth-predict-seg-option", lambda w: predict(w, "--ms"), 2, r"--ms applies to semantic models"),
    Case("depth-predict-onestep-option", lambda w: predict(w, "--resample", "nearest"), 2,
         r"--resample applies to onestep models"),
    Case("predict-resample-unknown", lambda w: predict(w, "--resample", "cubic"), 2,
         r"--resample: expected IN or IN,OUT from nearest, nearest-exact, bilinear, bicubic, area, got 'cubic'"),
    Case("predict-dtype-unknown", lambda w: predict(w, "--dtype", "fp64"), 2,
         r"--dtype: invalid choice: 'fp64' \(choose from 'auto', 'fp32', 'bf16', 'fp16'\)"),
    # --- vpd export (refusals come before the slow trace and leave no file)
    Case("export-not-a-model", lambda w: export(w, model=str(w.inputs)), 2,
         r"in: not a vpd checkpoint folder \(config\.json missing\)"),
    Case("export-height-zero", lambda w: export(w, "--height", "0"), 2,
         r"argument --height: expected an integer >= 8, got 0"),
    Case("export-size-not-multiple-of-8", lambda w: export(w, "--height", "60"), 2,
         r"--height / --width: expected positive multiples of 8, got 60x64"),
    Case("export-dtype-unknown", lambda w: export(w, "--dtype", "bf16"), 2,
         r"--dtype 'bf16': ONNX export stores one of fp32, fp16"),
    Case("export-format-unknown", lambda w: export(w, "--format", "tflite"), 2,
         r"--format 'tflite': expected one of onnx"),
    Case("export-not-onnx-name", lambda w: export(w, output=str(w.out / "x.txt")), 2, r"x\.txt: expected a \.onnx file name"),
    # --- vpd serve (refusals come before the page starts)
    Case("serve-not-a-model", lambda w: ["serve", "--model", str(w.inputs)], 2,
         r"in: not a vpd checkpoint folder \(config\.json missing\)"),
    Case("serve-missing-model", lambda w: ["serve", "--model", str(w.root / "nothing")], 2,
         r"nothing: no such checkpoint folder"),
    Case("serve-port-out-of-range", lambda w: ["serve", "--model", str(w.model_dir), "--port", "70000"], 2,
         r"argument --port: expected an integer from 1 to 65535, got 70000"),
    Case("serve-dtype-unknown", lambda w: ["serve", "--model", str(w.model_dir), "--dtype", "fp64"], 2,
         r"--dtype: invalid choice: 'fp64'"),
    # --- vpd convert
    Case("convert-zero-byte", checkpoint_file(lambda p, w: p.write_bytes(b"")), 2, r"bad\.pth: empty file"),
    Case("convert-pickle-zip", checkpoint_file(lambda p, w: torch.save({"model": Evil()}, p)), 2,
         r"bad\.pth: refusing to unpickle posix\.system"),
    Case("convert-pickle-legacy", checkpoint_file(lambda p, w: torch.save(Evil(), p, _use_new_zipfile_serialization=False)),
         2, r"refusing to unpickle posix\.system"),
    Case("convert-pickle-raw", checkpoint_file(lambda p, w: p.write_bytes(pickle.dumps(Evil()))), 2,
         r"refusing to unpickle posix\.system: .* could run code$"),
    Case("convert-int64-tensor", official_with(lambda s: s.__setitem__(first_conv(s), s[first_conv(s)].long())), 2,
         r"1 mis-shaped or mis-typed: head\.\S+ torch\.int64 vs model torch\.float32"),
    Case("convert-nan-weights", official_with(lambda s: s.__setitem__(first_conv(s), s[first_conv(s)] * float("nan"))),
         2, r"bad\.pth: 1 tensors hold NaN or infinite values"),
    Case("convert-not-vpd", checkpoint_file(lambda p, w: torch.save({"model": {"x.weight": torch.zeros(2)}}, p)), 2,
         r"bad\.pth: not a checkpoint layout vpd knows \(known: vpd-depth"),
    Case("convert-missing-file", lambda w: convert(w, w.root / "nope.pth"), 2, r"nope\.pth: no such checkpoint file"),
    Case("convert-truncated-safetensors", lambda w: convert(w, truncated_safetensors(w)), 2,
         r"c\.safetensors: incomplete or corrupt"),
    Case("convert-existing-output", existing_output, 2, r"already exists; pass --overwrite", outputs=()),
    Case("convert-overwrite", lambda w: existing_output(w, "--overwrite"), 0,
         outputs=("config.json", "model.safetensors")),
    Case("convert-negative-max-depth", lambda w: convert(w, w.checkpoint, "--max-depth", "-1"), 2,
         r"argument --max-depth: expected a finite number > 0"),
    # --- vpd eval
    Case("eval-8-bit-depth", lambda w: eval_set(w, np.uint8, 200), 2, r"0\.png: an 8-bit depth PNG"),
    Case("eval-no-valid-pixel", lambda w: eval_set(w, np.uint16, 0), 2, r"no sample had valid ground truth: 2 of 2"),
    Case("eval-windows-1000", lambda w: [*eval_set(w), "--set", "eval.windows=1000"], 2,
         r"eval\.windows: expected a finite number >= 1 and <= 64"),
    Case("eval-missing-model", lambda w: [*eval_set(w)[:-4], "--model", str(w.root / "nomodel"), "--output",
                                          str(w.out)], 2, r"nomodel: no such checkpoint"),
    Case("eval-ok", lambda w: eval_set(w), 0, outputs=("metrics.json", "per_sample.csv")),
    Case("eval-ade20k-ok", ade_tree, 0, outputs=("metrics.json", "per_sample.csv", "per_class.csv")),
    Case("eval-ade20k-missing-annotation", lambda w: ade_tree(w, drop_annotation=True), 2,
         r"ADE20K .*: 1 of 2 files missing under .*ADE_val_00000001\.png"),
    Case("eval-ade20k-label-out-of-range", lambda w: ade_tree(w, label_value=200), 2, r"ADE_val_00000000\.png: label values 199 after reduce_zero_label are not class ids"),
    Case("eval-seg-recipe-depth-model", lambda w: [*ade_tree(w)[:-4], "--model", str(w.model_dir), "--output", str(w.out)], 2,
         r"holds a 'vpd_depth' model, not 'vpd_semantic'"),
    # --- vpd train
    Case("train-batch-size-0", lambda w: train(w, "train.batch_size=0"), 2, r"train\.batch_size: expected .* >= 1, got 0"),
    Case("train-grad-accum-0", lambda w: train(w, "train.grad_accum=0"), 2, r"train\.grad_accum: .* got 0"),
    Case("train-log-every-0", lambda w: train(w, "train.log_every=0"), 2, r"train\.log_every: .* got 0"),
    Case("train-max-steps-negative", lambda w: train(w, "train.max_steps=-5"), 2, r"train\.max_steps: .* got -5"),
    Case("train-checkpoint-every-negative", lambda w: train(w, "train.checkpoint_every=-1"), 2,
         r"train\.checkpoint_every: expected a finite number >= 0, got -1"),
    Case("train-eval-every-negative", lambda w: train(w, "train.eval_every=-1"), 2, r"train\.eval_every: .* got -1"),
    Case("train-keep-checkpoints-0", lambda w: train(w, "train.keep_checkpoints=0"), 2,
         r"train\.keep_checkpoints: expected a finite number >= 1, got 0"),
    Case("train-max-depth-0", lambda w: train(w, "model.max_depth=0"), 2, r"model\.max_depth: .* > 0 \(or null\), got 0\.0"),
    Case("train-max-depth-negative", lambda w: train(w, "model.max_depth=-3"), 2, r"model\.max_depth: .* got -3"),
    Case("train-lr-nan", lambda w: train(w, "optim.lr=.nan"), 2, r"optim\.lr: expected a finite number > 0, got nan"),
    Case("train-eval-without-val", lambda w: train(w, "data.val=null", "train.eval_every=1"), 2,
         r"train\.eval_every=1 but the recipe has no data\.val"),
    Case("train-unknown-key", lambda w: train(w, "train.bogus=1"), 2, r"unknown key 'train\.bogus'"),
    Case("train-vae-not-a-vae-folder", lambda w: train(w, f"model.vae={w.inputs}"), 2,
         r"in(puts)?: not a diffusers VAE folder \(config\.json or vae/config\.json missing\)"),
    Case("train-vae-single-file", lambda w: train(w, "model.vae=vae-ft-mse.safetensors"), 2,
         r"vae-ft-mse\.safetensors: a VAE is loaded from a diffusers folder or hub id, not a single file"),
    Case("train-config-list", lambda w: (w.root.joinpath("r.yaml").write_text("- 1\n"),
                                         ["train", "--config", str(w.root / "r.yaml")])[1], 2,
         r"r\.yaml: expected a mapping at the top level"),
    Case("train-disk-full", train, 2, r"(writing checkpoint|cannot write the model folder) .*No space left on device",
         outputs=None, needs="full:600k"),
    Case("train-disk-full-at-checkpoint", lambda w: train(w, "data.val=null", "train.eval_every=0"), 2,
         r"writing checkpoint .*step_0000002 failed \(.*No space left on device.*\); no checkpoint yet", outputs=None,
         needs="full:600k"),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_hostile_input(case: Case, world: SimpleNamespace, capsys: pytest.CaptureFixture[str]) -> None:
    if case.needs == "readonly":
        with tmpfs(world.out, "1m", readonly=True):
            check(case, world, capsys)
    elif case.needs == "filled":
        with tmpfs(world.out, "64k") as out:
            with contextlib.suppress(OSError), open(out / "filler", "wb") as handle:
                while True:
                    handle.write(b"0" * 4096)
                    handle.flush()
            check(case, world, capsys)
    elif case.needs.startswith("full:"):
        with tmpfs(world.out, case.needs.split(":")[1]):
            check(case, world, capsys)
    else:
        check(case, world, capsys)


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 40
    assert {c.id.split("-")[0] for c in CASES} >= {"predictor", "convert", "eval", "train"}
