"""The one-step family's datasets on tiny trees written in the official on-disk layouts: Hypersim and Virtual
KITTI 2 (Marigold's preprocessed forms), the 9:1 mix, Marigold's affine-invariant evaluation sets (NYUv2, KITTI,
ETH3D, ScanNet, DIODE), P3M-10k matting and DIS5K."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
import torch
from PIL import Image

from vpd.configuration import ConfigError
from vpd.data.affine_eval import DIODE, ETH3D, KITTIAffine, NYUv2Affine, ScanNet, kitti_eval_mask, nyu_eigen_mask
from vpd.data.base import EpochSampler, Sample
from vpd.data.hypersim import Hypersim, VirtualKITTI2
from vpd.data.kitti import KITTIEigen
from vpd.data.matting import DIS5K, P3M10k
from vpd.data.mixed import MixedDataset
from vpd.data.registry import _kinds, build_dataset
from vpd.data.transforms import HorizontalFlip

NEW_KINDS = ("hypersim", "vkitti2", "mixed", "nyuv2_affine", "kitti_affine", "eth3d", "scannet", "diode", "p3m10k",
             "dis5k")  # fmt: skip


def _rgb(height: int, width: int, seed: int) -> np.ndarray:
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return np.stack([(rows * 7 + seed) % 256, (cols * 3 + seed) % 256, np.full_like(rows, 40 * seed % 256)], axis=2)


def _save_image(path, array: np.ndarray) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image = Image.fromarray(np.asarray(array, dtype=np.uint8))
    if str(path).lower().endswith((".jpg", ".jpeg")):
        image.save(path, quality=100)
    else:
        image.save(path, compress_level=1)


def _save_u16(path, stored: np.ndarray) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.asarray(stored, dtype=np.uint16)).save(path, compress_level=1)


def _save_npy(path, array: np.ndarray) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.save(path, array)


def _write(path, lines: list[str]) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return str(path)


def test_every_new_kind_is_registered():
    kinds = _kinds()
    assert set(NEW_KINDS) <= set(kinds)
    assert kinds["hypersim"] is Hypersim and kinds["mixed"] is MixedDataset and kinds["dis5k"] is DIS5K


# ---------------------------------------------------------------------------------------------------- Hypersim

HH, HW = 12, 16  # small frames (the real ones are 768x1024; nothing may assume that size)


@pytest.fixture
def hypersim(tmp_path):
    """``hypersim/train/ai_001_001/{rgb,depth_plane,normal_cam}_cam_00_frNNNN`` + both list forms."""
    root = tmp_path / "hypersim"
    scene = root / "train" / "ai_001_001"
    depth = np.full((HH, HW), 2000, dtype=np.uint16)
    depth[0, 0], depth[0, 1], depth[0, 2], depth[0, 3] = 1234, 0, 65535, 64999  # 65.535 m > 65 m: invalid
    normals = np.zeros((HH, HW, 3), dtype=np.float32)
    normals[...] = (0.0, 0.0, 2.0)  # not unit length: the loader normalises
    normals[1, 0] = (3.0, 4.0, 0.0)
    normals[1, 1] = (np.nan, 0.0, 1.0)
    normals[1, 2] = (0.0, 0.0, 0.0)
    images = []
    for frame in range(2):
        stem = f"cam_00_fr{frame:04d}"
        images.append(_rgb(HH, HW, frame + 1))
        _save_image(scene / f"rgb_{stem}.png", images[-1])
        _save_u16(scene / f"depth_plane_{stem}.png", depth)
        _save_npy(scene / f"normal_cam_{stem}.npy", normals.astype(np.float64))  # the script saves float64
    depth_list = _write(
        root / "train" / "filename_list_train.txt",
        [f"ai_001_001/rgb_cam_00_fr{f:04d}.png ai_001_001/depth_plane_cam_00_fr{f:04d}.png" for f in range(2)],
    )
    normals_list = _write(
        tmp_path / "hypersim_filtered_all.txt",
        [
            f"train/ai_001_001/rgb_cam_00_fr{f:04d}.png train/ai_001_001/normal_cam_cam_00_fr{f:04d}.npy"
            for f in range(2)
        ],
    )
    return root, depth_list, normals_list, images


def test_hypersim_depth_in_millimetres_and_range(hypersim):
    root, depth_list, _, images = hypersim
    data = build_dataset("hypersim", {"root": str(root / "train"), "filelist": depth_list})
    assert isinstance(data, Hypersim) and len(data) == 2 and data.target_names == ("depth",)
    sample = data.load(1)
    np.testing.assert_array_equal(sample.image, images[1])
    assert sample.name == "ai_001_001/rgb_cam_00_fr0001" and set(sample.targets) == {"depth"}
    depth = sample.targets["depth"]
    assert depth.dtype == np.float32 and depth.shape == (HH, HW)
    assert depth[0, 0] == np.float32(1.234) and depth[5, 5] == np.float32(2.0)
    assert depth[0, 1] == 0 and depth[0, 2] == 0  # no geometry; beyond Marigold's 65 m
    assert depth[0, 3] == np.float32(64.999)


def test_hypersim_normals_convention_and_masking(hypersim):
    root, depth_list, _, _ = hypersim
    data = Hypersim(root / "train", depth_list, normals=True)
    assert data.target_names == ("depth", "normals")
    normals = data.load(0).targets["normals"]
    assert normals.dtype == np.float32 and normals.shape == (HH, HW, 3)
    np.testing.assert_allclose(normals[5, 5], (0, 0, 1))  # facing the camera: +z (x right, y up)
    np.testing.assert_allclose(normals[1, 0], (0.6, 0.8, 0), rtol=1e-6)
    assert not normals[1, 1].any() and not normals[1, 2].any()  # NaN / zero vectors: invalid
    assert not normals[0, 1].any() and not normals[0, 2].any()  # the depth is invalid there
    left = Hypersim(root / "train", depth_list, normals=True, normals_x="left").load(0).targets["normals"]
    np.testing.assert_allclose(left[1, 0], (-0.6, 0.8, 0), rtol=1e-6)  # E2E-FT / Lotus: x negated


def test_hypersim_normals_list_relative_to_root(hypersim):
    root, _, normals_list, _ = hypersim
    only = Hypersim(root, normals_list, depth=False, normals=True)
    assert only.target_names == ("normals",) and only.load(0).name == "train/ai_001_001/rgb_cam_00_fr0000"
    both = Hypersim(root, normals_list, normals=True).load(0)  # the depth path derived from the rgb name
    assert set(both.targets) == {"depth", "normals"} and both.targets["depth"][0, 0] == np.float32(1.234)


def test_hypersim_resize_is_nearest_and_flip_negates_x(hypersim):
    root, depth_list, _, images = hypersim
    small = Hypersim(root / "train", depth_list, normals=True, resize_to=(6, 8)).load(0)
    assert small.image.shape == (6, 8, 3) and small.targets["normals"].shape == (6, 8, 3)
    np.testing.assert_array_equal(small.image, images[0][1::2, 1::2])  # half-pixel centres: rows 1, 3, ...
    assert small.targets["depth"][0, 0] == np.float32(2.0)  # source (1, 1), not the 1.234 at (0, 0)
    flipped = Hypersim(root / "train", depth_list, normals=True, transform=HorizontalFlip(p=1.0))[0]
    assert flipped["normals"].shape == (3, HH, HW)
    np.testing.assert_allclose(flipped["normals"][:, 1, HW - 1].numpy(), (-0.6, 0.8, 0), rtol=1e-6)


def test_hypersim_errors(hypersim, tmp_path):
    root, depth_list, _, _ = hypersim
    with pytest.raises(FileNotFoundError, match=r"nolist\.txt: file list not found"):
        Hypersim(root / "train", tmp_path / "nolist.txt")
    os.remove(root / "train" / "ai_001_001" / "depth_plane_cam_00_fr0001.png")
    with pytest.raises(FileNotFoundError, match=r"Hypersim: 1 of 4 files missing.*depth_plane_cam_00_fr0001\.png"):
        Hypersim(root / "train", depth_list)
    bad = _write(tmp_path / "bad.txt", ["ai_001_001/rgb_cam_00_fr0000.png ai_001_001/depth_plane_cam_00_fr0000.png",
                                        "ai_001_001/rgb_cam_00_fr0000.png"])  # fmt: skip
    with pytest.raises(ValueError, match=r"bad\.txt:2: expected 'rgb_path depth_path\.png\|normals_path\.npy'"):
        Hypersim(root / "train", bad)
    with pytest.raises(ValueError, match="normals_x"):
        Hypersim(root / "train", depth_list, normals_x="up")
    with pytest.raises(ValueError, match="depth, normals or both"):
        Hypersim(root / "train", depth_list, depth=False)


# ------------------------------------------------------------------------------------------- Virtual KITTI 2

KH, KW = 375, 1242  # the real vKITTI 2 / KITTI frame size: the KB crop (top 23, left 13) needs >= 352x1216


def _vkitti_depth() -> np.ndarray:
    stored = np.full((KH, KW), 1000, dtype=np.uint16)  # 10 m
    stored[23, 13] = 1234  # the crop's top-left: 12.34 m
    stored[23, 14] = 65535  # sky, 655.35 m: invalid
    stored[23, 15] = 8000  # 80.00 m: not < 80, invalid
    stored[23, 16] = 7999  # 79.99 m
    return stored


@pytest.fixture
def vkitti(tmp_path):
    """Marigold's ``vkitti/{rgb,depth}/Scene*/<variation>/frames/...`` tree, a list with a ``None`` line."""
    root = tmp_path / "vkitti"
    rows = []
    for scene, variation, frame in [("Scene02", "clone", 0), ("Scene02", "fog", 3), ("Scene06", "clone", 1)]:
        rgb = f"rgb/{scene}/{variation}/frames/rgb/Camera_0/rgb_{frame:05d}.jpg"
        depth = f"depth/{scene}/{variation}/frames/depth/Camera_0/depth_{frame:05d}.png"
        _save_image(root / rgb, np.full((KH, KW, 3), 90 + frame, dtype=np.uint8))
        _save_u16(root / depth, _vkitti_depth())
        rows.append(f"{rgb} {depth}")
    filelist = _write(tmp_path / "vkitti_train.txt", [*rows[:2], "rgb/Scene01/clone/x.jpg None"])
    return root, filelist


