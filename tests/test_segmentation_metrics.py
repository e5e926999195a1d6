"""Segmentation metrics: parity with mmseg 0.30 ``eval_metrics`` (metrics_*.npz/json), NaN rules, merging, inputs."""

from __future__ import annotations

import json
import math
import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from reference import REFERENCE
from vpd.metrics.segmentation import (
    CLASS_SCORES,
    SUMMARY_NAMES,
    SegmentationMetricAccumulator,
    reduce_zero_label,
)

FOLDER = REFERENCE / "vpd_seg_head"
NUM_CLASSES = 150
N_IMAGES = 5


def _inputs() -> list[tuple[np.ndarray, np.ndarray]]:
    """``(pred int64, raw uint8 ADE label)`` per image."""
    data = np.load(FOLDER / "metrics_input.npz")
    return [(data[f"pred_{i}"], data[f"label_{i}"]) for i in range(N_IMAGES)]


def _expected() -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    npz = np.load(FOLDER / "metrics_expected.npz")
    return {k: npz[k] for k in npz.files}, json.loads((FOLDER / "metrics_expected.json").read_text())


def _class_names() -> list[str]:
    return _expected()[1]["class_names"]


def _accumulate(indices: range | list[int]) -> SegmentationMetricAccumulator:
    acc = SegmentationMetricAccumulator(NUM_CLASSES, class_names=_class_names())
    inputs = _inputs()
    for i in indices:
        pred, label = inputs[i]
        acc.update(pred, reduce_zero_label(label), names=[f"img{i}"])
    return acc


def _assert_same_float64(ours: np.ndarray, ref: np.ndarray, what: str) -> float:
    """rtol 1e-12 with identical NaN positions; returns the max abs difference over the non-NaN entries."""
    assert ours.dtype == np.float64 and ours.shape == ref.shape, what
    assert np.array_equal(np.isnan(ours), np.isnan(ref)), f"{what}: NaN positions differ"
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=0, equal_nan=True, err_msg=what)
    finite = ~np.isnan(ref)
    return float(np.abs(ours[finite] - ref[finite]).max()) if finite.any() else 0.0


# --- parity with the official eval_metrics ------------------------------------------------------------------------


def test_areas_exact():
    expected, meta = _expected()
    acc = _accumulate(range(N_IMAGES))
    for key in ("intersect", "union", "pred_label", "label"):
        ours = getattr(acc, f"area_{key}")
        assert ours.dtype == np.float64
        assert np.array_equal(ours, expected[f"area_{key}"]), key
    assert acc.area_label.sum() == meta["n_valid_pixels"] == 10819
    assert acc.count == N_IMAGES


def test_class_scores_match_eval_metrics():
    expected, _ = _expected()
    scores = _accumulate(range(N_IMAGES)).class_scores()
    assert tuple(scores) == CLASS_SCORES
    max_diff = max(_assert_same_float64(scores[k], expected[f"eval_metrics_{k}"], k) for k in CLASS_SCORES)
    assert max_diff <= 1e-15  # bit-identical in practice (0.0)


def test_means_match_eval_metrics_unrounded():
    expected, meta = _expected()
    got = _accumulate(range(N_IMAGES)).compute()
    assert tuple(got) == SUMMARY_NAMES
    ref = meta["eval_metrics"]
    assert got["aAcc"] == pytest.approx(float(expected["eval_metrics_aAcc"]), rel=1e-12, abs=0)
    assert got["aAcc"] == pytest.approx(ref["aAcc"], rel=1e-12, abs=0)
    for name in SUMMARY_NAMES[1:]:
        assert got[name] == pytest.approx(ref[f"{name}_nanmean"], rel=1e-12, abs=0), name
    assert got["mIoU"] == pytest.approx(0.3293243621722509, rel=1e-12)


def test_means_match_dataset_evaluate_after_rounding():
    _, meta = _expected()
    got = _accumulate(range(N_IMAGES)).compute()
    # mmseg's dataset.evaluate logs round(100 * x, 2) / 100
    for name, value in meta["dataset_evaluate_all_summary"].items():
        assert round(100 * got[name], 2) / 100 == value, name
    for name, value in meta["dataset_evaluate_mIoU"].items():
        assert round(100 * got[name], 2) / 100 == value, name


