"""mmseg's ADE20K train augmentation: resize sizes vs the official formula checks, cat_max_ratio crops, padding,
OpenCV-exact HSV and nearest rules, draw order, determinism and never writing into inputs."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from vpd.data.base import IGNORE_INDEX, Sample
from vpd.data.seg_transforms import (
    Pad,
    PhotoMetricDistortion,
    RandomCropCatMax,
    RandomResize,
    hsv_u8_to_rgb,
    opencv_nearest_indices,
    resize_sample,
    rgb_to_hsv_u8,
    seg_train_transform,
)

GEOMETRY = Path(__file__).parent / "fixtures" / "reference" / "vpd_seg_head" / "geometry.json"


class ScriptedRng:
    """Stands in for ``np.random.Generator``: returns scripted draws and checks each one against its range."""

    def __init__(self, ints: Sequence[int] = (), uniforms: Sequence[float] = (), randoms: Sequence[float] = ()) -> None:
        self.ints, self.uniforms, self.randoms = list(ints), list(uniforms), list(randoms)
        self.int_calls: list[tuple[int, int]] = []

    def integers(self, low: int, high: int | None = None) -> int:
        if high is None:
            low, high = 0, low
        value = self.ints.pop(0)
        assert low <= value < high, f"scripted {value} outside [{low}, {high})"
        self.int_calls.append((low, high))
        return value

    def uniform(self, low: float, high: float) -> float:
        value = self.uniforms.pop(0)
        assert low <= value <= high
        return value

    def random(self) -> float:
        return self.randoms.pop(0)


def _sample(height: int = 40, width: int = 56, seed: int = 0, classes: int = 5) -> Sample:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    semantic = rng.integers(0, classes, size=(height, width)).astype(np.uint8)
    semantic[:3] = IGNORE_INDEX
    depth = rng.random((height, width)).astype(np.float32)
    return Sample(image=image, targets={"semantic": semantic, "depth": depth}, name="s")


def _snapshot(sample: Sample) -> Sample:
    return Sample(image=sample.image.copy(), targets={k: v.copy() for k, v in sample.targets.items()}, name=sample.name)


def _assert_same(a: Sample, b: Sample) -> None:
    np.testing.assert_array_equal(a.image, b.image)
    assert a.targets.keys() == b.targets.keys()
    for key in a.targets:
        np.testing.assert_array_equal(a.targets[key], b.targets[key])


# ------------------------------------------------------------------------------------------------- RandomResize


def test_random_resize_matches_the_official_formula_checks() -> None:
    checks = json.loads(GEOMETRY.read_text())["train_resize_formula_checks"]
    assert len(checks) >= 24
    transform = RandomResize(img_scale=(2048, 512), ratio_range=(0.5, 2.0))
    for check in checks:
        assert check["u"] * 1.5 + 0.5 == pytest.approx(check["ratio"])
        assert transform.sample_scale(ScriptedRng(randoms=[check["u"]])) == tuple(check["scale"])
        height, width = check["input_hw"]
        sample = Sample(
            image=np.zeros((height, width, 3), np.uint8), targets={"semantic": np.zeros((height, width), np.uint8)}
        )
        out = transform(sample, ScriptedRng(randoms=[check["u"]]))
        assert out.image.shape == (*check["resized_hw"], 3), check
        assert out.targets["semantic"].shape == tuple(check["resized_hw"]), check


def test_random_resize_draws_one_uniform_and_keeps_label_values() -> None:
    sample = _sample()
    out = RandomResize(img_scale=(200, 50), ratio_range=(0.5, 2.0))(sample, np.random.default_rng(3))
    assert out.image.dtype == np.uint8 and out.targets["semantic"].dtype == np.uint8
    assert set(np.unique(out.targets["semantic"])) <= set(np.unique(sample.targets["semantic"]))
    assert out.targets["depth"].shape == out.image.shape[:2]
    fixed = RandomResize(img_scale=(112, 80), ratio_range=None)(sample, ScriptedRng())  # draws nothing
    assert fixed.image.shape[:2] == (80, 112)


def test_opencv_nearest_rule() -> None:
    # Values read from cv2.resize(..., interpolation=cv2.INTER_NEAREST) (opencv-python 4.6 and 4.14).
    assert opencv_nearest_indices(7, 13).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6]
    assert opencv_nearest_indices(13, 7).tolist() == [0, 1, 3, 5, 7, 9, 11]
    assert opencv_nearest_indices(375, 512)[:16].tolist() == [0, 0, 1, 2, 2, 3, 4, 5, 5, 6, 7, 8, 8, 9, 10, 10]
    assert opencv_nearest_indices(512, 256).tolist() == list(range(0, 512, 2))
    labels = np.arange(6, dtype=np.uint8).reshape(2, 3)
    out = resize_sample(Sample(image=np.zeros((2, 3, 3), np.uint8), targets={"semantic": labels}), (4, 6))
    np.testing.assert_array_equal(out.targets["semantic"], labels.repeat(2, 0).repeat(2, 1))


# --------------------------------------------------------------------------------------------- RandomCropCatMax


def _stripes(height: int = 64, width: int = 64) -> Sample:
    """Left half class 1, right half class 2: a 32-wide window at column l passes 0.75 only for 8 < l < 24."""
    semantic = np.ones((height, width), np.uint8)
    semantic[:, width // 2 :] = 2
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0] = np.arange(width, dtype=np.uint8)[None, :]
    image[..., 1] = np.arange(height, dtype=np.uint8)[:, None]
    return Sample(image=image, targets={"semantic": semantic})


def test_cat_max_ratio_redraws_until_a_window_passes() -> None:
    crop = RandomCropCatMax(size=(32, 32), cat_max_ratio=0.75)
    rng = ScriptedRng(ints=[0, 0, 5, 30, 7, 16])  # (top, left): (0, 0) fails, (5, 30) fails, (7, 16) passes
    out = crop(_stripes(), rng)
    assert out.image[0, 0, 0] == 16 and out.image[0, 0, 1] == 7
    assert rng.int_calls == [(0, 33)] * 6 and not rng.ints
    assert crop.accepts(out.targets["semantic"])


def test_cat_max_ratio_takes_the_eleventh_draw_unchecked() -> None:
    crop = RandomCropCatMax(size=(32, 32), cat_max_ratio=0.75)
    rng = ScriptedRng(ints=[0, 0] * 10 + [3, 1])  # ten failing checks, then (3, 1), which fails too
    out = crop(_stripes(), rng)
    assert out.image[0, 0, 0] == 1 and out.image[0, 0, 1] == 3
    assert not rng.ints and not crop.accepts(out.targets["semantic"])


def test_cat_max_ratio_statistics_and_disabled_check() -> None:
    crop = RandomCropCatMax(size=(32, 32), cat_max_ratio=0.75)
    lefts = [int(crop(_stripes(), np.random.default_rng(seed)).image[0, 0, 0]) for seed in range(60)]
    assert sum(8 < left < 24 for left in lefts) >= 57  # a fallback needs 11 failures in a row (p ~ 0.001)
    unchecked = RandomCropCatMax(size=(32, 32), cat_max_ratio=1.0)
    lefts = [int(unchecked(_stripes(), np.random.default_rng(seed)).image[0, 0, 0]) for seed in range(60)]
    assert sum(not 8 < left < 24 for left in lefts) > 10


def test_cat_max_ratio_ignores_the_ignore_label() -> None:
    crop = RandomCropCatMax(size=(4, 4), cat_max_ratio=0.75)
    window = np.full((4, 4), IGNORE_INDEX, np.uint8)
    window[0, 0] = 1
    assert not crop.accepts(window)  # one counted class
    window[0, 1] = 2
    assert crop.accepts(window)  # 1 and 2 at 50 % each of the counted pixels; 255 does not count
    window[0, 2] = 1
    window[0, 3] = 1
    assert not crop.accepts(window)  # class 1 is 75 % of the counted pixels: not < 0.75
    assert not crop.accepts(np.full((4, 4), IGNORE_INDEX, np.uint8))


def test_small_image_is_cropped_to_what_exists_then_padded_with_ignore() -> None:
    sample = _sample(height=20, width=28)
    rng = ScriptedRng(ints=[0, 0])
    cropped = RandomCropCatMax(size=(32, 32), cat_max_ratio=1.0)(sample, rng)
    assert rng.int_calls == [(0, 1), (0, 1)]
    _assert_same(cropped, sample)
    padded = Pad((32, 32), image_fill=7)(cropped, np.random.default_rng(0))
    assert padded.image.shape == (32, 32, 3)
    np.testing.assert_array_equal(padded.image[:20, :28], sample.image)
    assert (padded.image[20:] == 7).all() and (padded.image[:, 28:] == 7).all()
    labels = padded.targets["semantic"]
    np.testing.assert_array_equal(labels[:20, :28], sample.targets["semantic"])
    assert (labels[20:] == IGNORE_INDEX).all() and (labels[:, 28:] == IGNORE_INDEX).all()
    assert (padded.targets["depth"][20:] == 0).all()  # depth pads with its own fill (0 = invalid)


def test_pad_refuses_larger_samples_and_passes_exact_ones_through() -> None:
    sample = _sample(height=32, width=32)
    assert Pad((32, 32))(sample, np.random.default_rng(0)) is sample
    with pytest.raises(ValueError, match="larger than the pad size"):
        Pad((16, 64))(sample, np.random.default_rng(0))


def test_full_pipeline_pads_small_images_with_ignore() -> None:
    # Short side 16 after the resize, crop 32: every output has an ignored, grey-filled band.
    transform = seg_train_transform(crop_size=(32, 32), img_scale=(64, 16), ratio_range=(1.0, 1.0))
    for seed in range(5):
        sample = _sample(height=40, width=60, seed=seed)
        sample.targets["semantic"][:3] = 0  # no ignore in the content, so any 255 comes from the padding
        out = transform(sample, np.random.default_rng(seed))
        labels = out.targets["semantic"]
        assert out.image.shape == (32, 32, 3) and labels.shape == (32, 32)
        assert (labels[16:] == IGNORE_INDEX).all() and (out.image[16:] == 128).all()
        assert (labels[:16, :24] != IGNORE_INDEX).all()


# ----------------------------------------------------------------------------------------------- photometric


def test_hsv_conversions_match_opencv() -> None:
    # cv2.cvtColor(COLOR_RGB2HSV / COLOR_HSV2RGB) on uint8 (opencv-python 4.6 and 4.14, vectorised path).
    rgb = [[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255], [12, 200, 77], [250, 3, 128],
           [90, 90, 91], [1, 2, 3], [200, 150, 100], [17, 254, 160], [128, 64, 255]]  # fmt: skip
    hsv = [[0, 0, 0], [0, 0, 255], [0, 255, 255], [60, 255, 255], [120, 255, 255], [70, 240, 200], [165, 252, 250],
           [120, 3, 91], [105, 170, 3], [15, 127, 200], [78, 238, 254], [130, 191, 255]]  # fmt: skip
    np.testing.assert_array_equal(rgb_to_hsv_u8(np.array(rgb, np.uint8)), np.array(hsv, np.uint8))
    hsv_in = [[0, 1, 1], [1, 90, 85], [1, 90, 170], [179, 255, 255], [60, 128, 200], [90, 255, 7], [120, 30, 240],
              [150, 200, 100], [33, 77, 222], [0, 0, 99]]  # fmt: skip
    rgb_out = [[1, 0, 0], [85, 56, 55], [170, 112, 110], [255, 0, 8], [99, 200, 99], [0, 6, 7], [211, 211, 240],
               [100, 21, 99], [215, 222, 154], [99, 99, 99]]  # fmt: skip
    np.testing.assert_array_equal(hsv_u8_to_rgb(np.array(hsv_in, np.uint8)), np.array(rgb_out, np.uint8))
    image = np.random.default_rng(0).integers(0, 256, (8, 9, 3), dtype=np.uint8)
    assert rgb_to_hsv_u8(image).shape == image.shape and (rgb_to_hsv_u8(image)[..., 0] < 180).all()


def _affine(image: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    return np.clip(image.astype(np.float32) * np.float32(alpha) + np.float32(beta), 0, 255).astype(np.uint8)


def test_photometric_order_and_draws() -> None:
    sample = _sample()
    # brightness on (+10.5); mode 0 (contrast last); saturation off; hue off; contrast on (x1.2).
    rng = ScriptedRng(ints=[1, 0, 0, 0, 1], uniforms=[10.5, 1.2])
    out = PhotoMetricDistortion()(sample, rng)
    np.testing.assert_array_equal(out.image, _affine(_affine(sample.image, 1.0, 10.5), 1.2, 0.0))
    assert rng.int_calls == [(0, 2)] * 5 and not rng.uniforms
    # mode 1 (contrast first): contrast off; saturation off; hue on with shift -18 (the lowest draw).
    rng = ScriptedRng(ints=[0, 1, 0, 0, 1, -18])
    out = PhotoMetricDistortion()(sample, rng)
    assert rng.int_calls[-1] == (-18, 18)
    hsv = rgb_to_hsv_u8(sample.image)
    hsv[..., 0] = (hsv[..., 0].astype(int) - 18) % 180
    np.testing.assert_array_equal(out.image, hsv_u8_to_rgb(hsv))
    # Nothing drawn on: the very same sample back.
    assert PhotoMetricDistortion()(sample, ScriptedRng(ints=[0, 0, 0, 0, 0])) is sample


def test_photometric_leaves_targets_untouched() -> None:
    sample = _sample()
    before = _snapshot(sample)
    for seed in range(8):
        out = PhotoMetricDistortion()(sample, np.random.default_rng(seed))
        for key, value in sample.targets.items():
            assert out.targets[key] is value
        _assert_same(sample, before)
        assert out.image.dtype == np.uint8 and out.image.shape == sample.image.shape


# ------------------------------------------------------------------------------------ determinism and inputs


@pytest.mark.parametrize(
    "transform",
    [
        RandomResize(img_scale=(120, 30)),
        RandomCropCatMax(size=(24, 24)),
        PhotoMetricDistortion(),
        Pad((48, 64)),
        seg_train_transform(crop_size=(32, 32), img_scale=(120, 30)),
    ],
    ids=repr,
)
def test_transforms_are_deterministic_and_never_write_into_inputs(transform: object) -> None:
    sample = _sample()
    before = _snapshot(sample)
    first = transform(sample, np.random.default_rng(11))  # type: ignore[operator]
    second = transform(copy.deepcopy(sample), np.random.default_rng(11))  # type: ignore[operator]
    _assert_same(first, second)
    _assert_same(sample, before)
    inputs = [sample.image, *sample.targets.values()]
    for array in [first.image, *first.targets.values()]:
        if not any(array is original for original in inputs):  # changed arrays are new memory
            assert not any(np.shares_memory(array, original) for original in inputs)


def test_pipeline_outputs_crop_size_and_varies_with_the_seed() -> None:
    transform = seg_train_transform(crop_size=(64, 64), img_scale=(256, 64))
    sample = _sample(height=75, width=100, seed=4, classes=3)
    outputs = [transform(sample, np.random.default_rng(seed)) for seed in range(6)]
    for out in outputs:
        assert out.image.shape == (64, 64, 3) and out.targets["semantic"].shape == (64, 64)
        assert out.targets["semantic"].dtype == np.uint8
    assert any(not np.array_equal(outputs[0].image, out.image) for out in outputs[1:])