def test_vkitti2_centimetres_kb_crop_and_range(vkitti):
    root, filelist = vkitti
    data = build_dataset("vkitti2", {"root": str(root), "filelist": filelist})
    assert isinstance(data, VirtualKITTI2) and len(data) == 2  # the None line is skipped
    sample = data.load(1)
    assert sample.name == "rgb/Scene02/fog/frames/rgb/Camera_0/rgb_00003"
    assert sample.image.shape == (352, 1216, 3) and abs(int(sample.image[0, 0, 0]) - 93) <= 1
    depth = sample.targets["depth"]
    assert depth.shape == (352, 1216) and depth[0, 0] == np.float32(12.34) and depth[5, 5] == np.float32(10.0)
    assert depth[0, 1] == 0 and depth[0, 2] == 0 and depth[0, 3] == np.float32(79.99)
    full = VirtualKITTI2(root, filelist, kb_crop=False).load(0)
    assert full.image.shape == (KH, KW, 3) and full.targets["depth"][23, 13] == np.float32(12.34)


def test_vkitti2_discovers_both_layouts(vkitti, tmp_path):
    root, _ = vkitti
    found = VirtualKITTI2(root)
    assert [found.load(i).name.split("/")[1:3] for i in range(3)] == [
        ["Scene02", "clone"], ["Scene02", "fog"], ["Scene06", "clone"]
    ]  # fmt: skip
    together = tmp_path / "together"  # both official tars extracted into one folder
    _save_image(together / "Scene01/clone/frames/rgb/Camera_1/rgb_00007.jpg", np.zeros((KH, KW, 3), np.uint8))
    _save_u16(together / "Scene01/clone/frames/depth/Camera_1/depth_00007.png", _vkitti_depth())
    single = VirtualKITTI2(together)
    assert len(single) == 1 and single.load(0).targets["depth"][0, 0] == np.float32(12.34)


