"""Segmentation datasets on tiny fixture trees: ADE20K in the ADEChallengeData2016 layout and SegmentationFolder."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from vpd.data.ade20k import ADE20K, SegmentationFolder, read_classes, read_label_png, reduce_zero_label
from vpd.data.base import IGNORE_INDEX
from vpd.data.classes import ADE20K_CLASSES
from vpd.data.seg_transforms import seg_train_transform

H, W = 20, 28


def _write_pair(image_path: str, label_path: str, labels: np.ndarray, seed: int = 0) -> np.ndarray:
    os.makedirs(os.path.dirname(image_path), exist_ok=True)
    os.makedirs(os.path.dirname(label_path), exist_ok=True)
    image = np.random.default_rng(seed).integers(0, 256, size=(*labels.shape, 3), dtype=np.uint8)
    Image.fromarray(image).save(image_path, quality=95)
    Image.fromarray(labels.astype(np.uint8)).save(label_path)
    return image


def _labels(seed: int, height: int = H, width: int = W) -> np.ndarray:
    labels = np.random.default_rng(seed).integers(0, 151, size=(height, width)).astype(np.uint8)
    labels[0, :4] = [0, 1, 150, 75]  # "other", the first and the last class, one in between
    return labels


@pytest.fixture
def ade_root(tmp_path):
    """``ADEChallengeData2016/{images,annotations}/{training,validation}``, 3 + 2 pairs, annotation values 0..150."""
    root = tmp_path / "ADEChallengeData2016"
    stored = {}
    for split, prefix, count in (("training", "ADE_train", 3), ("validation", "ADE_val", 2)):
        for i in range(count, 0, -1):  # written out of order: the dataset sorts
            stem = f"{prefix}_{i:08d}"
            labels = _labels(i)
            _write_pair(
                str(root / "images" / split / f"{stem}.jpg"),
                str(root / "annotations" / split / f"{stem}.png"),
                labels,
                seed=i,
            )
            stored[stem] = labels
    return root, stored


def test_ade20k_layout_names_and_reduce_zero_label(ade_root):
    root, stored = ade_root
    train, val = ADE20K(root), ADE20K(str(root), split="validation")
    assert len(train) == 3 and len(val) == 2
    assert train.class_names == ADE20K_CLASSES and len(train.class_names) == 150
    assert [train.load(i).name for i in range(3)] == ["ADE_train_00000001", "ADE_train_00000002", "ADE_train_00000003"]
    sample = val.load(1)
    assert sample.name == "ADE_val_00000002"
    assert sample.image.shape == (H, W, 3) and sample.image.dtype == np.uint8
    labels = sample.targets["semantic"]
    assert labels.dtype == np.uint8 and labels.shape == (H, W)
    raw = stored["ADE_val_00000002"]
    np.testing.assert_array_equal(labels[raw == 0], IGNORE_INDEX)
    np.testing.assert_array_equal(labels[raw > 0], raw[raw > 0] - 1)
    assert labels[0, :4].tolist() == [255, 0, 149, 74]
    with pytest.raises(ValueError, match="151st label"):  # 'other' kept as a label no class names
        ADE20K(root, split="validation", reduce_zero_label=False)


def test_reduce_zero_label_keeps_255():
    values = np.array([0, 1, 2, 150, 254, 255], np.uint8)
    assert reduce_zero_label(values).tolist() == [255, 0, 1, 149, 253, 255]


def test_ade20k_getitem_with_train_transform(ade_root):
    root, _ = ade_root
    dataset = ADE20K(root, transform=seg_train_transform(crop_size=(16, 16), img_scale=(64, 16)), seed=3)
    item = dataset[4]  # epoch 1, sample 1
    assert item["image"].shape == (3, 16, 16) and item["semantic"].shape == (16, 16)
    assert item["semantic"].dtype == torch.int64
    assert ((item["semantic"] < 150) | (item["semantic"] == 255)).all()
    again = ADE20K(root, transform=seg_train_transform(crop_size=(16, 16), img_scale=(64, 16)), seed=3)[4]
    assert torch.equal(item["image"], again["image"]) and torch.equal(item["semantic"], again["semantic"])


def test_ade20k_missing_annotations_one_error(ade_root):
    root, _ = ade_root
    for i in (1, 3):
        os.remove(root / "annotations" / "training" / f"ADE_train_{i:08d}.png")
    with pytest.raises(FileNotFoundError) as err:
        ADE20K(root)
    message = str(err.value)
    assert "\n" not in message and "2 of 3" in message and "ADE_train_00000001.png" in message


def test_ade20k_bad_split_and_missing_folders(tmp_path, ade_root):
    root, _ = ade_root
    with pytest.raises(ValueError, match="'training' or 'validation'"):
        ADE20K(root, split="train")
    with pytest.raises(FileNotFoundError, match="images/training"):
        ADE20K(tmp_path / "nowhere")
    os.makedirs(tmp_path / "empty" / "images" / "validation")
    with pytest.raises(FileNotFoundError, match=r"no \.jpg images"):
        ADE20K(tmp_path / "empty", split="validation")


def test_ade20k_size_mismatch_names_both_files(ade_root):
    root, _ = ade_root
    label_path = root / "annotations" / "training" / "ADE_train_00000002.png"
    Image.fromarray(np.ones((H + 1, W), np.uint8)).save(label_path)
    dataset = ADE20K(root)
    with pytest.raises(ValueError) as err:
        dataset.load(1)
    message = str(err.value)
    assert "\n" not in message and str(label_path) in message and "ADE_train_00000002.jpg" in message
    assert f"{H + 1}x{W}" in message and f"{H}x{W}" in message


def test_ade20k_rgb_label_png_fails_in_one_line(ade_root):
    root, _ = ade_root
    label_path = root / "annotations" / "validation" / "ADE_val_00000001.png"
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(label_path)
    with pytest.raises(ValueError) as err:
        ADE20K(root, split="validation").load(0)
    message = str(err.value)
    assert "\n" not in message and str(label_path) in message and "mode RGB" in message


def test_ade20k_values_above_150_fail(ade_root):
    root, _ = ade_root
    label_path = root / "annotations" / "validation" / "ADE_val_00000001.png"
    labels = _labels(1)
    labels[2, 2] = 200
    Image.fromarray(labels).save(label_path)
    with pytest.raises(ValueError, match=r"label values 199 after reduce_zero_label .* 150 classes"):
        ADE20K(root, split="validation").load(0)


def test_read_label_png_modes(tmp_path):
    labels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    palette = Image.new("P", (4, 3))
    palette.putdata(labels.ravel().tolist())
    palette.putpalette([v for i in range(256) for v in (i, 255 - i, 7)])
    palette.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_label_png(tmp_path / "p.png"), labels)  # indices, not colours
    Image.fromarray(labels.astype(np.uint16)).save(tmp_path / "i16.png")
    np.testing.assert_array_equal(read_label_png(tmp_path / "i16.png"), labels)
    Image.fromarray(labels.astype(np.uint16) + 300).save(tmp_path / "big.png")
    with pytest.raises(ValueError, match="do not fit"):
        read_label_png(tmp_path / "big.png")
    with pytest.raises(FileNotFoundError):
        read_label_png(tmp_path / "absent.png")


# ------------------------------------------------------------------------------------------- SegmentationFolder


@pytest.fixture
def folder_tree(tmp_path):
    """images/{a.jpg, sub/b.png}, labels/{a.png, sub/b.png} with ids 0..3 and some 255, classes.txt (4 names)."""
    stored = {}
    for stem, ext in (("a", ".jpg"), ("sub/b", ".png")):
        labels = np.random.default_rng(len(stem)).integers(0, 4, size=(H, W)).astype(np.uint8)
        labels[:2] = IGNORE_INDEX
        _write_pair(str(tmp_path / "images" / f"{stem}{ext}"), str(tmp_path / "labels" / f"{stem}.png"), labels)
        stored[stem] = labels
    (tmp_path / "classes.txt").write_text("road\nbed \ncar\nsky\n\n", encoding="utf-8")
    return tmp_path, stored


def test_segmentation_folder_pairs_and_classes(folder_tree):
    root, stored = folder_tree
    dataset = SegmentationFolder(root / "images", root / "labels", root / "classes.txt")
    assert dataset.class_names == ("road", "bed ", "car", "sky")  # names kept verbatim, trailing blank line dropped
    assert len(dataset) == 2
    for i in range(2):
        sample = dataset.load(i)
        np.testing.assert_array_equal(sample.targets["semantic"], stored[sample.name])
    assert sorted(dataset.load(i).name for i in range(2)) == ["a", "sub/b"]
    by_names = SegmentationFolder(str(root / "images"), str(root / "labels"), ["road", "bed ", "car", "sky"])
    assert by_names.class_names == dataset.class_names
    item = dataset[0]
    assert item["semantic"].shape == (H, W) and item["semantic"].dtype == torch.int64


def test_segmentation_folder_label_out_of_range(folder_tree):
    root, _ = folder_tree
    dataset = SegmentationFolder(root / "images", root / "labels", ["road", "bed ", "car"])  # 3 classes, labels 0..3
    with pytest.raises(ValueError) as err:
        dataset.load(0)
    message = str(err.value)
    assert "\n" not in message and "label values 3" in message and "3 classes" in message and "255 = ignore" in message
    assert dataset.label_paths[0] in message


def test_segmentation_folder_reduce_zero_label(folder_tree):
    root, stored = folder_tree
    dataset = SegmentationFolder(root / "images", root / "labels", root / "classes.txt", reduce_zero_label=True)
    sample = dataset.load(0)
    raw = stored[sample.name]
    np.testing.assert_array_equal(sample.targets["semantic"], reduce_zero_label(raw))


def test_segmentation_folder_errors(folder_tree, tmp_path):
    root, _ = folder_tree
    os.remove(root / "labels" / "sub" / "b.png")
    with pytest.raises(FileNotFoundError, match=r"1 of 2 .*b\.png"):
        SegmentationFolder(root / "images", root / "labels", root / "classes.txt")
    with pytest.raises(FileNotFoundError, match="labels folder"):
        SegmentationFolder(root / "images", root / "nowhere", root / "classes.txt")
    with pytest.raises(FileNotFoundError, match="class list not found"):
        SegmentationFolder(root / "images", root / "labels", root / "absent.txt")
    (tmp_path / "gap.txt").write_text("road\n\ncar\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"gap\.txt:2: blank line"):
        read_classes(tmp_path / "gap.txt")
    with pytest.raises(ValueError, match="no class names"):
        read_classes([])
    with pytest.raises(ValueError, match="at most 255"):
        read_classes([f"c{i}" for i in range(256)])


def test_segmentation_folder_skips_labels_inside_the_images_folder(tmp_path):
    labels = np.zeros((H, W), np.uint8)
    labels[:, W // 2 :] = 1
    _write_pair(str(tmp_path / "data" / "x.jpg"), str(tmp_path / "data" / "labels" / "x.png"), labels)
    dataset = SegmentationFolder(tmp_path / "data", tmp_path / "data" / "labels", ["a", "b"])
    assert len(dataset) == 1 and dataset.load(0).name == "x"
