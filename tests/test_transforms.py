"""Paired augmentations: determinism per rng, geometric consistency, photometric formulas and ranges, CutDepth."""

from __future__ import annotations

import colorsys
import copy

import numpy as np
import pytest

from vpd.data.base import PerceptionDataset, Sample
from vpd.data.transforms import (
    CenterCrop,
    Compose,
    CutDepth,
    HorizontalFlip,
    HueSaturationValue,
    RandomBrightnessContrast,
    RandomCrop,
    RandomGamma,
    Resize,
    depth_train_transform,
    hsv_to_rgb,
    rgb_to_hsv,
)


def _coded_sample(height: int = 12, width: int = 20, seed: int = 0) -> Sample:
    """Image and targets whose values encode the pixel position, so geometry can be checked exactly."""
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    image = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    image[..., 0] = rows
    image[..., 1] = cols
    depth = (rows * 100 + cols + 1).astype(np.float32) / 1000.0
    normals = np.stack([cols / width - 0.5, rows / height - 0.5, -np.ones_like(rows, dtype=float)], axis=2)
    semantic = (rows * width + cols).astype(np.int64)
    return Sample(
        image=image,
        targets={"depth": depth, "normals": normals.astype(np.float32), "semantic": semantic},
        class_id=3,
        name="scene/rgb_00001",
    )


def _snapshot(sample: Sample) -> Sample:
    return copy.deepcopy(sample)


def _assert_same(a: Sample, b: Sample) -> None:
    np.testing.assert_array_equal(a.image, b.image)
    assert a.targets.keys() == b.targets.keys()
    for key in a.targets:
        np.testing.assert_array_equal(a.targets[key], b.targets[key])
    assert (a.class_id, a.name) == (b.class_id, b.name)


ALL_TRANSFORMS = [
    RandomCrop((8, 10)),
    CenterCrop(8),
    HorizontalFlip(p=1.0),
    Resize((7, 31)),
    RandomBrightnessContrast(p=1.0),
    RandomGamma(p=1.0),
    HueSaturationValue(p=1.0),
    CutDepth(p=1.0),
    depth_train_transform(crop_size=(8, 8), cutdepth_p=1.0),
]


@pytest.mark.parametrize("transform", ALL_TRANSFORMS, ids=lambda t: type(t).__name__)
def test_deterministic_per_rng_and_input_untouched(transform):
    sample = _coded_sample()
    before = _snapshot(sample)
    first = transform(sample, np.random.default_rng([7, 0, 3]))
    second = transform(sample, np.random.default_rng([7, 0, 3]))
    _assert_same(first, second)
    _assert_same(sample, before)  # nothing written into the input
    # an output array is either passed through untouched (the same object) or new memory, never a view of the input
    pairs = [(first.image, sample.image)]
    pairs += [(first.targets[key], sample.targets[key]) for key in sample.targets]
    for out, inp in pairs:
        assert out is inp or not np.shares_memory(out, inp)


def test_different_rng_gives_different_augmentation():
    sample = _coded_sample(40, 48)
    transform = depth_train_transform(crop_size=(32, 32))
    outputs = {transform(sample, np.random.default_rng(seed)).image.tobytes() for seed in range(8)}
    assert len(outputs) > 1


def test_horizontal_flip_is_consistent_and_negates_normal_x():
    sample = _coded_sample()
    out = HorizontalFlip(p=1.0)(sample, np.random.default_rng(0))
    np.testing.assert_array_equal(out.image, sample.image[:, ::-1])
    np.testing.assert_array_equal(out.depth, sample.depth[:, ::-1])
    np.testing.assert_array_equal(out.targets["semantic"], sample.targets["semantic"][:, ::-1])
    normals = sample.targets["normals"][:, ::-1]
    np.testing.assert_array_equal(out.targets["normals"][..., 0], -normals[..., 0])
    np.testing.assert_array_equal(out.targets["normals"][..., 1:], normals[..., 1:])
    assert HorizontalFlip(p=0.0)(sample, np.random.default_rng(0)) is sample
    flips = [HorizontalFlip()(sample, np.random.default_rng(s)) is not sample for s in range(200)]
    assert 60 < sum(flips) < 140  # p = 0.5