def test_vkitti2_errors(vkitti, tmp_path):
    root, filelist = vkitti
    with pytest.raises(FileNotFoundError, match=r"VirtualKITTI2: folder .*nowhere not found"):
        VirtualKITTI2(tmp_path / "nowhere")
    os.remove(root / "depth/Scene02/fog/frames/depth/Camera_0/depth_00003.png")
    with pytest.raises(FileNotFoundError, match=r"1 of 4 files missing.*depth_00003\.png"):
        VirtualKITTI2(root, filelist)
    bad = _write(tmp_path / "bad.txt", ["a.jpg b.png c.png"])
    with pytest.raises(ValueError, match=r"bad\.txt:1: expected 'rgb_path depth_path'"):
        VirtualKITTI2(root, bad)
    _save_image(tmp_path / "small/rgb/Scene01/clone/frames/rgb/Camera_0/rgb_00000.jpg", np.zeros((20, 30, 3), np.uint8))
    _save_u16(tmp_path / "small/depth/Scene01/clone/frames/depth/Camera_0/depth_00000.png", np.ones((20, 30)))
    with pytest.raises(ValueError, match=r"rgb_00000\.jpg: KB crop needs a frame of at least 352x1216"):
        VirtualKITTI2(tmp_path / "small").load(0)


# ------------------------------------------------------------------------------------------------------- mixed