def test_close_to_pre_eval_float32_route():
    # VPD's test.py route sums float32 histograms and divides in float32: ~1e-8 away from the float64 route
    expected, meta = _expected()
    acc = _accumulate(range(N_IMAGES))
    scores = acc.class_scores()
    for key in ("IoU", "Acc"):
        ref = expected[f"pre_eval_{key}"].astype(np.float64)
        assert np.array_equal(np.isnan(scores[key]), np.isnan(ref)), key
        np.testing.assert_allclose(scores[key], ref, rtol=0, atol=1e-7, equal_nan=True, err_msg=key)
    got = acc.compute()
    assert got["aAcc"] == pytest.approx(float(expected["pre_eval_aAcc"]), abs=1e-7)
    assert got["mIoU"] == pytest.approx(meta["pre_eval_to_metrics"]["mIoU_nanmean"], abs=1e-7)
    assert got["mAcc"] == pytest.approx(meta["pre_eval_to_metrics"]["mAcc_nanmean"], abs=1e-7)


def test_nan_rules_on_the_fixture_class_sets():
    _, meta = _expected()
    sets = meta["class_sets"]
    scores = _accumulate(range(N_IMAGES)).class_scores()
    iou, acc_ = scores["IoU"], scores["Acc"]

    def span(key: str) -> np.ndarray:
        lo, hi = sets[key]
        return np.arange(lo, hi + 1)

    both, pred_only, label_only, absent = (
        span(k) for k in ("present_in_both", "prediction_only", "label_only", "absent")
    )
    assert np.isfinite(iou[both]).all() and np.isfinite(acc_[both]).all()
    assert (iou[pred_only] == 0).all() and np.isnan(acc_[pred_only]).all()  # counts 0 in mIoU, skipped in mAcc
    assert (iou[label_only] == 0).all() and (acc_[label_only] == 0).all()
    ignored_only = sets["predicted_only_on_ignored_pixels"]
    for k in [*absent, ignored_only]:
        assert math.isnan(iou[k]) and math.isnan(acc_[k]), k
    # the mean skips exactly the NaN classes: 120 defined IoUs (0..119), 110 defined Accs (0..99, 110..119)
    assert np.isfinite(iou).sum() == 120 and np.isfinite(acc_).sum() == 110


def test_per_class_rows():
    expected, meta = _expected()
    acc = _accumulate(range(N_IMAGES))
    rows = acc.per_class()
    assert [row["class"] for row in rows] == meta["class_names"]
    assert rows[7]["class"] == "bed "  # mmseg's ADE name, trailing space included
    for k, row in enumerate(rows):
        for key in ("IoU", "Acc"):
            ref = expected[f"eval_metrics_{key}"][k]
            assert (math.isnan(row[key]) and math.isnan(ref)) or row[key] == ref, (k, key)
        assert row["intersection"] == expected["area_intersect"][k]
        assert row["union"] == expected["area_union"][k]
        assert row["pred_area"] == expected["area_pred_label"][k]
        assert row["label_area"] == expected["area_label"][k]
        assert isinstance(row["intersection"], int)
        # the logged per-class table is the float32 route rounded to 4 digits
        logged = meta["dataset_evaluate_mIoU_per_class"]["IoU"][k]
        assert (logged is None) == math.isnan(row["IoU"])
        if logged is not None:
            assert round(100 * row["IoU"], 2) / 100 == pytest.approx(logged, abs=1e-6)


# --- inputs -------------------------------------------------------------------------------------------------------


def test_fixture_labels_are_raw_ade():
    _, meta = _expected()
    labels = [label for _, label in _inputs()]
    assert all(label.dtype == np.uint8 for label in labels)
    # mmseg's eval_metrics rewrote exactly these pixels (raw 0) in the caller's arrays
    assert sum(int((label == 0).sum()) for label in labels) == meta["input_arrays_mutated_in_place_by_eval_metrics"]
    assert [list(label.shape) for label in labels] == meta["image_sizes_hw"]


