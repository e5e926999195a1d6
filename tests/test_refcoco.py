"""RefCOCO (refer API layout) and ReferringFolder on a tiny fixture tree."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vpd.data.refcoco import RefCOCO, ReferringFolder, annotation_mask, restricted_pickle_load

mask_api = pytest.importorskip("pycocotools.mask")

# image 1: 40 high x 60 wide; image 2: 30 high x 50 wide
RECT = [10.0, 5.0, 30.0, 5.0, 30.0, 25.0, 10.0, 25.0]  # x0 y0 x1 y0 x1 y1 x0 y1: a 20 x 20 square
TWO_POLYS = [[40.0, 10.0, 50.0, 10.0, 50.0, 20.0, 40.0, 20.0], [40.0, 25.0, 50.0, 25.0, 50.0, 35.0, 40.0, 35.0]]


def _rle_mask() -> np.ndarray:
    m = np.zeros((30, 50), dtype=np.uint8)
    m[3:13, 20:45] = 1  # 10 x 25 = 250 pixels
    return m


def _sentence(text: str, sent_id: int) -> dict:
    return {"sent": text, "raw": text.capitalize() + ".", "tokens": text.split(), "sent_id": sent_id}


def make_refer_tree(root: Path, dataset: str = "refcoco", split_by: str = "unc") -> Path:
    """The refer layout: ``<dataset>/refs(<split_by>).p``, ``<dataset>/instances.json``, COCO images."""
    image_dir = root / "images" / "mscoco" / "images" / "train2014"
    image_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(image_dir / "COCO_train2014_1.jpg")
    Image.fromarray(rng.integers(0, 255, (30, 50, 3), dtype=np.uint8)).save(image_dir / "COCO_train2014_2.jpg")
    rle = mask_api.encode(np.asfortranarray(_rle_mask()))
    rle["counts"] = rle["counts"].decode("ascii")
    instances = {
        "images": [
            {"id": 1, "file_name": "COCO_train2014_1.jpg", "height": 40, "width": 60},
            {"id": 2, "file_name": "COCO_train2014_2.jpg", "height": 30, "width": 50},
        ],
        "annotations": [
            {"id": 11, "image_id": 1, "segmentation": [RECT], "bbox": [10, 5, 20, 20], "category_id": 1, "area": 400},
            {
                "id": 12,
                "image_id": 1,
                "segmentation": TWO_POLYS,
                "bbox": [40, 10, 10, 25],
                "category_id": 2,
                "area": 200,
            },
            {
                "id": 21,
                "image_id": 2,
                "segmentation": rle,
                "bbox": [20, 3, 25, 10],
                "category_id": 1,
                "area": 250,
                "iscrowd": 1,
            },
        ],
        "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "dog"}],
    }
    refs = [
        {
            "ref_id": 0,
            "ann_id": 11,
            "image_id": 1,
            "split": "train",
            "category_id": 1,
            "sent_ids": [0, 1],
            "sentences": [_sentence("man on the left", 0), _sentence("left guy", 1)],
        },
        {
            "ref_id": 1,
            "ann_id": 21,
            "image_id": 2,
            "split": "train",
            "category_id": 1,
            "sent_ids": [2],
            "sentences": [_sentence("person at top", 2)],
        },
        {
            "ref_id": 2,
            "ann_id": 12,
            "image_id": 1,
            "split": "val",
            "category_id": 2,
            "sent_ids": [3, 4],
            "sentences": [_sentence("dog right", 3), _sentence("the two dogs", 4)],
        },
        {
            "ref_id": 3,
            "ann_id": 11,
            "image_id": 1,
            "split": "testA",
            "category_id": 1,
            "sent_ids": [5],
            "sentences": [_sentence("the man", 5)],
        },
    ]
    folder = root / dataset
    folder.mkdir()
    with open(folder / f"refs({split_by}).p", "wb") as handle:
        pickle.dump(refs, handle, protocol=2)
    (folder / "instances.json").write_text(json.dumps(instances))
    return root


@pytest.fixture()
def refer_root(tmp_path: Path) -> Path:
    return make_refer_tree(tmp_path / "refer" / "data")


def test_sample_counts_per_split(refer_root: Path) -> None:
    counts = {split: len(RefCOCO(refer_root, "refcoco", split, size=32)) for split in ("train", "val", "testA")}
    assert counts == {"train": 3, "val": 2, "testA": 1}
    with pytest.raises(ValueError, match="no refs in split 'testB'"):
        RefCOCO(refer_root, "refcoco", "testB")


def test_sample_fields_and_native_masks(refer_root: Path) -> None:
    train = RefCOCO(refer_root, "refcoco", "train", size=None)
    names = [train.load(i).name for i in range(len(train))]
    assert names == ["0_0", "0_1", "1_0"]
    first = train.load(0)
    assert first.text == "man on the left"
    assert first.image.shape == (40, 60, 3) and first.image.dtype == np.uint8
    assert first.meta == {"image_id": 1, "ref_id": 0, "category": "person", "image_file": "COCO_train2014_1.jpg"}
    mask = first.targets["mask"]
    assert mask.dtype == np.uint8 and mask.shape == (40, 60) and set(np.unique(mask)) <= {0, 1}
    # The square polygon: ~20 x 20 pixels (pycocotools' rasteriser), all inside its box, equal to pycocotools' area.
    expected = int(mask_api.area(mask_api.merge(mask_api.frPyObjects([RECT], 40, 60))))
    assert int(mask.sum()) == expected
    assert 380 <= expected <= 441
    ys, xs = np.nonzero(mask)
    assert ys.min() >= 5 and ys.max() <= 25 and xs.min() >= 10 and xs.max() <= 30
    assert train.load(1).targets["mask"].tolist() == mask.tolist()  # second sentence, same object
    rle_sample = train.load(2)
    assert rle_sample.image.shape == (30, 50, 3)
    np.testing.assert_array_equal(rle_sample.targets["mask"], _rle_mask())
    val = RefCOCO(refer_root, "refcoco", "val", size=None)
    two = val.load(0).targets["mask"]
    assert two[10:20, 40:50].mean() > 0.8 and two[25:35, 40:50].mean() > 0.8 and two[21:24].sum() == 0
    assert val.load(0).meta["category"] == "dog"


def test_resize_to_size(refer_root: Path) -> None:
    native = RefCOCO(refer_root, "refcoco", "train", size=None).load(0).targets["mask"].sum()
    sample = RefCOCO(refer_root, "refcoco", "train", size=120).load(0)
    assert sample.image.shape == (120, 120, 3) and sample.targets["mask"].shape == (120, 120)
    assert set(np.unique(sample.targets["mask"])) == {0, 1}
    scale = (120 / 40) * (120 / 60)
    assert abs(sample.targets["mask"].sum() / (native * scale) - 1) < 0.1
    batch = RefCOCO(refer_root, "refcoco", "train", size=64)[0]
    assert batch["image"].shape == (3, 64, 64) and batch["mask"].shape == (64, 64) and batch["text"]


def test_bad_split_lists_valid_ones(refer_root: Path) -> None:
    with pytest.raises(ValueError, match="train, val, testA, testB") as info:
        RefCOCO(refer_root, "refcoco", "test")
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="train, val, test"):
        RefCOCO(refer_root, "refcocog", "testA")
    with pytest.raises(ValueError, match="split_by"):
        RefCOCO(refer_root, "refcoco+", "val", split_by="umd")


def test_refcocog_default_umd(tmp_path: Path) -> None:
    root = make_refer_tree(tmp_path, dataset="refcocog", split_by="umd")
    assert len(RefCOCO(root, "refcocog", "train", size=16)) == 3
    with pytest.raises(FileNotFoundError, match=r"refs\(google\)\.p"):
        RefCOCO(root, "refcocog", "train", split_by="google")


def test_missing_images_one_error(refer_root: Path) -> None:
    os.remove(refer_root / "images" / "mscoco" / "images" / "train2014" / "COCO_train2014_2.jpg")
    RefCOCO(refer_root, "refcoco", "val")  # val only uses image 1
    with pytest.raises(FileNotFoundError, match=r"1 of 2 files missing.*COCO_train2014_2\.jpg"):
        RefCOCO(refer_root, "refcoco", "train")


class _Evil:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, ("echo pwned > /dev/null",))


def test_restricted_pickle_refuses_globals(tmp_path: Path) -> None:
    evil = tmp_path / "refs(unc).p"
    evil.write_bytes(pickle.dumps([{"ref_id": 0, "x": _Evil()}], protocol=2))
    with pytest.raises(ValueError, match=r"refs\(unc\)\.p.*(posix|os|nt)\.system") as info:
        restricted_pickle_load(evil)
    assert "\n" not in str(info.value)
    good = tmp_path / "good.p"
    data = [{"ref_id": 1, "sentences": [{"sent": "a", "tokens": ["a"]}], "score": 0.5, "pair": (1, 2)}]
    good.write_bytes(pickle.dumps(data, protocol=2))
    assert restricted_pickle_load(good) == data
    (tmp_path / "cut.p").write_bytes(pickle.dumps(data)[:10])
    with pytest.raises(ValueError, match=r"cut\.p"):
        restricted_pickle_load(tmp_path / "cut.p")


def test_refcoco_refuses_malicious_refs(refer_root: Path) -> None:
    (refer_root / "refcoco" / "refs(unc).p").write_bytes(pickle.dumps([_Evil()]))
    with pytest.raises(ValueError, match="refused"):
        RefCOCO(refer_root, "refcoco", "train")


def test_annotation_mask_uncompressed_rle() -> None:
    m = _rle_mask()
    counts = mask_api.encode(np.asfortranarray(m))
    # uncompressed RLE (list counts), as COCO's iscrowd annotations store it
    flat = m.flatten(order="F")
    runs, current, length = [], 0, 0
    for v in flat:
        if v == current:
            length += 1
        else:
            runs.append(length)
            current, length = v, 1
    runs.append(length)
    np.testing.assert_array_equal(annotation_mask({"counts": runs, "size": [30, 50]}, 30, 50), m)
    np.testing.assert_array_equal(annotation_mask(counts, 30, 50), m)  # bytes counts


def test_referring_folder(tmp_path: Path) -> None:
    data = tmp_path / "mine"
    (data / "img").mkdir(parents=True)
    Image.fromarray(np.full((20, 30, 3), 128, np.uint8)).save(data / "img" / "a.png")
    mask = np.zeros((20, 30), np.uint8)
    mask[2:8, 3:13] = 200
    Image.fromarray(mask).save(data / "img" / "a_mask.png")
    lines = [
        {"image": "img/a.png", "expression": "the grey thing", "mask": "img/a_mask.png"},
        {"image": "img/a.png", "expression": "named", "mask": "img/a_mask.png", "name": "custom"},
    ]
    jsonl = data / "triples.jsonl"
    jsonl.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    folder = ReferringFolder(jsonl)
    assert len(folder) == 2
    sample = folder.load(0)
    assert sample.text == "the grey thing" and sample.name == "a_1"
    assert sample.targets["mask"].sum() == 60 and sample.targets["mask"].max() == 1
    assert folder.load(1).name == "custom"
    resized = ReferringFolder(jsonl, size=40).load(0)
    assert resized.image.shape == (40, 40, 3) and resized.targets["mask"].shape == (40, 40)
    # image_root overrides the file's folder
    other = tmp_path / "elsewhere.jsonl"
    other.write_text(json.dumps(lines[0]) + "\n")
    assert len(ReferringFolder(other, image_root=data)) == 1
    with pytest.raises(FileNotFoundError, match="1 of 1 files missing"):
        ReferringFolder(other)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"image": "x.png"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:1: expected an object"):
        ReferringFolder(bad)