@pytest.fixture
def mix_args(hypersim, vkitti):
    root, depth_list, _, _ = hypersim
    vroot, vlist = vkitti
    return {
        "datasets": [
            {"kind": "hypersim", "args": {"root": str(root / "train"), "filelist": depth_list}},
            {"kind": "vkitti2", "args": {"root": str(vroot), "filelist": vlist}},
        ],
        "weights": [0.9, 0.1],
    }


def test_mixed_proportions_determinism_and_coverage(mix_args):
    data = build_dataset("mixed", {**mix_args, "length": 20000}, seed=3)
    assert isinstance(data, MixedDataset) and len(data) == 20000 and data.target_names == ("depth",)
    sources, child = data.plan(0)
    assert abs(float(np.mean(sources == 0)) - 0.9) < 0.01
    for j in range(2):  # each source walks permutations of its 2 samples: counts differ by at most one
        counts = np.bincount(child[sources == j], minlength=2)
        assert counts.max() - counts.min() <= 1
    again = MixedDataset(**mix_args, length=20000, seed=3)
    np.testing.assert_array_equal(again.plan(0)[0], sources)
    np.testing.assert_array_equal(again.plan(0)[1], child)
    assert not np.array_equal(MixedDataset(**mix_args, length=20000, seed=4).plan(0)[0], sources)
    assert not np.array_equal(data.plan(1)[0], sources)
    default = MixedDataset(**mix_args)
    assert len(default) == 4 and np.isclose(default.weights, [0.9, 0.1]).all()


