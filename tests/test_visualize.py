"""Colour maps, colourisation of depth and error maps, and image panels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vpd.inference.visualize import (
    COLORMAPS,
    colorize,
    colorize_depth,
    colorize_error,
    get_colormap,
    make_panel,
)

SPECTRAL_ENDS = ((158, 1, 66), (94, 79, 162))  # ColorBrewer Spectral-11, first and last class


def test_luts_are_read_only_uint8_tables() -> None:
    assert set(COLORMAPS) == {"spectral", "turbo", "gray"}
    for lut in COLORMAPS.values():
        assert lut.shape == (256, 3) and lut.dtype == np.uint8
        with pytest.raises(ValueError):
            lut[0, 0] = 1


def test_spectral_hits_its_control_colours() -> None:
    lut = COLORMAPS["spectral"]
    assert tuple(lut[0]) == SPECTRAL_ENDS[0] and tuple(lut[255]) == SPECTRAL_ENDS[1]
    # Entries 51 * k sit exactly on control colours 2k (of 0..10): k / 5 = 2k / 10.
    assert tuple(lut[51]) == (244, 109, 67)
    assert tuple(lut[102]) == (254, 224, 139)
    assert tuple(lut[153]) == (230, 245, 152)
    assert tuple(lut[204]) == (102, 194, 165)
    # Between control colours the table is a linear blend: never outside the two neighbours.
    low, high = np.array([158, 1, 66]), np.array([213, 62, 79])
    for i in range(1, 25):
        assert np.all(lut[i] >= np.minimum(low, high)) and np.all(lut[i] <= np.maximum(low, high))


def test_turbo_runs_blue_green_red() -> None:
    lut = COLORMAPS["turbo"].astype(int)
    assert tuple(lut[0]) == (35, 23, 27)  # the polynomial at 0: (0.1357, 0.0914, 0.1067) * 255
    assert np.argmax(lut[40]) == 2  # blue
    assert np.argmax(lut[128]) == 1  # green
    assert np.argmax(lut[230]) == 0  # red
    assert lut[255, 0] > 100 and lut[255, 1] < 30  # dark red end
    # A smooth map: neighbouring entries differ by a few levels only.
    assert np.abs(np.diff(lut, axis=0)).max() <= 14


def test_gray_is_the_identity_ramp() -> None:
    np.testing.assert_array_equal(COLORMAPS["gray"], np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1))


def test_colorize_endpoints_and_monotonicity() -> None:
    values = np.linspace(-1.0, 3.0, 400).reshape(20, 20)
    out = colorize(values, vmin=0.0, vmax=2.0, cmap="gray")
    assert out.shape == (20, 20, 3) and out.dtype == np.uint8
    flat = out[..., 0].reshape(-1)
    assert np.all(np.diff(flat.astype(int)) >= 0)  # higher value, brighter gray
    assert flat[values.reshape(-1) <= 0].max() == 0  # clipped below vmin
    assert flat[values.reshape(-1) >= 2].min() == 255  # clipped above vmax
    spectral = colorize(values, vmin=0.0, vmax=2.0)
    assert tuple(spectral[0, 0]) == SPECTRAL_ENDS[0] and tuple(spectral[-1, -1]) == SPECTRAL_ENDS[1]


def test_colorize_default_range_ignores_outliers() -> None:
    values = np.arange(100, dtype=np.float64).reshape(10, 10)
    values[0, 0] = 1e6  # one outlier must not squash the other 99 values into one colour
    out = colorize(values, cmap="gray")
    low, high = np.percentile(values, [2, 98])
    expected = np.rint(np.clip((values - low) / (high - low), 0, 1) * 255)
    np.testing.assert_array_equal(out[..., 0], expected.astype(np.uint8))
    assert len(np.unique(out[..., 0])) > 90


def test_colorize_invalid_pixels_are_black() -> None:
    values = np.linspace(1.0, 2.0, 36).reshape(6, 6)
    values[0, 0], values[0, 1], values[0, 2] = np.nan, np.inf, -np.inf
    mask = np.zeros((6, 6), dtype=bool)
    mask[5, 5] = True
    out = colorize(values, vmin=1.0, vmax=2.0, cmap="gray", invalid_mask=mask)
    assert np.all(out[0, :3] == 0) and np.all(out[5, 5] == 0)
    assert out[4, 4, 0] > 0
    # NaNs must not poison the default range either.
    assert colorize(values, cmap="gray")[4, 5, 0] > 0
    assert not colorize(np.full((3, 3), np.nan)).any()  # nothing valid: all black, no warning-driven crash


def test_colorize_accepts_torch_and_channel_first_maps() -> None:
    values = torch.linspace(0, 1, 12).reshape(1, 3, 4)
    np.testing.assert_array_equal(
        colorize(values, 0.0, 1.0, cmap="turbo"), colorize(values[0].numpy(), 0.0, 1.0, cmap="turbo")
    )


def test_colorize_constant_map_and_custom_lut() -> None:
    assert np.all(colorize(np.full((2, 2), 3.0), cmap="gray") == 0)
    lut = np.array([[0, 0, 0], [255, 0, 0]], dtype=np.uint8)
    out = colorize(np.array([[0.0, 0.4], [0.6, 1.0]]), 0.0, 1.0, cmap=lut)
    np.testing.assert_array_equal(out[..., 0], [[0, 0], [255, 255]])


def test_colorize_errors() -> None:
    with pytest.raises(ValueError, match="spectral, turbo, gray"):
        get_colormap("viridis")
    with pytest.raises(ValueError, match="vmin"):
        colorize(np.zeros((2, 2)), vmin=2.0, vmax=1.0)
    with pytest.raises(ValueError, match=r"\[H, W\]"):
        colorize(np.zeros((2, 2, 3)))
    with pytest.raises(ValueError, match="invalid_mask"):
        colorize(np.zeros((2, 2)), invalid_mask=np.zeros((3, 3), dtype=bool))


def test_colorize_depth_near_is_red_and_zero_is_invalid() -> None:
    depth = np.tile(np.linspace(0.5, 8.0, 32), (8, 1)).astype(np.float32)
    depth[:, 0] = 0.0
    out = colorize_depth(depth).astype(int)
    assert np.all(out[:, 0] == 0)
    near, far = out[0, 1], out[0, -1]
    assert near[0] > near[2] and far[2] > far[0]  # near: red, far: blue/violet
    fixed = colorize_depth(depth, vmin=0.0, vmax=10.0)
    assert tuple(fixed[0, -1]) != SPECTRAL_ENDS[1]  # 8 m is not the end of a 0..10 m scale


def test_colorize_error_uses_a_fixed_scale_from_zero() -> None:
    errors = np.array([[0.0, 0.125], [0.25, 0.9]])
    out = colorize_error(errors)
    lut = COLORMAPS["turbo"]
    assert tuple(out[0, 0]) == tuple(lut[0])
    assert tuple(out[0, 1]) == tuple(lut[128])
    assert tuple(out[1, 0]) == tuple(out[1, 1]) == tuple(lut[255])
    with pytest.raises(ValueError, match="vmax"):
        colorize_error(errors, vmax=0.0)


def test_make_panel_layout_and_titles() -> None:
    red = np.zeros((20, 30, 3), dtype=np.uint8)
    red[..., 0] = 255
    gray = np.full((10, 12), 128, dtype=np.uint8)
    rgba = np.full((16, 16, 4), 200, dtype=np.uint8)
    plain = make_panel([red, gray, rgba], columns=2, gap=2)
    assert plain.shape == (20 + 2 + 20, 30 + 2 + 30, 3)
    np.testing.assert_array_equal(plain[:20, :30], red)
    assert np.all(plain[:, 30:32] == 0)  # the gap
    # Smaller images are centred in their cell.
    assert np.all(plain[5:15, 32 + 9 : 32 + 21] == 128) and np.all(plain[4, 32 + 9 : 32 + 21] == 0)

    titled = make_panel([red, gray, rgba], titles=["depth", "error", "a very long title that cannot fit"], columns=2)
    bar = (titled.shape[0] - 2) // 2 - 20
    assert bar > 5
    assert titled.shape == (2 * (bar + 20) + 2, 62, 3)
    assert titled[:bar, :30].max() > 200 and titled[0, 0, 0] == 40  # light (anti-aliased) text on the dark bar
    np.testing.assert_array_equal(titled[bar : bar + 20, :30], red)
    assert make_panel([red, red]).shape == (20, 62, 3)  # default: one row


def test_make_panel_errors() -> None:
    image = np.zeros((4, 4, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="empty"):
        make_panel([])
    with pytest.raises(ValueError, match="uint8"):
        make_panel([image.astype(np.float32)])
    with pytest.raises(ValueError, match="titles"):
        make_panel([image], titles=["a", "b"])
    with pytest.raises(ValueError, match="columns"):
        make_panel([image], columns=0)
