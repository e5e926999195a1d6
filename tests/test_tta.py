"""Test-time augmentation: the official two-window + flip scheme, generalised windows, chunked batching."""

from __future__ import annotations

import pytest
import torch

from vpd.inference.grids import square_grid, square_windows
from vpd.inference.tta import multi_scale_tta, predict_tta


def windowed(forward, images, per_image=None, *, windows=None, **kwargs):
    """Depth's TTA: the square-window grid of ``windows`` through the generic engine."""
    return predict_tta(forward, images, per_image, grid=square_grid(windows), **kwargs)



def _nonlinear_forward(images: torch.Tensor, class_ids: torch.Tensor | None) -> torch.Tensor:
    """Deterministic, per-sample, position-dependent (so flips matter) fake depth model."""
    gray = images.mean(dim=1, keepdim=True)
    ramp = torch.linspace(0.0, 1.0, images.shape[-1], dtype=images.dtype)
    depth = torch.sin(3.0 * torch.cumsum(gray, dim=-1) / images.shape[-1]) + 0.5 * ramp + gray.square()
    if class_ids is not None:
        depth = depth + class_ids.to(images.dtype).view(-1, 1, 1, 1)
    return depth


def _official_reference(forward, image: torch.Tensor, class_id: torch.Tensor) -> torch.Tensor:
    """The official VPD NYUv2 test for one 480x640 image, written out step by step: a batch of both windows, then
    their flips; flip pairs averaged; windows accumulated and divided by the coverage count."""
    _, _, h, w = image.shape
    interval = (w - h) // (2 - 1)
    crops = [image[..., :, i * interval : i * interval + h] for i in range(2)]
    mask = torch.zeros((1, 1, h, w))
    for i in range(2):
        mask[..., :, i * interval : i * interval + h] += 1
    batch = torch.cat(crops, dim=0)
    batch = torch.cat([batch, torch.flip(batch, [3])], dim=0)
    pred = forward(batch, class_id.repeat(4))
    pred = (pred[:2] + torch.flip(pred[2:], [3])) / 2.0
    total = torch.zeros((1, 1, h, w))
    for i in range(2):
        total[..., :, i * interval : i * interval + h] += pred[i : i + 1]
    return total / mask


def test_official_windows_480x640() -> None:
    assert square_windows(480, 640, 2) == [(0, 0, 480, 480), (0, 160, 480, 480)]


def test_portrait_and_square_windows() -> None:
    assert square_windows(640, 480, 2) == [(0, 0, 480, 480), (160, 0, 480, 480)]
    assert square_windows(64, 64, 3) == [(0, 0, 64, 64)]
    assert square_windows(480, 640, 1) == [(0, 0, 480, 640)]
    assert square_windows(100, 250, 3) == [(0, 0, 100, 100), (0, 75, 100, 100), (0, 150, 100, 100)]


def test_last_window_flush_with_the_edge_and_no_duplicates() -> None:
    # (251 - 100) // 2 = 75 leaves a remainder: the last window is pinned to the right edge, not at 150.
    assert [left for _, left, _, _ in square_windows(100, 251, 3)] == [0, 75, 151]
    # More windows than distinct offsets: each offset once.
    assert square_windows(10, 11, 3) == [(0, 0, 10, 10), (0, 1, 10, 10)]
    for height, width, n in [(7, 30, 4), (30, 7, 5), (480, 641, 3)]:
        covered = torch.zeros(height, width, dtype=torch.bool)
        for top, left, h, w in square_windows(height, width, n):
            assert h == w == min(height, width)
            covered[top : top + h, left : left + w] = True
        assert covered.all()


def test_sliding_windows_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="num_windows"):
        square_windows(4, 8, 0)
    with pytest.raises(ValueError, match="height and width"):
        square_windows(0, 8, 2)


def test_reproduces_official_two_window_flip_exactly() -> None:
    generator = torch.Generator().manual_seed(0)
    image = torch.rand((1, 3, 480, 640), generator=generator)
    class_id = torch.tensor([6])
    expected = _official_reference(_nonlinear_forward, image, class_id)
    for batch_size in (1, 3, 4):
        got = windowed(_nonlinear_forward, image, class_id, flip=True, windows=2, batch_size=batch_size)
        assert got.shape == (1, 1, 480, 640)
        assert torch.equal(got, expected)


def _ramp_forward(images: torch.Tensor, class_ids: torch.Tensor | None) -> torch.Tensor:
    """Depth = image mean + 0.01 * column index inside the crop: asymmetric, so an un-flipping error shows."""
    columns = torch.arange(images.shape[-1], dtype=torch.float64)
    return images.mean(dim=1, keepdim=True) + 0.01 * columns


def test_hand_computed_windows_without_flip() -> None:
    image = torch.rand((1, 3, 480, 640), dtype=torch.float64)
    got = windowed(_ramp_forward, image, None, windows=2)
    mean = image.mean(dim=1, keepdim=True)
    col = torch.arange(640, dtype=torch.float64)
    # Columns 0:160 only in window 0, 160:480 in both (average of both ramps), 480:640 only in window 1 (left 160).
    ramp = torch.where(col < 160, 0.01 * col, torch.where(col < 480, 0.01 * col - 0.8, 0.01 * (col - 160)))
    torch.testing.assert_close(got, mean + ramp, rtol=0, atol=1e-12)