def test_random_crop_size_and_alignment():
    sample = _coded_sample()
    for seed in range(20):
        out = RandomCrop((5, 9))(sample, np.random.default_rng(seed))
        assert out.image.shape == (5, 9, 3) and out.depth.shape == (5, 9) and out.targets["normals"].shape == (5, 9, 3)
        top, left = int(out.image[0, 0, 0]), int(out.image[0, 0, 1])
        assert 0 <= top <= 12 - 5 and 0 <= left <= 20 - 9
        np.testing.assert_array_equal(out.depth, sample.depth[top : top + 5, left : left + 9])
        semantic = sample.targets["semantic"][top : top + 5, left : left + 9]
        np.testing.assert_array_equal(out.targets["semantic"], semantic)
    full = RandomCrop((12, 20))(sample, np.random.default_rng(0))
    _assert_same(full, sample)
    with pytest.raises(ValueError, match=r"13x20 is larger than sample 'scene/rgb_00001' of 12x20"):
        RandomCrop((13, 20))(sample, np.random.default_rng(0))


def test_center_crop_offsets():
    sample = _coded_sample()
    out = CenterCrop((6, 7))(sample, np.random.default_rng(0))
    assert (int(out.image[0, 0, 0]), int(out.image[0, 0, 1])) == ((12 - 6) // 2, (20 - 7) // 2)
    np.testing.assert_array_equal(out.depth, sample.depth[3:9, 6:13])


def test_resize_bilinear_image_nearest_depth():
    sample = _coded_sample()
    out = Resize((6, 10))(sample, np.random.default_rng(0))
    assert out.image.shape == (6, 10, 3) and out.depth.shape == (6, 10) and out.targets["semantic"].shape == (6, 10)
    # exact 2x down with half-pixel centres: bilinear averages each 2x2 block, nearest picks one of its pixels
    rows = sample.image[..., 0].astype(float)
    np.testing.assert_array_equal(out.image[..., 0], np.rint(rows.reshape(6, 2, 10, 2).mean(axis=(1, 3))))
    assert set(np.unique(out.depth)).issubset(set(np.unique(sample.depth)))
    np.testing.assert_array_equal(out.depth, sample.depth[1::2, 1::2])
    up = Resize(24)(Sample(np.full((4, 6, 3), 77, np.uint8), {"depth": np.ones((4, 6), np.float32)}), None)
    assert up.image.shape == (24, 24, 3) and (up.image == 77).all() and (up.depth == 1).all()


def test_brightness_contrast_formula_and_ranges():
    image = np.array([[[0, 100, 255]]], dtype=np.uint8)
    np.testing.assert_array_equal(RandomBrightnessContrast.apply(image, alpha=1.1, beta=0.1), [[[26, 136, 255]]])
    np.testing.assert_array_equal(RandomBrightnessContrast.apply(image, alpha=0.8, beta=-0.2), [[[0, 29, 153]]])
    np.testing.assert_array_equal(RandomBrightnessContrast.apply(image, alpha=1.0, beta=0.0), image)
    transform = RandomBrightnessContrast()
    params = [transform.sample_params(np.random.default_rng(s)) for s in range(300)]
    alphas, betas = np.array([p["alpha"] for p in params]), np.array([p["beta"] for p in params])
    assert alphas.min() >= 0.8 and alphas.max() <= 1.2 and alphas.min() < 0.85 and alphas.max() > 1.15
    assert betas.min() >= -0.2 and betas.max() <= 0.2 and betas.min() < -0.15 and betas.max() > 0.15


def test_gamma_formula_and_range():
    image = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    np.testing.assert_array_equal(RandomGamma.apply(image, gamma=1.0), image)
    out = RandomGamma.apply(image, gamma=1.2)
    expected = np.rint(255 * (np.arange(256) / 255) ** 1.2).reshape(16, 16)
    np.testing.assert_array_equal(out[..., 0], expected)
    assert out[0, 0, 0] == 0 and out[-1, -1, 0] == 255
    gammas = np.array([RandomGamma().sample_params(np.random.default_rng(s))["gamma"] for s in range(300)])
    assert gammas.min() >= 0.8 and gammas.max() <= 1.2 and gammas.min() < 0.85 and gammas.max() > 1.15


def test_hsv_conversion_matches_colorsys_and_round_trips():
    colours = np.random.default_rng(0).integers(0, 256, size=(500, 3), dtype=np.uint8)
    colours[:4] = [[0, 0, 0], [255, 255, 255], [128, 128, 128], [255, 0, 0]]
    hsv = rgb_to_hsv(colours)
    for (r, g, b), (h, s, v) in zip(colours.tolist(), hsv.tolist()):
        eh, es, ev = colorsys.rgb_to_hsv(r / 255, g / 255, b / 255)
        if es > 0:
            assert abs(((h - eh * 360) + 180) % 360 - 180) < 1e-3
        assert s == pytest.approx(es * 255, abs=1e-3) and v == pytest.approx(ev * 255, abs=1e-4)
    np.testing.assert_array_equal(hsv_to_rgb(hsv), colours)


def test_hue_saturation_value_shifts_and_ranges():
    red = np.array([[[255, 0, 0]]], dtype=np.uint8)
    # hue is in OpenCV units (degrees / 2): +60 -> +120 degrees, red -> green; -60 -> blue
    np.testing.assert_array_equal(HueSaturationValue.apply(red, 60, 0, 0), [[[0, 255, 0]]])
    np.testing.assert_array_equal(HueSaturationValue.apply(red, -60, 0, 0), [[[0, 0, 255]]])
    np.testing.assert_array_equal(HueSaturationValue.apply(red, 0, -255, 0), [[[255, 255, 255]]])
    np.testing.assert_array_equal(HueSaturationValue.apply(red, 0, 0, -55), [[[200, 0, 0]]])
    np.testing.assert_array_equal(HueSaturationValue.apply(red, 0, 0, 30), red)  # value clipped at 255
    image = _coded_sample().image
    np.testing.assert_array_equal(HueSaturationValue.apply(image, 0, 0, 0), image)
    params = [HueSaturationValue().sample_params(np.random.default_rng(s)) for s in range(300)]
    for key, limit in [("hue_shift", 20), ("sat_shift", 30), ("val_shift", 20)]:
        values = np.array([p[key] for p in params])
        assert values.min() >= -limit and values.max() <= limit
        assert values.min() < -0.8 * limit and values.max() > 0.8 * limit


def test_photometric_leaves_targets_alone():
    sample = _coded_sample()
    for transform in (RandomBrightnessContrast(p=1.0), RandomGamma(p=1.0), HueSaturationValue(p=1.0)):
        out = transform(sample, np.random.default_rng(1))
        assert out.depth is sample.depth and out.targets["normals"] is sample.targets["normals"]
        assert transform.__class__(p=0.0)(sample, np.random.default_rng(1)) is sample


def test_cutdepth_replaces_columns_with_scaled_depth():
    sample = _coded_sample(10, 40)
    width = 40
    for seed in range(10):
        out = CutDepth(p=1.0, max_depth=0.5)(sample, np.random.default_rng(seed))
        replay = np.random.default_rng(seed)
        replay.random()  # the apply-or-not draw
        alpha, beta = replay.random(), replay.random()
        left = int(alpha * width)
        strip = int(max((width - alpha * width) * beta * 0.75, 1))
        expected = np.clip(np.rint(sample.depth[:, left : left + strip] / 0.5 * 255), 0, 255).astype(np.uint8)
        for c in range(3):
            np.testing.assert_array_equal(out.image[:, left : left + strip, c], expected)
        outside = np.ones(width, bool)
        outside[left : left + strip] = False
        np.testing.assert_array_equal(out.image[:, outside], sample.image[:, outside])
        assert out.depth is sample.depth
    assert CutDepth(p=0.0)(sample, np.random.default_rng(0)) is sample
    no_depth = Sample(image=sample.image)
    assert CutDepth(p=1.0)(no_depth, np.random.default_rng(0)) is no_depth
    hits = sum(CutDepth()(sample, np.random.default_rng(s)) is not sample for s in range(400))
    assert 60 < hits < 140  # p = 0.25


def test_depth_train_transform_official_order_and_output():
    transform = depth_train_transform(crop_size=(480, 480), max_depth=10.0)
    assert isinstance(transform, Compose)
    assert [type(t) for t in transform.transforms] == [
        CutDepth,
        HorizontalFlip,
        RandomCrop,
        RandomBrightnessContrast,
        RandomGamma,
        HueSaturationValue,
    ]
    assert transform.transforms[0].p == 0.25 and transform.transforms[0].max_depth == 10.0
    small = depth_train_transform(crop_size=(8, 16))
    out = small(_coded_sample(), np.random.default_rng(0))
    assert out.image.shape == (8, 16, 3) and out.image.dtype == np.uint8
    assert out.depth.shape == (8, 16) and out.depth.dtype == np.float32
    assert "CutDepth" in repr(small)


class _Constant(PerceptionDataset):
    def __len__(self) -> int:
        return 3

    def load(self, index: int) -> Sample:
        return _coded_sample(16, 24, seed=index)


def test_dataset_augmentation_depends_only_on_seed_epoch_index():
    data = _Constant(transform=depth_train_transform(crop_size=(8, 8)), seed=5)
    again = _Constant(transform=depth_train_transform(crop_size=(8, 8)), seed=5)
    for index in (0, 4):  # index 4 = epoch 1, sample 1
        a, b = data[index], again[index]
        assert (a["image"] == b["image"]).all() and (a["depth"] == b["depth"]).all()
    epochs = {data[1 + 3 * e]["image"].numpy().tobytes() for e in range(6)}
    assert len(epochs) > 1