def test_inputs_not_mutated():
    inputs = _inputs()
    raw = [(pred.copy(), label.copy()) for pred, label in inputs]
    acc = SegmentationMetricAccumulator(NUM_CLASSES)
    for pred, label in inputs:
        reduced = reduce_zero_label(label)
        before = reduced.copy()
        acc.update(pred, reduced)
        assert np.array_equal(reduced, before)
    for (pred, label), (pred0, label0) in zip(inputs, raw):
        assert np.array_equal(pred, pred0) and np.array_equal(label, label0)
    # torch inputs too
    pred_t, label_t = torch.from_numpy(raw[3][0].copy()), torch.from_numpy(raw[3][1].copy())
    reduced_t = reduce_zero_label(label_t)
    assert isinstance(reduced_t, torch.Tensor)
    snapshot = (pred_t.clone(), label_t.clone(), reduced_t.clone())
    acc.update(pred_t, reduced_t)
    assert torch.equal(pred_t, snapshot[0]) and torch.equal(label_t, snapshot[1])
    assert torch.equal(reduced_t, snapshot[2])


@pytest.mark.parametrize("dtype", [np.uint8, np.int64, np.int32])
def test_reduce_zero_label_numpy(dtype: type):
    raw: np.ndarray = np.array([[0, 1, 2], [150, 254, 255]], dtype=dtype)
    out = reduce_zero_label(raw)
    assert isinstance(out, np.ndarray) and out.dtype == raw.dtype and out is not raw
    assert out.tolist() == [[255, 0, 1], [149, 253, 255]]
    assert raw.tolist() == [[0, 1, 2], [150, 254, 255]]


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int64])
def test_reduce_zero_label_torch(dtype: torch.dtype):
    raw = torch.tensor([[0, 1, 2], [150, 254, 255]], dtype=dtype)
    out = reduce_zero_label(raw)
    assert isinstance(out, torch.Tensor) and out.dtype == dtype
    assert out.tolist() == [[255, 0, 1], [149, 253, 255]]
    assert raw.tolist() == [[0, 1, 2], [150, 254, 255]]


def test_torch_numpy_and_batched_inputs_agree():
    (p3, l3), (p0, l0) = _inputs()[3], _inputs()[0]
    l3r = reduce_zero_label(l3)
    assert isinstance(l3r, np.ndarray)
    one_by_one = SegmentationMetricAccumulator(NUM_CLASSES)
    one_by_one.update(p3, l3r)
    one_by_one.update(np.flipud(p3), np.flipud(l3r))  # a non-contiguous view
    batched = SegmentationMetricAccumulator(NUM_CLASSES)
    batched.update(
        torch.from_numpy(np.stack([p3, p3[::-1]]))[:, None], torch.from_numpy(np.stack([l3r, l3r[::-1]]))[:, None]
    )
    mixed = SegmentationMetricAccumulator(NUM_CLASSES)
    mixed.update(torch.from_numpy(np.stack([p3, p3[::-1]])), np.stack([l3r, l3r[::-1]]))  # torch pred, numpy label
    for acc in (batched, mixed):
        assert acc.count == 2
        for key in ("intersect", "union", "pred_label", "label"):
            assert np.array_equal(getattr(acc, f"area_{key}"), getattr(one_by_one, f"area_{key}"))
        assert acc.rows == one_by_one.rows
    # read-only numpy (as from np.load(mmap_mode="r")) is fine
    ro_pred, ro_label = p0.copy(), reduce_zero_label(l0)
    assert isinstance(ro_label, np.ndarray)
    ro_pred.flags.writeable = False
    ro_label.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SegmentationMetricAccumulator(NUM_CLASSES).update(ro_pred, ro_label)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_inputs_match_cpu():
    acc_cpu, acc_gpu = _accumulate(range(N_IMAGES)), SegmentationMetricAccumulator(NUM_CLASSES)
    for pred, label in _inputs():
        reduced = reduce_zero_label(torch.from_numpy(label)).cuda()
        acc_gpu.update(torch.from_numpy(pred).cuda(), reduced)
    for key in ("intersect", "union", "pred_label", "label"):
        assert np.array_equal(getattr(acc_gpu, f"area_{key}"), getattr(acc_cpu, f"area_{key}"))
    assert acc_gpu.compute() == acc_cpu.compute()


# --- hand-made example, NaN rules, rows ----------------------------------------------------------------------------


