"""Datasets on tiny fixture trees written in the real on-disk layouts (NYU sync + labeled .mat, KITTI, folders)."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from vpd.data.folder import ImageFolderDepth
from vpd.data.kitti import KITTIEigen, kb_crop_box
from vpd.data.nyuv2 import NYU_SCENE_CLASSES, NYUv2Labeled, NYUv2Sync, nyu_scene_class_id

H, W = 24, 32  # small frames; nothing in the sync loader may assume 480x640


def _save_rgb(path, value: int, height: int = H, width: int = W) -> np.ndarray:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image = np.full((height, width, 3), value, dtype=np.uint8)
    Image.fromarray(image).save(path, quality=100) if str(path).endswith(".jpg") else Image.fromarray(image).save(path)
    return image


def _save_depth(path, stored: np.ndarray) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(stored.astype(np.uint16)).save(path)


# ------------------------------------------------------------------------------------------------------ NYU ids


def test_nyu_class_list_and_id_rule():
    assert NYU_SCENE_CLASSES == (  # official nyu_class_list.json order: ids index the checkpoints' embeddings
        "printer_room", "bathroom", "living_room", "study", "conference_room", "study_room", "kitchen",
        "home_office", "bedroom", "dinette", "playroom", "indoor_balcony", "laundry_room", "basement",
        "excercise_room", "foyer", "home_storage", "cafe", "furniture_store", "office_kitchen", "student_lounge",
        "dining_room", "reception_room", "computer_lab", "classroom", "office", "bookstore",
    )  # fmt: skip
    assert len(NYU_SCENE_CLASSES) == 27
    assert NYU_SCENE_CLASSES[:4] == ("printer_room", "bathroom", "living_room", "study")
    assert NYU_SCENE_CLASSES[14] == "excercise_room" and NYU_SCENE_CLASSES[-1] == "bookstore"
    assert nyu_scene_class_id("study_room_0005_rgb_00045.jpg") == 3  # "study" precedes "study_room"
    assert nyu_scene_class_id("office_kitchen_0001_rgb_00001.jpg") == 6  # "kitchen" precedes "office_kitchen"
    assert nyu_scene_class_id("office_0003_rgb_00001.jpg") == 25
    assert nyu_scene_class_id("bathroom_rgb_00045.jpg") == 1
    assert nyu_scene_class_id("garage_0001_rgb_00001.jpg") == -1


# ----------------------------------------------------------------------------------------------------- NYU sync


@pytest.fixture
def nyu_root(tmp_path):
    """``nyu_depth_v2/{sync,official_splits/test}`` with the BTS/VPD file naming, plus both list forms."""
    root = tmp_path / "nyu_depth_v2"
    train = [("kitchen_0028b", "00045"), ("study_room_0005", "00002"), ("office_kitchen_0001", "00010")]
    for i, (scene, frame) in enumerate(train):
        _save_rgb(root / "sync" / scene / f"rgb_{frame}.jpg", 40 * i)
        _save_depth(root / "sync" / scene / f"sync_depth_{frame}.png", np.full((H, W), 1000 * (i + 1)))
    lines = [f"/{scene}/rgb_{frame}.jpg /{scene}/sync_depth_{frame}.png 518.8579" for scene, frame in train]
    (tmp_path / "train_list.txt").write_text("\n".join(lines) + "\n")

    depth = np.arange(H * W, dtype=np.uint16).reshape(H, W)
    depth[0, 0] = 0
    for scene, frame in [("bathroom", "00045"), ("study_room", "00007")]:
        _save_rgb(root / "official_splits" / "test" / scene / f"rgb_{frame}.jpg", 200)
        _save_depth(root / "official_splits" / "test" / scene / f"sync_depth_{frame}.png", depth)
    (tmp_path / "test_list.txt").write_text(
        "/bathroom/rgb_00045.jpg /bathroom/sync_depth_00045.png\n\n/study_room/rgb_00007.jpg "
        "/study_room/sync_depth_00007.png\n"
    )
    return root


def test_nyu_sync_train_with_three_column_list(nyu_root):
    data = NYUv2Sync(nyu_root, "train", filelist=nyu_root.parent / "train_list.txt")
    assert len(data) == 3 and data.class_names == NYU_SCENE_CLASSES
    samples = [data.load(i) for i in range(3)]
    assert [s.name for s in samples] == [
        "kitchen_0028b/rgb_00045",
        "study_room_0005/rgb_00002",
        "office_kitchen_0001/rgb_00010",
    ]
    assert [s.class_id for s in samples] == [6, 3, 6]
    for i, s in enumerate(samples):
        assert s.image.shape == (H, W, 3) and s.image.dtype == np.uint8
        assert s.depth is not None and s.depth.dtype == np.float32
        np.testing.assert_allclose(s.depth, float(i + 1))  # PNG millimetres / 1000
    item = data[1]
    assert item["image"].shape == (3, H, W) and item["depth"].shape == (1, H, W) and int(item["class_id"]) == 3


def test_nyu_sync_test_with_two_column_list_and_depth_scale(nyu_root):
    data = NYUv2Sync(str(nyu_root), split="test", filelist=str(nyu_root.parent / "test_list.txt"))
    assert len(data) == 2
    sample = data.load(0)
    assert sample.name == "bathroom/rgb_00045" and sample.class_id == 1
    assert sample.depth is not None and sample.depth[0, 0] == 0.0
    assert sample.depth[0, 1] == np.float32(0.001) and sample.depth[-1, -1] == np.float32((H * W - 1) / 1000)
    assert data.load(1).class_id == 3  # study_room -> "study"


def test_nyu_sync_discovers_pairs_without_list(nyu_root):
    listed = NYUv2Sync(nyu_root, "train", filelist=nyu_root.parent / "train_list.txt")
    found = NYUv2Sync(nyu_root, "train")
    assert found.image_paths == sorted(listed.image_paths) and found.depth_paths == sorted(listed.depth_paths)
    assert [found.load(i).name for i in range(3)] == sorted(listed.load(i).name for i in range(3))
    assert len(NYUv2Sync(nyu_root, "test")) == 2


def test_nyu_sync_missing_files_one_error(nyu_root):
    os.remove(nyu_root / "sync" / "study_room_0005" / "sync_depth_00002.png")
    with pytest.raises(FileNotFoundError, match=r"1 of 6 files missing.*sync_depth_00002\.png"):
        NYUv2Sync(nyu_root, "train", filelist=nyu_root.parent / "train_list.txt")
    with pytest.raises(FileNotFoundError, match=r"1 of 6 files missing"):
        NYUv2Sync(nyu_root, "train")  # discovery expects the depth of every rgb too
    with pytest.raises(FileNotFoundError, match="nolist"):
        NYUv2Sync(nyu_root, "train", filelist=nyu_root / "nolist.txt")
    with pytest.raises(FileNotFoundError, match="official_splits"):
        NYUv2Sync(nyu_root.parent / "elsewhere", "test")


@pytest.mark.parametrize(
    "bad_line", ["/kitchen_0028b/rgb_00045.jpg", "/a/rgb.jpg /a/d.png focal", "/a/rgb.jpg /a/d.png 1 2", "a None"]
)
def test_nyu_sync_malformed_line_names_file_and_line(nyu_root, bad_line):
    path = nyu_root.parent / "bad_list.txt"
    path.write_text("/kitchen_0028b/rgb_00045.jpg /kitchen_0028b/sync_depth_00045.png\n" + bad_line + "\n")
    with pytest.raises(ValueError, match=r"bad_list\.txt:2: expected 'rgb_path depth_path \[focal\]'"):
        NYUv2Sync(nyu_root, "train", filelist=path)
    with pytest.raises(ValueError, match="split"):
        NYUv2Sync(nyu_root, "val")


# -------------------------------------------------------------------------------------------------- NYU labeled

MAT_H, MAT_W = 20, 24  # small but asymmetric and big enough for the 7-pixel border


@pytest.fixture
def nyu_mat(tmp_path):
    """``nyu_depth_v2_labeled.mat`` in its MATLAB v7.3 layout + ``splits.mat`` (v5, 1-based indices)."""
    h5py = pytest.importorskip("h5py")
    scipy_io = pytest.importorskip("scipy.io")
    n = 4
    rows, cols = np.meshgrid(np.arange(MAT_H), np.arange(MAT_W), indexing="ij")
    images = np.zeros((n, MAT_H, MAT_W, 3), dtype=np.uint8)  # what the loader must return (before the border)
    for i in range(n):
        images[i, ..., 0] = rows + 10 * i
        images[i, ..., 1] = cols
        images[i, ..., 2] = 255 - i
    raw = np.stack([rows * 0.1 + cols * 0.01 + i for i in range(n)]).astype(np.float32)
    raw[:, 0, :] = 0.0  # invalid raw pixels
    dense = raw + 0.5
    scenes = ["kitchen", "study_room", "office_kitchen", "bathroom"]
    mat = tmp_path / "nyu_depth_v2_labeled.mat"
    with h5py.File(mat, "w") as f:
        # column-major MATLAB arrays appear axis-reversed in HDF5
        f.create_dataset("images", data=images.transpose(0, 3, 2, 1))  # [N, 3, W, H]
        f.create_dataset("rawDepths", data=raw.transpose(0, 2, 1))  # [N, W, H]
        f.create_dataset("depths", data=dense.transpose(0, 2, 1))
        refs = f.create_dataset("sceneTypes", (1, n), dtype=h5py.ref_dtype)
        group = f.create_group("#refs#")
        for i, scene in enumerate(scenes):
            chars = group.create_dataset(f"s{i}", data=np.array([[ord(c)] for c in scene], dtype=np.uint16))
            refs[0, i] = chars.ref
    splits = tmp_path / "splits.mat"
    scipy_io.savemat(splits, {"testNdxs": np.array([[1.0], [3.0], [4.0]]), "trainNdxs": np.array([[2.0]])})
    return mat, splits, images, raw, dense


def test_nyu_labeled_layout_transposition_and_border(nyu_mat):
    mat, splits, images, raw, _ = nyu_mat
    plain = NYUv2Labeled(mat, splits, black_border=False)
    assert len(plain) == 3
    sample = plain.load(1)  # testNdxs[1] = 3 (1-based) -> frame 2
    assert sample.image.shape == (MAT_H, MAT_W, 3) and sample.depth is not None and sample.depth.shape == (MAT_H, MAT_W)
    np.testing.assert_array_equal(sample.image, images[2])
    assert sample.image[5, 1, 0] == 5 + 20 and sample.image[5, 1, 1] == 1  # rows run down, cols across
    np.testing.assert_array_equal(sample.depth, raw[2])
    assert sample.name == "office_kitchen/rgb_00002" and sample.class_id == 6

    framed = NYUv2Labeled(mat, splits).load(0)
    inside = np.zeros((MAT_H, MAT_W), bool)
    inside[7 : MAT_H - 6, 7 : MAT_W - 8] = True  # rows 7:474, cols 7:632 at 480x640
    np.testing.assert_array_equal(framed.image[inside], images[0][inside])
    assert not framed.image[~inside].any()
    assert framed.name == "kitchen/rgb_00000" and framed.class_id == 6


def test_nyu_labeled_train_split_and_dense_depth(nyu_mat):
    mat, splits, _, _, dense = nyu_mat
    train = NYUv2Labeled(mat, splits, split="train", depth_key="depths")
    assert len(train) == 1
    sample = train.load(0)
    assert sample.name == "study_room/rgb_00001" and sample.class_id == 3
    np.testing.assert_array_equal(sample.depth, dense[1])


def test_nyu_labeled_pickles_without_handle_and_works_in_workers(nyu_mat):
    mat, splits, images, *_ = nyu_mat
    data = NYUv2Labeled(mat, splits, black_border=False)
    data.load(0)  # opens the HDF5 handle in this process
    assert data._file is not None
    clone = pickle.loads(pickle.dumps(data))
    assert clone._file is None
    np.testing.assert_array_equal(clone.load(2).image, images[3])
    loader = torch.utils.data.DataLoader(data, batch_size=3, num_workers=1)
    batch = next(iter(loader))
    assert batch["image"].shape == (3, 3, MAT_H, MAT_W)
    data.close()


def test_nyu_labeled_errors(nyu_mat, tmp_path):
    mat, splits, *_ = nyu_mat
    with pytest.raises(FileNotFoundError, match=r"1 of 2 files missing.*nope\.mat"):
        NYUv2Labeled(tmp_path / "nope.mat", splits)
    scipy_io = pytest.importorskip("scipy.io")
    bad = tmp_path / "bad_splits.mat"
    scipy_io.savemat(bad, {"testNdxs": np.array([[0.0], [5.0]]), "trainNdxs": np.array([[1.0]])})
    with pytest.raises(ValueError, match=r"2 test indices outside 1\.\.4"):
        NYUv2Labeled(mat, bad)
    with pytest.raises(ValueError, match="depth_key"):
        NYUv2Labeled(mat, splits, depth_key="labels")
    with pytest.raises(ValueError, match="not an HDF5"):
        NYUv2Labeled(splits, splits)


# -------------------------------------------------------------------------------------------------------- KITTI

KH, KW = 375, 1242  # a real KITTI frame size: the KB crop is only defined for frames >= 352x1216


@pytest.fixture
def kitti_root(tmp_path):
    root = tmp_path / "kitti"
    rows, cols = np.meshgrid(np.arange(KH), np.arange(KW), indexing="ij")
    image = np.stack([rows % 256, cols % 256, cols // 256], axis=2).astype(np.uint8)
    depth = ((rows * 7 + cols) % 20000).astype(np.uint16)
    drive = "2011_09_26_drive_0002_sync"
    frames = ["0000000069", "0000000054", "0000000042"]
    for frame in frames:
        path = root / "raw_data" / "2011_09_26" / drive / "image_02" / "data" / f"{frame}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path, compress_level=1)
    for frame in frames[:2]:  # the third frame has no ground truth
        _save_depth(
            root / "data_depth_annotated" / "val" / drive / "proj_depth" / "groundtruth" / "image_02" / f"{frame}.png",
            depth,
        )
    vpd_lines = [
        f"/raw_data/2011_09_26/{drive}/image_02/data/{f}.png "
        f"/data_depth_annotated/val/{drive}/proj_depth/groundtruth/image_02/{f}.png"
        for f in frames[:2]
    ]
    (tmp_path / "vpd_test.txt").write_text("\n".join(vpd_lines) + "\n")
    bts_lines = [
        f"2011_09_26/{drive}/image_02/data/{f}.png {drive}/proj_depth/groundtruth/image_02/{f}.png 721.5377"
        for f in frames[:2]
    ] + [f"2011_09_26/{drive}/image_02/data/{frames[2]}.png None 721.5377"]
    (tmp_path / "bts_test.txt").write_text("\n".join(bts_lines) + "\n")
    return root, image, depth


def test_kitti_vpd_list_kb_crop_and_scale(kitti_root):
    root, image, depth = kitti_root
    data = KITTIEigen(root, root.parent / "vpd_test.txt")
    assert len(data) == 2 and data.class_names == ()
    sample = data.load(0)
    top, left = kb_crop_box(KH, KW)
    assert (top, left) == (KH - 352, (KW - 1216) // 2) == (23, 13)
    assert sample.image.shape == (352, 1216, 3) and sample.depth is not None and sample.depth.shape == (352, 1216)
    np.testing.assert_array_equal(sample.image, image[23:375, 13:1229])
    np.testing.assert_array_equal(sample.depth, depth[23:375, 13:1229].astype(np.float32) / 256.0)
    assert sample.class_id == -1
    assert sample.name == "raw_data/2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069"
    full = KITTIEigen(root, root.parent / "vpd_test.txt", kb_crop=False).load(0)
    assert full.image.shape == (KH, KW, 3)


def test_kitti_bts_list_with_none_and_split_roots(kitti_root):
    root, *_ = kitti_root
    kwargs = {"image_root": root / "raw_data", "depth_root": root / "data_depth_annotated"}  # train/ val/ searched
    with_gt = KITTIEigen(root, root.parent / "bts_test.txt", **kwargs)
    assert len(with_gt) == 2
    assert with_gt.load(1).name == "2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000054"
    everything = KITTIEigen(root, root.parent / "bts_test.txt", skip_missing_gt=False, **kwargs)
    assert len(everything) == 3
    assert everything.load(2).depth is None and everything.load(2).image.shape == (352, 1216, 3)
    assert "depth" not in everything[2]
    assert everything.load(0).depth is not None


def test_kitti_missing_depth_error(kitti_root):
    root, *_ = kitti_root
    gt = root / "data_depth_annotated" / "val" / "2011_09_26_drive_0002_sync" / "proj_depth" / "groundtruth"
    os.remove(gt / "image_02" / "0000000054.png")
    with pytest.raises(FileNotFoundError, match=r"1 of 2 files missing.*0000000054\.png"):
        KITTIEigen(root, root.parent / "vpd_test.txt")
    (root.parent / "broken.txt").write_text("a.png b.png\na.png None 7.0\nonly_one\n")
    with pytest.raises(ValueError, match=r"broken\.txt:3"):
        KITTIEigen(root, root.parent / "broken.txt")
    with pytest.raises(ValueError, match="at least 352x1216"):
        kb_crop_box(300, 1242)


# ------------------------------------------------------------------------------------------------------- folder


@pytest.fixture
def folder_tree(tmp_path):
    images, depths = tmp_path / "images", tmp_path / "depths"
    _save_rgb(images / "a.jpg", 10)
    _save_rgb(images / "sub" / "b.png", 20, height=8, width=12)
    _save_depth(depths / "a.png", np.full((H, W), 1500))
    _save_depth(depths / "sub" / "b.png", np.full((8, 12), 250))
    return images, depths


def test_folder_with_depths(folder_tree):
    images, depths = folder_tree
    data = ImageFolderDepth(images, depths, class_names=("indoor", "outdoor"), scene="outdoor")
    assert len(data) == 2 and data.class_names == ("indoor", "outdoor")
    a, b = data.load(0), data.load(1)
    assert (a.name, b.name) == ("a", "sub/b") and a.class_id == b.class_id == 1
    np.testing.assert_allclose(a.depth, 1.5)
    np.testing.assert_allclose(b.depth, 0.25)
    assert b.image.shape == (8, 12, 3)
    scaled = ImageFolderDepth(images, depths, depth_scale=256.0).load(1)
    np.testing.assert_allclose(scaled.depth, 250 / 256)


def test_folder_without_depths_and_lists(folder_tree, tmp_path):
    images, _ = folder_tree
    data = ImageFolderDepth(images)
    sample = data.load(0)
    assert sample.depth is None and sample.class_id == -1 and data.class_names == ()
    assert "depth" not in data[0]
    (tmp_path / "list.txt").write_text("images/sub/b.png\n\nimages/a.jpg\n")
    listed = ImageFolderDepth(tmp_path / "list.txt")
    assert [listed.load(i).name for i in range(2)] == ["sub/b", "a"]  # list order kept, names relative to common dir
    seq = ImageFolderDepth([str(images / "sub" / "b.png")])
    assert seq.load(0).name == "b"


def test_folder_errors(folder_tree):
    images, depths = folder_tree
    os.remove(depths / "sub" / "b.png")
    with pytest.raises(FileNotFoundError, match=r"1 of 2 files missing.*b\.png"):
        ImageFolderDepth(images, depths)
    with pytest.raises(ValueError, match="scene"):
        ImageFolderDepth(images, scene="kitchen")
    with pytest.raises(FileNotFoundError, match="depths folder"):
        ImageFolderDepth(images, depths / "nope")