def test_mixed_one_source_per_batch(mix_args):
    size, n = 8, 8003  # n not a multiple of the batch: blocks straddle epochs
    data = MixedDataset(**mix_args, length=n, batch_size=size, seed=5)
    stream = np.concatenate([EpochSampler(n, seed=5).order(epoch) for epoch in range(2)])
    sources = np.concatenate([data.plan(epoch)[0][EpochSampler(n, seed=5).order(epoch)] for epoch in range(2)])
    assert len(stream) == len(sources)
    blocks = sources[: len(sources) // size * size].reshape(-1, size)
    assert (blocks == blocks[:, :1]).all()  # every trainer batch comes from one child
    assert abs(float(np.mean(blocks[:, 0] == 0)) - 0.9) < 0.03


def test_mixed_transform_applied_once_to_the_drawn_sample(mix_args):
    calls: list[str] = []

    def mark(sample: Sample, rng: np.random.Generator) -> Sample:
        calls.append(sample.name)
        depth = sample.targets["depth"] + 100.0
        return dataclasses.replace(sample, targets={"depth": depth})

    data = build_dataset("mixed", mix_args, transform=mark, seed=1)
    assert all(child.transform is None for child in data.children)
    sources = data.plan(0)[0]
    for index in range(len(data)):
        item = data[index]
        expected = "hypersim" if sources[index] == 0 else "vkitti2"
        assert item["name"].startswith(expected + "/")
        assert float(item["depth"].min()) >= 100.0 and float(item["depth"].max()) < 200.0  # + 100 once, not twice
    assert len(calls) == len(data)
    assert data.load(0).meta["source"] in ("hypersim", "vkitti2")


def test_mixed_errors(mix_args, hypersim):
    root, depth_list, _, _ = hypersim
    with_normals = {"kind": "hypersim", "args": {"root": str(root / "train"), "filelist": depth_list, "normals": True}}
    mismatched = {**mix_args, "datasets": [with_normals, mix_args["datasets"][1]]}
    with pytest.raises(ConfigError, match=r"targets differ \(hypersim: depth, normals; vkitti2: depth\)"):
        MixedDataset(**mismatched)
    with pytest.raises(ConfigError, match=r"mixed.weights: 1 weights for 2 datasets"):
        MixedDataset(mix_args["datasets"], weights=[1.0])
    with pytest.raises(ConfigError, match=r"mixed.weights: expected positive"):
        MixedDataset(mix_args["datasets"], weights=[1.0, -1.0])
    with pytest.raises(ConfigError, match=r"mixed.weights: expected positive"):
        MixedDataset(mix_args["datasets"], weights=["a", 1.0])
    with pytest.raises(ConfigError, match=r"mixed.datasets\[0\].kind: unknown dataset 'nope'"):
        MixedDataset([{"kind": "nope", "args": {}}])
    with pytest.raises(ConfigError, match=r"mixed.datasets\[0\]: expected \{kind"):
        MixedDataset([["hypersim"]])  # type: ignore[list-item]


# ------------------------------------------------------------------------------------------------ NYUv2 (654)


@pytest.fixture
def nyu(tmp_path):
    """Marigold's ``nyuv2/test/<scene>/{rgb,depth,filled}_NNNN.png`` (480x640: the Eigen crop is in pixels)."""
    root = tmp_path / "nyuv2"
    depth = np.full((480, 640), 1500, dtype=np.uint16)
    depth[0, 0], depth[100, 100], depth[100, 101], depth[100, 102] = 2000, 0, 10000, 1  # 10 m, 1 mm: invalid
    lines = []
    for scene, frame in [("kitchen_0004", "0001"), ("office_0005", "0009")]:
        folder = root / "test" / scene
        _save_image(folder / f"rgb_{frame}.png", np.full((480, 640, 3), 60, dtype=np.uint8))
        _save_u16(folder / f"depth_{frame}.png", depth)
        _save_u16(folder / f"filled_{frame}.png", np.full((480, 640), 2500))
        lines.append(f"test/{scene}/rgb_{frame}.png test/{scene}/depth_{frame}.png test/{scene}/filled_{frame}.png")
    return root, _write(tmp_path / "filename_list_test.txt", lines)


def test_nyuv2_affine_eigen_crop_and_range(nyu):
    root, filelist = nyu
    data = build_dataset("nyuv2_affine", {"root": str(root), "filelist": filelist, "filled": True})
    assert isinstance(data, NYUv2Affine) and len(data) == 2
    sample = data.load(0)
    assert sample.name == "test/kitchen_0004/rgb_0001" and sample.class_id == 6  # "kitchen"
    depth, valid = sample.targets["depth"], sample.targets["valid"]
    assert depth[0, 0] == np.float32(2.0) and depth[200, 200] == np.float32(1.5)
    assert depth[100, 100] == 0 and depth[100, 101] == 0 and depth[100, 102] == 0  # 0, 10 m and 1 mm: out of range
    assert valid.dtype == bool and not valid[0, 0] and valid[200, 200] and not valid[100, 101]
    assert valid[45, 41] and not valid[44, 41] and not valid[45, 40] and valid[470, 600] and not valid[471, 600]
    np.testing.assert_array_equal(valid, nyu_eigen_mask(480, 640) & (depth > 0))
    assert sample.targets["depth_filled"][0, 0] == np.float32(2.5)
    assert sample.meta == {"min_depth": 1e-3, "max_depth": 10.0, "eval_crop": "eigen"}
    item = data[1]
    assert item["valid"].dtype == torch.int64 and item["valid"].shape == (480, 640) and item["depth"].shape[0] == 1


def test_nyuv2_affine_discovery_no_crop_and_errors(nyu, tmp_path):
    root, filelist = nyu
    found = NYUv2Affine(root, eigen_crop=False)
    assert [found.load(i).name for i in range(2)] == ["test/kitchen_0004/rgb_0001", "test/office_0005/rgb_0009"]
    assert found.load(0).targets["valid"][0, 0] and found.load(0).meta["eval_crop"] is None
    with pytest.raises(FileNotFoundError, match=r"NYUv2Affine: folder .*nowhere not found"):
        NYUv2Affine(tmp_path / "nowhere")
    bad = _write(tmp_path / "bad.txt", ["a b c d"])
    with pytest.raises(ValueError, match=r"bad\.txt:1: expected 'rgb_path depth_path \[filled_path\]'"):
        NYUv2Affine(root, bad)
    os.remove(root / "test" / "office_0005" / "filled_0009.png")
    with pytest.raises(FileNotFoundError, match=r"NYUv2Affine: 1 of 6 files missing.*filled_0009\.png"):
        NYUv2Affine(root, filelist, filled=True)
    assert len(NYUv2Affine(root, filelist)) == 2  # the filled maps are only needed when asked for


# ------------------------------------------------------------------------------------------------- KITTI Eigen


@pytest.fixture
def kitti(tmp_path):
    """Marigold's ``kitti_eigen_split_test`` folder: rgb and depth paths of the BTS list under one root."""
    root = tmp_path / "kitti_eigen_split_test"
    drive = "2011_09_26_drive_0002_sync"
    stored = np.full((KH, KW), 2560, dtype=np.uint16)  # 10 m (value / 256)
    stored[23 + 200, 13 + 500] = 80 * 256  # 80 m: not < 80
    lines = []
    for frame in ["0000000069", "0000000054"]:
        _save_image(root / "2011_09_26" / drive / "image_02" / "data" / f"{frame}.png", np.full((KH, KW, 3), 7))
        _save_u16(root / drive / "proj_depth" / "groundtruth" / "image_02" / f"{frame}.png", stored)
        lines.append(f"2011_09_26/{drive}/image_02/data/{frame}.png {drive}/proj_depth/groundtruth/image_02/"
                     f"{frame}.png 721.5377")  # fmt: skip
    lines.append(f"2011_09_26/{drive}/image_02/data/0000000042.png None 721.5377")
    return root, _write(tmp_path / "eigen_test_files_with_gt.txt", lines)


def test_kitti_affine_reuses_kitti_eigen_with_eval_crops(kitti):
    root, filelist = kitti
    data = build_dataset("kitti_affine", {"root": str(root), "filelist": filelist})
    assert isinstance(data, KITTIAffine) and isinstance(data, KITTIEigen) and len(data) == 2
    sample = data.load(0)
    depth, valid = sample.targets["depth"], sample.targets["valid"]
    assert sample.image.shape == (352, 1216, 3) and depth[0, 0] == np.float32(10.0) and depth[200, 500] == 0
    # Eigen crop on the KB-cropped 352x1216 frame: rows int(0.3324324 * 352) = 117 .. 321, cols 43 .. 1172
    assert not valid[116, 600] and valid[117, 600] and valid[320, 600] and not valid[321, 600]
    assert not valid[200, 42] and valid[200, 43] and valid[200, 1171] and not valid[200, 1172]
    assert not valid[200, 500]  # 80 m is out of range
    assert sample.meta == {"min_depth": 1e-5, "max_depth": 80.0, "eval_crop": "eigen"}
    garg = KITTIAffine(root, filelist, eval_crop="garg").load(0).targets["valid"]
    assert not garg[142, 600] and garg[143, 600] and garg[348, 600] and not garg[349, 600]
    np.testing.assert_array_equal(garg, kitti_eval_mask(352, 1216, "garg") & (depth > 0))
    assert KITTIAffine(root, filelist, eval_crop=None).load(0).targets["valid"][0, 0]
    with pytest.raises(ValueError, match="eval_crop"):
        KITTIAffine(root, filelist, eval_crop="kb")


# ------------------------------------------------------------------------------------------------------- ETH3D

EH, EW = 6, 8  # the real depth files are 4032x6048 float32 (97 MB): the size is a constructor argument


@pytest.fixture
def eth3d(tmp_path):
    root = tmp_path / "eth3d"
    depth = np.full((EH, EW), 3.25, dtype="<f4")
    depth[0, 0] = np.inf  # ETH3D's "no depth"
    depth[0, 1] = 123.5
    lines = []
    for scene, name in [("office", "DSC_0219.JPG"), ("relief", "DSC_0427.JPG")]:
        rgb = f"rgb/{scene}/images/dslr_images/{name}"
        depth_rel = f"depth/{scene}_dslr_depth/{scene}/ground_truth_depth/dslr_images/{name}"
        _save_image(root / rgb, np.full((EH, EW, 3), 128, dtype=np.uint8))
        os.makedirs(os.path.dirname(root / depth_rel), exist_ok=True)
        depth.tofile(root / depth_rel)
        lines.append(f"{rgb} {depth_rel}")
    return root, _write(tmp_path / "eth3d_filename_list.txt", lines)


def test_eth3d_raw_float32_depth(eth3d, tmp_path):
    root, filelist = eth3d
    data = build_dataset("eth3d", {"root": str(root), "filelist": filelist, "depth_shape": [EH, EW]})
    assert isinstance(data, ETH3D) and len(data) == 2
    sample = data.load(1)
    assert sample.name == "rgb/relief/images/dslr_images/DSC_0427" and sample.image.shape == (EH, EW, 3)
    depth, valid = sample.targets["depth"], sample.targets["valid"]
    assert depth[0, 0] == 0 and not valid[0, 0]  # inf: missing
    assert depth[0, 1] == np.float32(123.5) and depth[3, 3] == np.float32(3.25) and valid[3, 3]
    assert sample.meta["max_depth"] == float("inf") and sample.meta["eval_crop"] is None
    assert [ETH3D(root, depth_shape=(EH, EW)).load(i).name for i in range(2)] == [data.load(i).name for i in range(2)]
    with pytest.raises(ValueError, match=rf"DSC_0219\.JPG: {EH * EW * 4} bytes, expected 97542144"):
        ETH3D(root, filelist).load(0)  # the default 4032x6048
    with pytest.raises(FileNotFoundError, match=r"ETH3D: folder .*nowhere not found"):
        ETH3D(tmp_path / "nowhere")


# ----------------------------------------------------------------------------------------------------- ScanNet


def test_scannet_millimetres_and_list(tmp_path):
    root = tmp_path / "scannet"
    stored = np.full((12, 16), 2500, dtype=np.uint16)
    stored[0, 0] = 10500  # 10.5 m: out of range
    for scene, frame in [("scene0406_02", "000300"), ("scene0088_02", "001100")]:
        _save_image(root / scene / "color" / f"{frame}.jpg", np.full((12, 16, 3), 30, dtype=np.uint8))
        _save_u16(root / scene / "depth" / f"{frame}.png", stored)
    filelist = _write(
        tmp_path / "scannet_val_sampled_list_800_1.txt",
        ["scene0406_02/color/000300.jpg scene0406_02/depth/000300.png",
         "scene0088_02/color/001100.jpg scene0088_02/depth/001100.png"],
    )  # fmt: skip
    data = build_dataset("scannet", {"root": str(root), "filelist": filelist})
    assert isinstance(data, ScanNet) and len(data) == 2
    sample = data.load(0)
    assert sample.name == "scene0406_02/color/000300"
    assert sample.targets["depth"][1, 1] == np.float32(2.5) and sample.targets["depth"][0, 0] == 0
    assert sample.targets["valid"][1, 1] and not sample.targets["valid"][0, 0]
    assert sample.meta == {"min_depth": 1e-3, "max_depth": 10.0, "eval_crop": None}
    assert [s.name for s in (ScanNet(root).load(i) for i in range(2))] == [
        "scene0088_02/color/001100", "scene0406_02/color/000300"
    ]  # fmt: skip
    os.remove(root / "scene0088_02" / "depth" / "001100.png")
    with pytest.raises(FileNotFoundError, match=r"ScanNet: 1 of 4 files missing.*001100\.png"):
        ScanNet(root, filelist)


# ------------------------------------------------------------------------------------------------------- DIODE


@pytest.fixture
def diode(tmp_path):
    root = tmp_path / "diode_val"
    depth = np.full((10, 14, 1), 4.5, dtype=np.float32)  # DIODE stores [H, W, 1]
    depth[0, 0, 0] = 0.5  # below 0.6 m but inside the mask: valid, as in Marigold (the mask decides)
    mask = np.ones((10, 14), dtype=np.float32)
    mask[1, 1] = 0
    lines = []
    for split, scene, scan, stem in [("indoors", "00021", "00189", "00021_00189_indoors_200_010"),
                                     ("outdoor", "00022", "00193", "00022_00193_outdoor_000_010")]:  # fmt: skip
        folder = f"{split}/scene_{scene}/scan_{scan}"
        _save_image(root / folder / f"{stem}.png", np.full((10, 14, 3), 90, dtype=np.uint8))
        _save_npy(root / folder / f"{stem}_depth.npy", depth)
        _save_npy(root / folder / f"{stem}_depth_mask.npy", mask)
        lines.append(f"{folder}/{stem}.png {folder}/{stem}_depth.npy {folder}/{stem}_depth_mask.npy")
    return root, _write(tmp_path / "diode_val_all_filename_list.txt", lines)


def test_diode_mask_subsets_and_list(diode, tmp_path):
    root, filelist = diode
    data = build_dataset("diode", {"root": str(root), "filelist": filelist})
    assert isinstance(data, DIODE) and len(data) == 2
    sample = data.load(0)
    depth, valid = sample.targets["depth"], sample.targets["valid"]
    assert depth.shape == (10, 14) and depth[0, 0] == np.float32(0.5) and valid[0, 0]
    assert depth[1, 1] == 0 and not valid[1, 1] and depth[5, 5] == np.float32(4.5)
    assert sample.meta == {"min_depth": 0.6, "max_depth": 350.0, "eval_crop": None}
    indoors = DIODE(root, filelist, subset="indoors")
    assert len(indoors) == 1 and indoors.load(0).name.startswith("indoors/")
    assert [DIODE(root, subset=s).load(0).name.split("/")[0] for s in ("indoors", "outdoor")] == ["indoors", "outdoor"]
    assert len(DIODE(root)) == 2
    _save_npy(root / "indoors/scene_00021/scan_00189/00021_00189_indoors_200_010_depth.npy", np.ones((10, 14, 2)))
    with pytest.raises(ValueError, match=r"_depth\.npy: expected a numeric \[H, W\] or \[H, W, 1\] map"):
        data.load(0)
    with pytest.raises(ValueError, match="subset"):
        DIODE(root, subset="underwater")
    with pytest.raises(FileNotFoundError, match=r"DIODE: folder .*nowhere not found"):
        DIODE(tmp_path / "nowhere", subset="indoors")


# ---------------------------------------------------------------------------------------------------- P3M-10k


@pytest.fixture
def p3m(tmp_path):
    root = tmp_path / "P3M-10k"
    alpha = np.zeros((10, 12), dtype=np.uint8)
    alpha[:, 6:] = 255
    alpha[0, 0] = 128
    trimap = np.where(alpha == 255, 255, 0).astype(np.uint8)
    trimap[:, 5:7] = 128
    for folder, image_folder in [("train", "blurred_image"), ("validation/P3M-500-P", "blurred_image"),
                                 ("validation/P3M-500-NP", "original_image")]:  # fmt: skip
        for name in ["p_0a2b1b9a", "p_1c3d"]:
            _save_image(root / folder / image_folder / f"{name}.jpg", np.full((10, 12, 3), 200, dtype=np.uint8))
            _save_image(root / folder / "mask" / f"{name}.png", alpha)
            if folder != "train":
                _save_image(root / folder / "trimap" / f"{name}.png", trimap)
    return root, alpha, trimap


def test_p3m10k_alpha_and_trimap(p3m, tmp_path):
    root, alpha, trimap = p3m
    assert alpha[0, 0] == 128
    train = build_dataset("p3m10k", {"root": str(root)})
    assert isinstance(train, P3M10k) and len(train) == 2 and train.target_names == ("alpha",)
    sample = train.load(0)
    assert sample.name == "p_0a2b1b9a" and sample.image.shape == (10, 12, 3) and set(sample.targets) == {"alpha"}
    matte = sample.targets["alpha"]
    assert matte.dtype == np.float32 and matte[0, 0] == np.float32(128 / 255) and matte[0, 6] == 1 and matte[1, 0] == 0
    for split in ("P3M-500-P", "P3M-500-NP"):
        val = P3M10k(root, split)
        assert val.target_names == ("alpha", "trimap")
        np.testing.assert_array_equal(val.load(1).targets["trimap"], trimap)
    assert P3M10k(root, "P3M-500-NP", trimap=False).target_names == ("alpha",)
    with pytest.raises(ValueError, match="split must be one of train, P3M-500-P, P3M-500-NP"):
        P3M10k(root, "test")
    with pytest.raises(FileNotFoundError, match=r"P3M10k train: folder .*nowhere.*blurred_image not found"):
        P3M10k(tmp_path / "nowhere")
    os.remove(root / "train" / "mask" / "p_1c3d.png")
    with pytest.raises(FileNotFoundError, match=r"P3M10k train: 1 of 4 files missing.*mask/p_1c3d\.png"):
        P3M10k(root)
    _save_image(root / "validation/P3M-500-P/mask/p_1c3d.png", np.full((10, 12, 3), (1, 2, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"p_1c3d\.png: a colour image"):
        P3M10k(root, "P3M-500-P").load(1)


# ------------------------------------------------------------------------------------------------------ DIS5K


def test_dis5k_threshold_splits_and_errors(tmp_path):
    root = tmp_path / "DIS5K"
    gt = np.array([[0, 128, 129, 255]], dtype=np.uint8).repeat(3, axis=0)
    for subset in ("DIS-TR", "DIS-VD", "DIS-TE1", "DIS-TE2", "DIS-TE3", "DIS-TE4"):
        for name in ("1#Accessories#1#Bag#2339506821_83cf9f1d22_o", "2#Aircraft#5#Kite#x"):
            _save_image(root / subset / "im" / f"{name}.jpg", np.full((3, 4, 3), 10, dtype=np.uint8))
            _save_image(root / subset / "gt" / f"{name}.png", gt)
    data = build_dataset("dis5k", {"root": str(root)})
    assert isinstance(data, DIS5K) and len(data) == 2
    sample = data.load(0)
    assert sample.name == "DIS-TR/1#Accessories#1#Bag#2339506821_83cf9f1d22_o"
    mask = sample.targets["mask"]
    assert mask.dtype == np.uint8 and mask.tolist() == [[0, 0, 1, 1]] * 3  # IS-Net's gt > 128
    assert data[0]["mask"].dtype == torch.int64
    test = DIS5K(root, "DIS-TE")
    assert len(test) == 8 and [test.load(i).name.split("/")[0] for i in (0, 2, 4, 6)] == [
        "DIS-TE1", "DIS-TE2", "DIS-TE3", "DIS-TE4"
    ]  # fmt: skip
    with pytest.raises(ValueError, match="DIS5K: split must be one of"):
        DIS5K(root, "DIS-TE5")
    with pytest.raises(FileNotFoundError, match=r"DIS5K DIS-TR: folder .*nowhere.*im not found"):
        DIS5K(tmp_path / "nowhere")
    os.remove(root / "DIS-VD" / "gt" / "2#Aircraft#5#Kite#x.png")
    with pytest.raises(FileNotFoundError, match=r"DIS5K DIS-VD: 1 of 4 files missing.*Kite#x\.png"):
        DIS5K(root, "DIS-VD")
