"""One-step models through ``vpd eval`` (the affine-invariant protocol, normals) and ``vpd predict`` (npy, 16-bit
PNG and colour PNG per image; Marigold-only options refused with one line)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from runs import as_cli
from test_onestep_task import TINY
from vpd.cli import main


def _train(tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str) -> tuple[Path, Path]:
    recipe = tmp_path / "onestep.yaml"
    recipe.write_text(
        "model:\n  task: onestep\ndata:\n  val:\n    kind: synthetic\n"
        "    args: {num_scenes: 2, height: 48, width: 64, seed: 7}\n"
    )
    run = tmp_path / f"run_{target}"
    overrides = [*TINY, f"model.target={target}", f"train.output_dir={run}"]
    overrides = [o for o in overrides if not o.startswith("data.val")]
    assert main(["train", "--config", str(recipe), *as_cli(overrides)]) == 0
    capsys.readouterr()
    return recipe, run / "model"


@pytest.mark.parametrize(("target", "metric"), [("depth", "abs_rel"), ("normals", "mean")])
def test_eval_reports_the_targets_protocol(tmp_path, capsys, target, metric):
    recipe, model = _train(tmp_path, capsys, target)
    out = tmp_path / "eval"
    args = ["eval", "--config", str(recipe), "--model", str(model), "--output", str(out), "--save-predictions"]
    assert main([*args, "--set", f"model.target={target}"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    values = metrics.get("metrics", metrics)
    assert np.isfinite(values[metric])
    rows = list(csv.DictReader((out / "per_sample.csv").open()))
    assert len(rows) == 2 and metric in rows[0]
    assert list(out.rglob("*.png")), "--save-predictions writes 16-bit PNGs"


def test_predict_writes_each_format_and_refuses_marigold_options(tmp_path, capsys):
    _, model = _train(tmp_path, capsys, "depth")
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(photos / "a.jpg")
    out = tmp_path / "pred"
    args = ["predict", str(photos), "--model", str(model), "--output", str(out), "--dtype", "fp32",
            "--processing-resolution", "64"]  # fmt: skip
    assert main(args) == 0
    depth = np.load(out / "a_depth.npy")
    assert depth.shape == (40, 56) and depth.dtype == np.float32 and 0 <= depth.min() <= depth.max() <= 1
    png = np.asarray(Image.open(out / "a_depth.png"))
    assert png.dtype == np.uint16 and png.shape == (40, 56)
    np.testing.assert_array_equal(png, np.round(depth * 65535).astype(np.uint16))
    assert np.asarray(Image.open(out / "a_depth_color.png")).shape == (40, 56, 3)
    capsys.readouterr()
    for extra, message in (
        (["--steps", "4"], "only Marigold models take several steps or ensembles"),
        (["--ensemble-size", "3"], "--ensemble-size: a genpercept model predicts in one deterministic step"),
        (["--scene", "bedroom"], "--scene applies to depth models"),
    ):
        code = main([*args[:-2], "--output", str(tmp_path / "other"), *extra])
        err = capsys.readouterr().err
        assert code == 2 and message in err and "Traceback" not in err
        assert not (tmp_path / "other" / "a_depth.npy").exists()

    # resize modes (diffusers' Marigold names): nearest in = every 2nd pixel at half size; nearest out = only the
    # processed map's values; --resample on the command line; an unknown mode refused in one line
    import torch

    from vpd.inference.onestep import OneStepPredictor
    from vpd.modeling.onestep import OneStepModel

    predictor = OneStepPredictor(OneStepModel.from_pretrained(model))
    photo = np.asarray(Image.open(photos / "a.jpg"))
    small = predictor(photo, processing_resolution=28, match_input_resolution=False, resample_method_input="nearest")
    direct = predictor(photo[::2, ::2], processing_resolution=0, match_input_resolution=False)
    np.testing.assert_allclose(small.prediction, direct.prediction, atol=1e-6)
    default = predictor(photo, processing_resolution=28, match_input_resolution=False).prediction
    near = predictor(photo, processing_resolution=28, resample_method_output="nearest").prediction
    assert near.shape == (40, 56) and set(np.unique(near)) <= set(np.unique(default))
    assert not set(np.unique(predictor(photo, processing_resolution=28).prediction)) <= set(np.unique(default))
    with pytest.raises(ValueError, match="resample_method_output: expected one of nearest, nearest-exact"):
        predictor(photo, resample_method_output="cubic")
    # the command line and the Python predictor run the same fp32 weights through different call paths (1-ulp apart)
    assert main([*args[:-1], "28", "--output", str(tmp_path / "near"), "--resample", "bilinear,nearest"]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "near" / "a_depth.npy"), near, atol=1e-5)
    with pytest.raises(SystemExit) as done:
        main([*args, "--output", str(tmp_path / "bad"), "--resample", "cubic"])
    assert done.value.code == 2 and "--resample: expected IN or IN,OUT from nearest" in capsys.readouterr().err
    area = predictor(photo, processing_resolution=28, match_input_resolution=False, resample_method_input="area")
    pixels = torch.from_numpy(photo).permute(2, 0, 1)[None].float()
    shrunk = torch.nn.functional.interpolate(pixels, size=(20, 28), mode="area").round()[0].permute(1, 2, 0)
    by_hand = predictor(shrunk.numpy().astype(np.uint8), processing_resolution=0, match_input_resolution=False)
    np.testing.assert_allclose(area.prediction, by_hand.prediction, atol=1e-6)
