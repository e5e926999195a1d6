"""DepthPredictor: every input form, resizing, batching, scenes, output types and argument checking."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vpd.inference.grids import square_grid
from vpd.inference.predictor import DepthPrediction, DepthPredictor
from vpd.inference.tta import predict_tta
from vpd.modeling.depth import VPDDepth, build_vpd_depth, tiny_vpd_depth_config


def windowed(forward, images, per_image=None, *, windows=None, **kwargs):
    """Depth's TTA: the square-window grid of ``windows`` through the generic engine."""
    return predict_tta(forward, images, per_image, grid=square_grid(windows), **kwargs)



def _lively_tiny_model() -> VPDDepth:
    """The tiny random model, with a head re-initialised at unit gain: the official N(0, 0.001) init predicts a flat
    5 m, which would hide wrong resizing, ordering or scene handling."""
    model = build_vpd_depth(tiny_vpd_depth_config())
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.head.parameters():
            if parameter.dim() > 1:
                fan_in = parameter[0].numel()
                parameter.copy_(torch.randn(parameter.shape, generator=generator) / fan_in**0.5)
    return model.eval()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _lively_tiny_model().save_pretrained(tmp_path_factory.mktemp("predictor") / "tiny")


@pytest.fixture(scope="session")
def predictor(model_dir: Path) -> DepthPredictor:
    return DepthPredictor.from_pretrained(model_dir, dtype="fp32")


def _image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_every_input_form_gives_input_sized_depth(predictor: DepthPredictor, tmp_path: Path) -> None:
    rgb = _image(30, 44)
    path = tmp_path / "image.png"
    Image.fromarray(rgb).save(path)
    reference = predictor(rgb)
    assert isinstance(reference, DepthPrediction)
    assert reference.depth.shape == (30, 44) and reference.depth.dtype == np.float32
    assert reference.image_size == (30, 44) and reference.scene is None
    assert np.all(reference.depth > 0) and np.all(reference.depth < predictor.model.config.max_depth)
    same_pixels = {
        "path": str(path),
        "pathlib": path,
        "PIL": Image.fromarray(rgb),
        "float numpy": rgb.astype(np.float32) / 255.0,
        "float64 numpy": rgb / 255.0,
        "torch float": torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0,
        "torch uint8": torch.from_numpy(rgb).permute(2, 0, 1),
        "RGBA": np.concatenate([rgb, np.full((30, 44, 1), 7, np.uint8)], axis=2),
    }
    for name, item in same_pixels.items():
        out = predictor(item)
        assert isinstance(out, DepthPrediction)
        np.testing.assert_allclose(out.depth, reference.depth, rtol=0, atol=1e-6, err_msg=name)

    gray = rgb[..., 0]
    expected = predictor(np.repeat(gray[..., None], 3, axis=2)).depth
    for item in (gray, gray[..., None], Image.fromarray(gray), torch.from_numpy(gray)):
        out = predictor(item)
        np.testing.assert_allclose(out.depth, expected, rtol=0, atol=1e-6)


def test_sixteen_bit_pil_image(predictor: DepthPredictor) -> None:
    gray = _image(20, 24)[..., 0]
    sixteen = Image.fromarray(gray.astype(np.uint16) * 257)
    np.testing.assert_allclose(predictor(sixteen).depth, predictor(gray).depth, rtol=0, atol=1e-6)


def test_list_of_mixed_sizes_keeps_order_and_sizes(predictor: DepthPredictor) -> None:
    images = [_image(32, 48, 1), _image(40, 40, 2), _image(32, 48, 3), _image(17, 29, 4)]
    singles = [predictor(image).depth for image in images]
    outputs = predictor(images, batch_size=3)
    assert isinstance(outputs, list) and len(outputs) == 4
    for image, single, out in zip(images, singles, outputs, strict=True):
        assert out.image_size == image.shape[:2] and out.depth.shape == image.shape[:2]
        np.testing.assert_allclose(out.depth, single, rtol=0, atol=1e-5)
    assert not np.allclose(outputs[0].depth, outputs[2].depth)  # different images, not a shared result
    assert isinstance(predictor([images[0]]), list)


def test_four_dimensional_inputs_are_batches(predictor: DepthPredictor) -> None:
    batch = np.stack([_image(24, 32, 5), _image(24, 32, 6)])
    from_numpy = predictor(batch)
    from_torch = predictor(torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255.0)
    assert isinstance(from_numpy, list) and isinstance(from_torch, list) and len(from_numpy) == 2
    for a, b in zip(from_numpy, from_torch, strict=True):
        np.testing.assert_allclose(a.depth, b.depth, rtol=0, atol=1e-5)


def test_processing_resolution_resizes_in_and_back(predictor: DepthPredictor) -> None:
    image = _image(40, 60, 7)
    seen: list[tuple[int, ...]] = []
    handle = predictor.model.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape)))
    try:
        out = predictor(image, processing_resolution=32)
    finally:
        handle.remove()
    assert seen == [(1, 3, 21, 32)]  # longer side 32, aspect kept (40 * 32 / 60 = 21.3)
    assert out.depth.shape == (40, 60)
    # The same as resizing by hand: antialiased bilinear in, bilinear back.
    tensor = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0
    small = torch.nn.functional.interpolate(tensor, size=(21, 32), mode="bilinear", antialias=True)
    with torch.inference_mode():
        depth = predictor.model(small).depth
    back = torch.nn.functional.interpolate(depth, size=(40, 60), mode="bilinear", antialias=True)
    np.testing.assert_allclose(out.depth, back[0, 0].numpy(), rtol=0, atol=1e-5)
    native = predictor(image, processing_resolution=0).depth
    assert not np.allclose(out.depth, native, atol=1e-4)
    np.testing.assert_array_equal(predictor(image, processing_resolution=60).depth, native)  # already that size


