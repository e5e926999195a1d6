"""Test-time / train-time geometry of the seg recipe against the official mmcv/mmseg numbers (geometry.json)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from reference import REFERENCE
from vpd.inference.grids import (
    ADE_CROP,
    ADE_IMG_SCALE,
    ADE_RATIO_RANGE,
    ADE_STRIDE,
    MS_RATIOS,
    MultiScaleView,
    crop_stride_windows,
    keep_ratio_scale_factor,
    keep_ratio_size,
    multi_scale_views,
    ratio_range_scale,
    ratio_scale,
)

GEOMETRY: dict[str, Any] = json.loads((REFERENCE / "vpd_seg_head" / "geometry.json").read_text())
SIZES: list[dict[str, Any]] = GEOMETRY["sizes"]
TRAIN_CHECKS: list[dict[str, Any]] = GEOMETRY["train_resize_formula_checks"]


def _size_id(case: dict[str, Any]) -> str:
    return "x".join(map(str, case["input_hw"])) + ("-extra" if case["extra"] else "")


def _as_official(windows: list[tuple[int, int, int, int]]) -> list[list[int]]:
    """``(top, left, h, w)`` -> the fixture's ``[y1, y2, x1, x2]``."""
    return [[top, top + h, left, left + w] for top, left, h, w in windows]


def test_fixture_shape():
    # every case below is really exercised: 7 sizes (one extra) x 10 views, 24 train checks
    assert len(SIZES) == 7 and sum(case["extra"] for case in SIZES) == 1
    assert all(len(case["aug_test"]) == 10 for case in SIZES)
    assert len(TRAIN_CHECKS) == 24
    assert set(GEOMETRY) == {"source", "test_cfg", "aug_test", "sizes", "train_resize_formula_checks"}


def test_constants_match_official_config():
    cfg = GEOMETRY["test_cfg"]
    assert cfg["mode"] == "slide"
    assert tuple(cfg["crop_size"]) == ADE_CROP
    assert tuple(cfg["stride"]) == ADE_STRIDE
    aug = GEOMETRY["aug_test"]
    assert tuple(aug["img_ratios"]) == MS_RATIOS
    assert aug["flip"] is True and aug["flip_direction"] == "horizontal"
    assert [list(ratio_scale(r)) for r in MS_RATIOS] == aug["img_scales"]
    assert ratio_scale(1.0) == ADE_IMG_SCALE


@pytest.mark.parametrize("case", SIZES, ids=_size_id)
def test_single_scale(case: dict[str, Any]):
    h, w = case["input_hw"]
    single = case["single_scale"]
    scale = (single["scale"][0], single["scale"][1])
    assert scale == ADE_IMG_SCALE
    resized = keep_ratio_size(h, w, scale)
    assert list(resized) == single["resized_hw"]
    # mmcv's rescale_factor (a double) and mmseg's per-axis float32 scale_factor (w'/w, h'/h), bit for bit
    assert keep_ratio_scale_factor(h, w) == single["rescale_factor"]
    new_h, new_w = resized
    assert [float(np.float32(new_w / w)), float(np.float32(new_h / h))] == single["scale_factor_wh"]
    assert _as_official(crop_stride_windows(new_h, new_w)) == single["windows"]


@pytest.mark.parametrize("case", SIZES, ids=_size_id)
def test_multi_scale_flip_views(case: dict[str, Any]):
    h, w = case["input_hw"]
    views = multi_scale_views(h, w)
    assert len(views) == len(case["aug_test"]) == 10
    for view, expected in zip(views, case["aug_test"]):
        assert isinstance(view, MultiScaleView)
        assert list(view.scale) == expected["scale"]
        assert view.flip is expected["flip"]
        assert list(view.resized_hw) == expected["resized_hw"]
        assert _as_official(view.windows) == expected["windows"]
        # the building blocks give the same, view by view
        assert list(keep_ratio_size(h, w, view.scale)) == expected["resized_hw"]
        rh, rw = expected["resized_hw"]
        assert _as_official(crop_stride_windows(rh, rw, ADE_CROP, ADE_STRIDE)) == expected["windows"]


@pytest.mark.parametrize("case", SIZES, ids=_size_id)
def test_single_scale_view_is_first_ms_view(case: dict[str, Any]):
    h, w = case["input_hw"]
    (view,) = multi_scale_views(h, w, ratios=(1.0,), flip=False)
    assert list(view.resized_hw) == case["single_scale"]["resized_hw"]
    assert _as_official(view.windows) == case["single_scale"]["windows"]


@pytest.mark.parametrize("case", TRAIN_CHECKS, ids=lambda c: f"u{c['u']:.6g}-" + "x".join(map(str, c["input_hw"])))
def test_train_resize_formula(case: dict[str, Any]):
    u = case["u"]
    assert u * (ADE_RATIO_RANGE[1] - ADE_RATIO_RANGE[0]) + ADE_RATIO_RANGE[0] == case["ratio"]
    scale = ratio_range_scale(u)
    assert list(scale) == case["scale"]
    h, w = case["input_hw"]
    assert list(keep_ratio_size(h, w, scale)) == case["resized_hw"]


def test_duplicate_window_quirk():
    # width 854: the last two column windows are 341:853 and 342:854, kept as mmseg has them
    cols = [(left, left + w) for _, left, _, w in crop_stride_windows(512, 854)]
    assert cols == [(0, 512), (341, 853), (342, 854)]


def test_short_axis_gets_one_full_length_window():
    assert crop_stride_windows(205, 600) == [(0, 0, 205, 512), (0, 88, 205, 512)]
    assert crop_stride_windows(100, 100) == [(0, 0, 100, 100)]


@pytest.mark.parametrize("hw", [(1, 1), (511, 513), (512, 853), (683, 512), (1025, 2048), (3000, 77)])
def test_windows_cover_the_image_within_bounds(hw: tuple[int, int]):
    h, w = hw
    covered = np.zeros(hw, dtype=np.int64)
    windows = crop_stride_windows(h, w)
    for top, left, wh, ww in windows:
        assert 0 <= top <= top + wh <= h and 0 <= left <= left + ww <= w
        assert (wh, ww) == (min(512, h), min(512, w))
        covered[top : top + wh, left : left + ww] += 1
    assert covered.min() >= 1
    # rows outer, columns inner
    assert windows == sorted(windows, key=lambda b: (b[0], b[1]))


def test_keep_ratio_size_examples():
    assert keep_ratio_size(375, 500) == (512, 683)
    assert keep_ratio_size(500, 375) == (683, 512)
    assert keep_ratio_size(100, 1000) == (205, 2048)  # the long-side bound binds
    assert keep_ratio_size(375, 500, (512, 2048)) == (512, 683)  # scale order does not matter (max / min)


def test_bad_arguments():
    with pytest.raises(ValueError, match="height and width"):
        keep_ratio_size(0, 10)
    with pytest.raises(ValueError, match="scale"):
        keep_ratio_size(10, 10, (0, 512))
    with pytest.raises(ValueError, match="crop and stride"):
        crop_stride_windows(10, 10, stride=(0, 341))
    with pytest.raises(ValueError, match="height and width"):
        crop_stride_windows(10, -1)
    with pytest.raises(ValueError, match="ratio"):
        ratio_scale(0.0)
    with pytest.raises(ValueError, match="u must be"):
        ratio_range_scale(1.5)
    with pytest.raises(ValueError, match="ratio_range"):
        ratio_range_scale(0.5, ratio_range=(2.0, 0.5))
