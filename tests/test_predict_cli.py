"""``vpd predict``: output files and their values, folder structure, formats, and the error policy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vpd.cli import main
from vpd.data.io import read_image
from vpd.inference.predictor import DepthPredictor
from vpd.modeling.depth import build_vpd_depth, tiny_vpd_depth_config


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = build_vpd_depth(tiny_vpd_depth_config())
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # unit-gain head: depth varies across pixels and scenes (the official init is a flat 5 m)
        for parameter in model.head.parameters():
            if parameter.dim() > 1:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) / parameter[0].numel() ** 0.5)
    return model.save_pretrained(tmp_path_factory.mktemp("cli") / "tiny")


def _save(path: Path, height: int, width: int, seed: int) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path, quality=95)
    return rgb


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    _save(root / "a.png", 24, 32, 0)
    _save(root / "sub" / "b.jpg", 32, 24, 1)
    _save(root / "sub" / "deeper" / "c.png", 20, 20, 2)
    return root


def test_writes_all_formats_with_the_folder_structure(
    model_dir: Path, tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = main(["predict", str(tree), "--model", str(model_dir), "--output", str(out), "--scene", "bedroom"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "3 images" in captured.out and str(out) in captured.out
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == sorted(
        f"{stem}{suffix}"
        for stem in ("a", "sub/b", "sub/deeper/c")
        for suffix in ("_depth.png", "_depth.npy", "_depth_color.png")
    )
    predictor = DepthPredictor.from_pretrained(model_dir)
    for stem, source in (("a", "a.png"), ("sub/b", "sub/b.jpg"), ("sub/deeper/c", "sub/deeper/c.png")):
        image = read_image(tree / source)
        depth = np.load(out / f"{stem}_depth.npy")
        assert depth.dtype == np.float32 and depth.shape == image.shape[:2]
        np.testing.assert_allclose(depth, predictor(image, scene="bedroom").depth, rtol=0, atol=1e-5)
        with Image.open(out / f"{stem}_depth.png") as png:
            assert png.mode.startswith("I;16")
            stored = np.asarray(png)
        np.testing.assert_array_equal(stored, np.rint(depth.astype(np.float64) * 1000).astype(np.uint16))
        color = read_image(out / f"{stem}_depth_color.png")
        assert color.shape == (*image.shape[:2], 3) and len(np.unique(color.reshape(-1, 3), axis=0)) > 5
    assert not list(out.rglob(".*.tmp"))  # atomic writes leave no temporary files behind


def test_file_inputs_formats_and_options(model_dir: Path, tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["predict", str(tree / "a.png"), str(tree / "sub" / "b.jpg"), "--model", str(model_dir), "-o", str(out)]
    options = ["--formats", "npy", "--flip", "--windows", "2", "--processing-resolution", "28", "--batch-size", "2",
               "--dtype", "fp32"]  # fmt: skip  # (auto is bf16 on some CPUs: batched and single calls differ there)
    assert main([*args, *options]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a_depth.npy", "b_depth.npy"]  # files land in out/ itself
    expected = DepthPredictor.from_pretrained(model_dir, dtype="fp32")(
        read_image(tree / "a.png"), flip=True, windows=2, processing_resolution=28
    )
    np.testing.assert_allclose(np.load(out / "a_depth.npy"), expected.depth, rtol=0, atol=1e-5)

    assert main([*args, "--formats", "color,png16", "--cmap", "gray"]) == 0
    color = read_image(out / "a_depth_color.png")
    assert np.array_equal(color[..., 0], color[..., 1])  # a gray map


def test_missing_model(tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no-model"
    code = main(["predict", str(tree), "--model", str(missing), "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("vpd predict: error:") and str(missing) in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_empty_folder(model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    assert main(["predict", str(empty), "--model", str(model_dir), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "no image files" in err and str(empty) in err and err.count("\n") == 1


def test_missing_input(model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", str(tmp_path / "nope.png"), "--model", str(model_dir), "-o", str(tmp_path / "o")]) == 2
    assert "nope.png: no such file or folder" in capsys.readouterr().err


def test_corrupt_image_is_skipped_and_reported(
    model_dir: Path, tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tree / "sub" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    out = tmp_path / "out"
    code = main(["predict", str(tree), "--model", str(model_dir), "--output", str(out), "--formats", "png16"])
    captured = capsys.readouterr()
    assert code == 1
    assert f"skipped {broken}" in captured.err
    assert "1 of 4 images were skipped" in captured.err and str(broken) in captured.err.splitlines()[-1]
    assert "3 images" in captured.out
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == [
        "a_depth.png",
        "sub/b_depth.png",
        "sub/deeper/c_depth.png",
    ]


def test_unknown_scene(model_dir: Path, tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["predict", str(tree), "--model", str(model_dir), "-o", str(tmp_path / "out"), "--scene", "garage"])
    err = capsys.readouterr().err
    assert code == 2 and "unknown scene 'garage'" in err and "bedroom" in err
    assert not (tmp_path / "out").exists()


def test_scene_index_and_bad_options(
    model_dir: Path, tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["predict", str(tree / "a.png"), "--model", str(model_dir), "-o", str(out), "--scene", "8"]) == 0
    by_name = tmp_path / "by_name"
    assert (
        main(["predict", str(tree / "a.png"), "--model", str(model_dir), "-o", str(by_name), "--scene", "bedroom"]) == 0
    )
    np.testing.assert_array_equal(np.load(out / "a_depth.npy"), np.load(by_name / "a_depth.npy"))  # bedroom is 8
    assert main(["predict", str(tree), "--model", str(model_dir), "-o", str(out), "--formats", "png16,tiff"]) == 2
    assert "tiff is not a depth output" in capsys.readouterr().err
    for bad in (["--windows", "0"], ["--batch-size", "x"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["predict", str(tree), "--model", str(model_dir), "-o", str(out), *bad])
        assert exit_info.value.code == 2
    capsys.readouterr()


def test_output_inside_input_and_collisions(
    model_dir: Path, tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tree / "depth"
    for _ in range(2):  # the second run must not predict the first run's outputs
        assert main(["predict", str(tree), "--model", str(model_dir), "-o", str(out), "--formats", "png16,color"]) == 0
        assert "3 images" in capsys.readouterr().out
    assert not (out / "depth").exists()

    _save(tree / "a.jpg", 8, 8, 3)  # a.png and a.jpg would both write a_depth.*
    assert main(["predict", str(tree), "--model", str(model_dir), "-o", str(tmp_path / "o2")]) == 2
    assert "would both write" in capsys.readouterr().err
    (tree / "a.jpg").unlink()

    # An output that would replace an input image is refused before anything is written.
    _save(tree / "x_depth.png", 8, 8, 4)
    _save(tree / "x.png", 8, 8, 5)
    assert main(["predict", str(tree), "--model", str(model_dir), "-o", str(tree)]) == 2
    assert "would overwrite an input image" in capsys.readouterr().err