def test_flip_is_unflipped_before_averaging() -> None:
    image = torch.rand((2, 3, 48, 80), dtype=torch.float64)
    # Un-flipped, the flipped crop contributes 0.01 * (w - 1 - j) at column j: the pair averages to the constant
    # 0.01 * (w - 1) / 2 whatever the window, so the ramp cancels exactly.
    got = windowed(_ramp_forward, image, None, flip=True, windows=3, batch_size=5)
    expected = image.mean(dim=1, keepdim=True) + 0.01 * 47 / 2
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    whole = windowed(_ramp_forward, image, None, flip=True)
    torch.testing.assert_close(whole, image.mean(dim=1, keepdim=True) + 0.01 * 79 / 2, rtol=0, atol=1e-12)


def test_portrait_windows_run_vertically() -> None:
    def row_ramp(images: torch.Tensor, class_ids: torch.Tensor | None) -> torch.Tensor:
        rows = torch.arange(images.shape[-2], dtype=torch.float64).view(-1, 1)
        return torch.zeros_like(images[:, :1]) + rows

    image = torch.zeros((1, 3, 60, 40), dtype=torch.float64)
    got = windowed(row_ramp, image, None, windows=2)[0, 0, :, 0]
    row = torch.arange(60, dtype=torch.float64)
    expected = torch.where(row < 20, row, torch.where(row < 40, row - 10, row - 20))  # windows at rows 0 and 20
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_chunked_batching_equals_unbatched_and_bounds_the_batch() -> None:
    images = torch.rand((3, 3, 40, 72))
    class_ids = torch.tensor([0, 5, 2])
    seen: list[int] = []

    def spy(batch: torch.Tensor, ids: torch.Tensor | None) -> torch.Tensor:
        seen.append(batch.shape[0])
        return _nonlinear_forward(batch, ids)

    reference = torch.cat(
        [
            windowed(_nonlinear_forward, images[i : i + 1], class_ids[i : i + 1], flip=True, windows=3)
            for i in range(3)
        ]
    )
    for batch_size in (1, 2, 7, 100):
        seen.clear()
        got = windowed(spy, images, class_ids, flip=True, windows=3, batch_size=batch_size)
        assert torch.equal(got, reference)
        assert max(seen) <= batch_size and sum(seen) == 3 * 3 * 2  # windows x images x flips


def test_whole_image_without_augmentation_is_the_forward() -> None:
    images = torch.rand((2, 3, 24, 40))
    torch.testing.assert_close(windowed(_nonlinear_forward, images, None), _nonlinear_forward(images, None))
    torch.testing.assert_close(
        windowed(_nonlinear_forward, images, None, windows=1), _nonlinear_forward(images, None)
    )


def test_low_precision_outputs_accumulate_in_float32() -> None:
    images = torch.rand((1, 3, 16, 24)).bfloat16()
    got = windowed(lambda x, c: x.mean(dim=1, keepdim=True), images, None, flip=True, windows=2)
    assert got.dtype == torch.float32


def test_rejects_bad_arguments() -> None:
    images = torch.rand((2, 3, 8, 8))
    with pytest.raises(ValueError, match="windows"):
        windowed(_nonlinear_forward, images, None, windows=0)
    with pytest.raises(ValueError, match="batch_size"):
        windowed(_nonlinear_forward, images, None, batch_size=0)
    with pytest.raises(ValueError, match="per-image values"):
        windowed(_nonlinear_forward, images, torch.tensor([1]))
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        windowed(_nonlinear_forward, images[0], None)
    with pytest.raises(ValueError, match="forward must return"):
        windowed(lambda x, c: x[..., :2], images, None)  # not the crop's size
    with pytest.raises(ValueError, match="uncovered"):
        predict_tta(_nonlinear_forward, images, grid=lambda h, w: [(0, 0, 4, 4)])


def test_c_channel_outputs_and_multi_scale_views() -> None:
    images = torch.rand((2, 3, 20, 30), dtype=torch.float64)

    def two_channels(x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        return torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)

    got = predict_tta(two_channels, images, grid=lambda h, w: [(0, 0, h, 20), (0, 10, h, 20)])
    torch.testing.assert_close(got, two_channels(images, None))  # a pointwise model: windows change nothing
    one = multi_scale_tta(lambda x: predict_tta(two_channels, x), images, [(20, 30)])
    torch.testing.assert_close(one, two_channels(images, None))  # one view at the input size: the prediction
    views = multi_scale_tta(lambda x: predict_tta(two_channels, x), images, [(20, 30), (40, 60)], flip=True)
    assert views.shape == (2, 2, 20, 30)
    # a flipped view is flipped back: a left-right asymmetric input keeps its orientation
    ramp = torch.linspace(0, 1, 30, dtype=torch.float64).expand(2, 3, 20, 30)
    flipped_only = multi_scale_tta(lambda x: predict_tta(two_channels, x), ramp, [(20, 30)], flip=True)
    torch.testing.assert_close(flipped_only, two_channels(ramp, None))