def test_scene_by_name_index_and_mean(predictor: DepthPredictor) -> None:
    image = _image(32, 32, 8)
    names = predictor.class_names
    bedroom = predictor(image, scene="bedroom")
    assert bedroom.scene == "bedroom"
    by_index = predictor(image, scene=names.index("bedroom"))
    assert by_index.scene == "bedroom"
    np.testing.assert_array_equal(bedroom.depth, by_index.depth)
    kitchen = predictor(image, scene="kitchen").depth
    mean = predictor(image, scene=None)
    assert mean.scene is None
    np.testing.assert_array_equal(predictor(image, scene=-1).depth, mean.depth)
    # Different class embeddings condition the UNet differently.
    assert np.abs(bedroom.depth - kitchen).max() > 1e-4
    assert np.abs(bedroom.depth - mean.depth).max() > 1e-4


def test_unknown_scene_lists_the_valid_names(predictor: DepthPredictor) -> None:
    with pytest.raises(ValueError, match=r"scene: unknown scene 'garage'.*bedroom.*kitchen"):
        predictor(_image(8, 8), scene="garage")
    with pytest.raises(ValueError, match="scene: index 27 out of range"):
        predictor(_image(8, 8), scene=27)


def test_output_type_pt(predictor: DepthPredictor) -> None:
    image = _image(24, 36, 9)
    out = predictor(image, output_type="pt")
    assert isinstance(out.depth, torch.Tensor)
    assert out.depth.shape == (1, 24, 36) and out.depth.dtype == torch.float32
    assert not out.depth.is_inference()  # usable in autograd code afterwards
    np.testing.assert_array_equal(out.depth[0].numpy(), predictor(image).depth)


def test_flip_and_windows_go_through_tta(predictor: DepthPredictor) -> None:
    image = _image(24, 40, 10)
    out = predictor(image, flip=True, windows=2, scene="office", batch_size=3)
    tensor = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0
    with torch.inference_mode():
        expected = windowed(
            lambda x, c: predictor.model(x, class_ids=c).depth,
            tensor,
            torch.tensor([predictor.class_names.index("office")]),
            flip=True,
            windows=2,
        )
    np.testing.assert_allclose(out.depth, expected[0, 0].numpy(), rtol=0, atol=1e-5)
    assert not np.allclose(out.depth, predictor(image, scene="office").depth, atol=1e-4)


@pytest.mark.parametrize(
    ("images", "kwargs", "message"),
    [
        (np.full((8, 8, 3), 1.5, np.float32), {}, r"images: float image values must lie in \[0, 1\]"),
        (np.full((8, 8, 3), np.nan, np.float32), {}, r"images: float image values must lie in \[0, 1\]"),
        (np.zeros((8, 8, 2), np.uint8), {}, r"images: numpy image must be \[H, W\] or \[H, W, 1\|3\|4\]"),
        (torch.zeros(8, 8, 3), {}, r"images: torch image must be .*channels first"),
        (np.zeros((8, 8, 3), np.int32), {}, "images: expected uint8 pixels or floats"),
        (5, {}, "images: expected a path, PIL image"),
        ([], {}, "images: got an empty list"),
        ([np.zeros((8, 8, 3), np.uint8), "x.png", 3.0], {}, r"images\[2\]: expected a path"),
        (
            np.zeros((8, 8, 3), np.uint8),
            {"processing_resolution": -1},
            "processing_resolution: expected an integer from 0",
        ),
        (np.zeros((8, 8, 3), np.uint8), {"batch_size": 0}, "batch_size: expected an integer >= 1"),
        (np.zeros((8, 8, 3), np.uint8), {"windows": 0}, "windows: expected None"),
        (np.zeros((8, 8, 3), np.uint8), {"flip": "yes"}, "flip: expected True or False"),
        (np.zeros((8, 8, 3), np.uint8), {"output_type": "pil"}, "output_type: expected 'np'"),
        (np.zeros((8, 8, 3), np.uint8), {"scene": 2.5}, "scene: expected a class name"),
    ],
)
def test_check_inputs_names_the_argument(predictor: DepthPredictor, images, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        predictor(images, **kwargs)


def test_missing_and_corrupt_files(predictor: DepthPredictor, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"missing\.png"):
        predictor(tmp_path / "missing.png")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(ValueError, match=r"broken\.png"):
        predictor(broken)


def test_device_dtype_and_bf16(model_dir: Path, predictor: DepthPredictor) -> None:
    assert predictor.device == torch.device("cpu") and predictor.dtype == torch.float32
    image = _image(24, 24, 11)
    bf16 = DepthPredictor.from_pretrained(model_dir, dtype=torch.bfloat16)
    assert bf16.dtype == torch.bfloat16
    out = bf16(image)
    assert out.depth.dtype == np.float32
    np.testing.assert_allclose(out.depth, predictor(image).depth, rtol=0.05)
    # A model handed over directly: moved/cast only when asked.
    model = _lively_tiny_model()
    assert DepthPredictor(model, dtype=torch.float64).dtype == torch.float64