def test_tiny_hand_example():
    # 5 classes, 6 pixels (pred, label): (0,0) (1,0) (1,1) / (3,1) (4,ignored) (0,2)
    # class 0: P=2 L=2 I=1 U=3 | class 1: P=2 L=2 I=1 U=3 | class 2: label only (P=0 L=1) | class 3: pred only
    # (P=1 L=0) | class 4: predicted only on the ignored pixel -> absent everywhere
    pred = torch.tensor([[0, 1, 1], [3, 4, 0]])
    label = torch.tensor([[0, 0, 1], [1, 255, 2]], dtype=torch.uint8)
    acc = SegmentationMetricAccumulator(5, class_names=list("abcde"))
    acc.update(pred, label, names=["only"])
    assert acc.area_intersect.tolist() == [1, 1, 0, 0, 0]
    assert acc.area_pred_label.tolist() == [2, 2, 0, 1, 0]
    assert acc.area_label.tolist() == [2, 2, 1, 0, 0]
    assert acc.area_union.tolist() == [3, 3, 1, 1, 0]
    nan = math.nan
    scores = {k: v.tolist() for k, v in acc.class_scores().items()}
    expected = {
        "IoU": [1 / 3, 1 / 3, 0.0, 0.0, nan],
        "Acc": [0.5, 0.5, 0.0, nan, nan],
        "Dice": [0.5, 0.5, 0.0, 0.0, nan],
        "Precision": [0.5, 0.5, nan, 0.0, nan],
        "Recall": [0.5, 0.5, 0.0, nan, nan],
        "Fscore": [0.5, 0.5, nan, nan, nan],  # 0/0 where precision or recall is 0 or NaN
    }
    for key, values in expected.items():
        np.testing.assert_allclose(scores[key], values, rtol=1e-15, equal_nan=True, err_msg=key)
    got = acc.compute()
    assert got == pytest.approx(
        {
            "aAcc": 2 / 5,
            "mIoU": (1 / 3 + 1 / 3 + 0 + 0) / 4,  # class 3 (prediction only) counts as 0, class 4 is skipped
            "mAcc": (0.5 + 0.5 + 0) / 3,
            "mDice": (0.5 + 0.5) / 4,
            "mFscore": 0.5,
            "mPrecision": (0.5 + 0.5 + 0) / 3,
            "mRecall": (0.5 + 0.5 + 0) / 3,
        },
        rel=1e-15,
    )
    assert acc.rows == [{"name": "only", "pixel_acc": 2 / 5, "mIoU": pytest.approx(1 / 6), "n_pixels": 5}]
    assert [row["class"] for row in acc.per_class()] == list("abcde")
    assert acc.per_class()[3] == {
        "class": "d",
        "IoU": 0.0,
        "Acc": pytest.approx(nan, nan_ok=True),
        "Dice": 0.0,
        "Fscore": pytest.approx(nan, nan_ok=True),
        "Precision": 0.0,
        "Recall": pytest.approx(nan, nan_ok=True),
        "intersection": 0,
        "union": 1,
        "pred_area": 1,
        "label_area": 0,
    }


def test_empty_accumulator_and_all_ignored_image():
    acc = SegmentationMetricAccumulator(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert all(math.isnan(v) for v in acc.compute().values())
        acc.update(np.zeros((2, 4, 4), dtype=np.int64), np.full((2, 4, 4), 255, dtype=np.uint8), names=["a", "b"])
        assert all(math.isnan(v) for v in acc.compute().values())
    assert acc.count == 2
    assert [row["name"] for row in acc.rows] == ["a", "b"]
    assert all(row["n_pixels"] == 0 and math.isnan(row["pixel_acc"]) and math.isnan(row["mIoU"]) for row in acc.rows)
    # default names number images in arrival order
    acc.update(np.zeros((4, 4), dtype=np.int64), np.zeros((4, 4), dtype=np.int64))
    assert acc.rows[-1]["name"] == "2" and acc.rows[-1]["pixel_acc"] == 1.0 and acc.rows[-1]["mIoU"] == 1.0


def test_predictions_on_ignored_pixels_are_not_checked():
    # mmseg drops them before its histograms; a garbage id there must not matter
    acc = SegmentationMetricAccumulator(3)
    acc.update(np.array([[1, 99]]), np.array([[1, 255]]))
    assert acc.area_pred_label.tolist() == [0, 1, 0]


@pytest.mark.parametrize(
    ("pred", "label", "match"),
    [
        (np.zeros((2, 3), dtype=np.int64), np.zeros((3, 2), dtype=np.int64), r"pred shape \(2, 3\).*label shape"),
        (np.zeros(4, dtype=np.int64), np.zeros(4, dtype=np.int64), r"\[\.\.\., H, W\]"),
        (np.zeros((2, 2), dtype=np.float32), np.zeros((2, 2), dtype=np.int64), "pred must be integer"),
        (torch.zeros(2, 2), torch.zeros(2, 2, dtype=torch.long), "pred must be integer"),
        (np.zeros((2, 2), dtype=np.int64), np.zeros((2, 2), dtype=np.float64), "label must be integer"),
        (np.zeros((1, 2), dtype=np.int64), np.array([[0, 150]], dtype=np.uint8), "1 labels and 0 predictions"),
        (np.array([[0, -1]]), np.array([[0, 1]]), "0 labels and 1 predictions"),
        (np.array([[0, 150]]), np.array([[0, 1]]), "0 labels and 1 predictions"),
    ],
)
def test_bad_inputs(pred: Any, label: Any, match: str):
    acc = SegmentationMetricAccumulator(NUM_CLASSES)
    with pytest.raises(ValueError, match=match):
        acc.update(pred, label)
    assert acc.count == 0 and acc.area_label.sum() == 0  # nothing half-added


def test_bad_construction_and_names():
    with pytest.raises(ValueError, match="num_classes"):
        SegmentationMetricAccumulator(0)
    with pytest.raises(ValueError, match="ignore_index 3 is a valid class id"):
        SegmentationMetricAccumulator(5, ignore_index=3)
    with pytest.raises(ValueError, match="2 class names for 3 classes"):
        SegmentationMetricAccumulator(3, class_names=["a", "b"])
    acc = SegmentationMetricAccumulator(3)
    with pytest.raises(ValueError, match="1 names for a batch of 2"):
        acc.update(np.zeros((2, 2, 2), dtype=np.int64), np.zeros((2, 2, 2), dtype=np.int64), names=["x"])
    with pytest.raises(ValueError, match="4 classes vs 3"):
        acc.merge(SegmentationMetricAccumulator(4))


# --- merging and distributed gather -------------------------------------------------------------------------------


def test_state_merge_equals_one_pass():
    whole = _accumulate(range(N_IMAGES))
    first, second = _accumulate([0, 1]), _accumulate([2, 3, 4])
    merged = SegmentationMetricAccumulator(NUM_CLASSES, class_names=_class_names())
    merged.merge(pickle.loads(pickle.dumps(first.state())))  # a state crosses processes pickled
    merged.merge(second)
    assert merged.count == whole.count == N_IMAGES
    for key in ("intersect", "union", "pred_label", "label"):
        assert np.array_equal(getattr(merged, f"area_{key}"), getattr(whole, f"area_{key}"))
    assert merged.compute() == whole.compute()
    assert [row["name"] for row in merged.rows] == [f"img{i}" for i in range(N_IMAGES)]
    assert merged.rows == whole.rows
    merged.gather()  # no process group: a no-op
    assert merged.compute() == whole.compute() and merged.count == N_IMAGES
    # reset forgets everything
    merged.reset()
    assert merged.count == 0 and merged.rows == [] and merged.area_label.sum() == 0


def _gather_worker(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        acc = _accumulate([0, 1] if rank == 0 else [2, 3, 4])
        acc.gather()
        Path(out_dir, f"rank{rank}.pkl").write_bytes(pickle.dumps(acc.state()))
    finally:
        dist.destroy_process_group()


def test_gather_across_two_processes(tmp_path: Path):
    import torch.multiprocessing as mp

    mp.spawn(_gather_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    whole = _accumulate(range(N_IMAGES)).state()
    for rank in range(2):
        state = pickle.loads((tmp_path / f"rank{rank}.pkl").read_bytes())
        assert state == whole, rank  # every rank holds the sums of both and the rows in rank order
