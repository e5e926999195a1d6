"""Tests of the procedural RGB-D scene generator (``vpd.data.synthetic``): determinism, ground-truth geometry,
object categories and instances, and the dataset wrapper."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vpd.data.base import IGNORE_INDEX, Sample
from vpd.data.classes import ADE20K_CLASSES
from vpd.data.synthetic import (
    DECOR_CATEGORIES,
    FURNITURE_CATEGORIES,
    SCENE_CLASSES,
    SEMANTIC_CLASSES,
    SEMANTIC_TO_ADE20K,
    SyntheticDataset,
    SyntheticScene,
    render_scene,
    to_ade20k,
)

FLOOR, CEILING, WALL = (SEMANTIC_CLASSES.index(n) for n in ("floor", "ceiling", "wall"))
# What is painted on the room's surfaces rather than built of primitives.
ROOM_SURFACES = tuple(
    SEMANTIC_CLASSES.index(n) for n in ("floor", "ceiling", "wall", "light", *DECOR_CATEGORIES.values())
)


def _rays(scene: SyntheticScene) -> np.ndarray:
    """``K^-1 [c + 0.5, r + 0.5, 1]`` per pixel, ``[H, W, 3]`` (z = 1), in float64."""
    h, w = scene.depth.shape
    k = scene.intrinsics.astype(np.float64)
    rows, cols = np.mgrid[0:h, 0:w] + 0.5
    return np.stack([(cols - k[0, 2]) / k[0, 0], (rows - k[1, 2]) / k[1, 1], np.ones((h, w))], axis=-1)


def _points(scene: SyntheticScene) -> np.ndarray:
    """Camera-frame 3-D points ``[H, W, 3]`` from z-depth."""
    return _rays(scene) * scene.depth.astype(np.float64)[..., None]


def _fit_plane(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares plane through ``[n, 3]`` points: unit normal and RMS residual."""
    centred = points - points.mean(axis=0)
    _, sing, vt = np.linalg.svd(centred, full_matrices=False)
    return vt[-1], float(sing[-1] / np.sqrt(len(points)))


def test_deterministic_and_seed_dependent() -> None:
    a, b = render_scene(7, 48, 64), render_scene(7, 48, 64)
    for name in ("image", "depth", "normals", "semantic", "instance", "intrinsics"):
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name
    assert a.scene_class == b.scene_class
    c = render_scene(8, 48, 64)
    assert not np.array_equal(a.depth, c.depth)
    assert not np.array_equal(a.image, c.image)


@pytest.mark.parametrize(("seed", "height", "width"), [(0, 48, 64), (1, 32, 48), (2, 37, 53), (3, 64, 48), (4, 60, 80)])
def test_shapes_dtypes_and_ranges(seed: int, height: int, width: int) -> None:
    s = render_scene(seed, height, width)
    assert s.image.shape == (height, width, 3) and s.image.dtype == np.uint8
    assert s.depth.shape == (height, width) and s.depth.dtype == np.float32
    assert s.normals.shape == (height, width, 3) and s.normals.dtype == np.float32
    assert s.semantic.shape == (height, width) and s.semantic.dtype == np.uint8
    assert s.instance.shape == (height, width) and s.instance.dtype == np.int32
    assert s.intrinsics.shape == (3, 3) and s.intrinsics.dtype == np.float32
    assert 0 <= s.scene_class < len(SCENE_CLASSES)
    assert np.isfinite(s.depth).all() and (s.depth > 0).all()
    assert s.depth.min() > 0.3 and s.depth.max() < 15.0  # an indoor room, NYU-like range
    assert s.semantic.max() < len(SEMANTIC_CLASSES)
    np.testing.assert_allclose(np.linalg.norm(s.normals, axis=-1), 1.0, atol=1e-5)
    assert ((s.normals * _rays(s)).sum(axis=-1) < 0).all()  # every normal faces the camera
    k = s.intrinsics
    assert k[0, 0] == k[1, 1] and k[0, 2] == width / 2 and k[1, 2] == height / 2 and k[2, 2] == 1
    hfov = np.degrees(2 * np.arctan(width / 2 / k[0, 0]))
    assert 55.0 <= hfov <= 70.0
    assert s.image.std() > 10  # not a blank or constant image


def test_scene_class_argument_and_validation() -> None:
    for c in range(len(SCENE_CLASSES)):
        assert render_scene(5, 24, 32, scene_class=c).scene_class == c
    with pytest.raises(ValueError):
        render_scene(5, 24, 32, scene_class=len(SCENE_CLASSES))
    with pytest.raises(ValueError):
        render_scene(5, 0, 32)
    # 64-bit seeds (as the dataset derives them) work.
    assert render_scene(2**63 + 12345, 16, 24).depth.shape == (16, 24)


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_same_scene_at_two_resolutions(seed: int) -> None:
    small, large = render_scene(seed, 60, 80), render_scene(seed, 120, 160)
    assert small.scene_class == large.scene_class
    np.testing.assert_allclose(large.intrinsics[:2], 2 * small.intrinsics[:2], rtol=1e-6)
    # A 2x2 block of the large render is centred on the matching small pixel.
    blocks = large.depth.reshape(60, 2, 80, 2).transpose(0, 2, 1, 3).reshape(60, 80, 4)
    smooth = blocks.max(-1) / blocks.min(-1) < 1.02  # away from depth discontinuities
    assert smooth.mean() > 0.8
    rel = np.abs(blocks.mean(-1) - small.depth) / small.depth
    assert (rel[smooth] < 0.01).mean() > 0.97
    assert (np.median(blocks, -1) == 0).sum() == 0
    same_label = (large.semantic[::2, ::2] == small.semantic) | (large.semantic[1::2, 1::2] == small.semantic)
    assert same_label.mean() > 0.93
    # The images agree too (textures are filtered to the pixel footprint, so they do not alias differently).
    img = large.image.astype(np.float64).reshape(60, 2, 80, 2, 3).mean(axis=(1, 3))
    assert np.median(np.abs(img - small.image)) < 6


@pytest.mark.parametrize("first_seed", [0, 20, 40, 60])
def test_floor_and_ceiling_geometry(first_seed: int) -> None:
    # Most views show the floor (close-ups of furniture may not): take the first of a few seeds that does.
    for seed in range(first_seed, first_seed + 4):
        s = render_scene(seed, 72, 96)
        if (s.semantic == FLOOR).sum() > 200:
            break
    else:
        pytest.fail(f"no floor in view in seeds {first_seed}..{first_seed + 3}")
    pts = _points(s)
    floor, ceiling, walls = s.semantic == FLOOR, s.semantic == CEILING, s.semantic == WALL

    # All floor pixels share one normal: the camera's up vector, i.e. roughly -y with a small pitch and roll.
    up = s.normals[floor].astype(np.float64)
    assert np.abs(up - up[0]).max() < 1e-5
    up = up[0] / np.linalg.norm(up[0])
    assert np.degrees(np.arccos(-up[1])) < 25

    # Back-projected floor pixels lie on the plane n . P = -camera height, at a realistic camera height, and the
    # plane fitted through them (from depth alone) has the normal reported in `normals`.
    heights = -(pts[floor] @ up)
    assert heights.std() < 1e-4
    assert 1.0 - 1e-3 < heights.mean() < 1.8 + 1e-3
    normal, rms = _fit_plane(pts[floor])
    assert rms < 1e-4
    assert abs(abs(normal @ up) - 1.0) < 1e-6

    # Depth is z-depth, not the distance along the ray: read as ray length, the floor would not be planar.
    unit = _rays(s) / np.linalg.norm(_rays(s), axis=-1, keepdims=True)
    _, rms_euclid = _fit_plane((unit * s.depth[..., None])[floor])
    assert rms_euclid > 100 * max(rms, 1e-5)

    # Walls are vertical; the ceiling is parallel to the floor, 2.4-3.2 m above it.
    assert np.abs(s.normals[walls] @ up).max() < 1e-5
    if ceiling.sum() > 10:
        np.testing.assert_allclose(s.normals[ceiling], np.broadcast_to(-up, (int(ceiling.sum()), 3)), atol=1e-5)
        room_height = heights.mean() + (pts[ceiling] @ up).mean()
        assert 2.4 - 1e-3 < room_height < 3.2 + 1e-3


@pytest.mark.parametrize("seed", [1, 5, 9])
def test_normals_consistent_with_depth(seed: int) -> None:
    """On any smooth patch of a plane, sphere or cylinder, (P2 - P1) . (n1 + n2) = 0 for neighbouring pixels."""
    s = render_scene(seed, 96, 128)
    pts, n, d, sem = _points(s), s.normals.astype(np.float64), s.depth, s.semantic
    checked = 0
    for axis in (0, 1):
        p1, p2 = pts, np.roll(pts, -1, axis)
        n1, n2 = n, np.roll(n, -1, axis)
        same = (sem == np.roll(sem, -1, axis)) & (np.linalg.norm(n1 - n2, axis=-1) < 0.3)
        same &= np.abs(d - np.roll(d, -1, axis)) < 0.03 * d
        same[(-1, slice(None)) if axis == 0 else (slice(None), -1)] = False  # no wrap-around pairs
        err = np.abs(((p2 - p1) * (n1 + n2)).sum(-1))[same]
        checked += err.size
        assert (err < 1e-4 * d[same]).mean() > 0.99
    assert checked > 0.8 * 2 * d.size
    # Primitives are in view and their normals vary (curved or differently oriented faces).
    objects = ~np.isin(s.semantic, ROOM_SURFACES)
    assert objects.any()


def _features(s: SyntheticScene) -> np.ndarray:
    img = s.image.reshape(-1, 3) / 255.0
    labels = np.bincount(s.semantic.ravel(), minlength=len(SEMANTIC_CLASSES)) / s.semantic.size
    return np.concatenate([[np.median(s.depth), s.depth.max()], img.mean(0), img.std(0), labels])


def test_room_types_differ() -> None:
    seeds = range(100, 116)
    scenes = [[render_scene(seed, 24, 32, scene_class=c) for seed in seeds] for c in range(len(SCENE_CLASSES))]
    # Room sizes follow the room type.
    depth = {SCENE_CLASSES[c]: np.mean([np.median(s.depth) for s in scenes[c]]) for c in range(len(SCENE_CLASSES))}
    assert depth["bathroom"] < depth["bedroom"] < depth["living_room"]
    assert depth["bathroom"] < depth["office"]
    # The same seed gives a different room under each room type.
    for i in range(len(SCENE_CLASSES)):
        for j in range(i + 1, len(SCENE_CLASSES)):
            assert all(a.image.tobytes() != b.image.tobytes() for a, b in zip(scenes[i], scenes[j]))
    # Room types are told apart from simple image/depth statistics well above chance (1 in 5): a nearest-centroid
    # classifier fitted on half the seeds, scored on the other half.
    x = np.array([[_features(s) for s in per_class] for per_class in scenes])  # [class, seed, feature]
    train, test = x[:, ::2], x[:, 1::2]
    mean, std = train.reshape(-1, x.shape[-1]).mean(0), train.reshape(-1, x.shape[-1]).std(0) + 1e-9
    centroids = ((train - mean) / std).mean(axis=1)
    z = (test - mean) / std
    predicted = np.argmin(((z[:, :, None, :] - centroids[None, None]) ** 2).sum(-1), axis=-1)
    accuracy = (predicted == np.arange(len(SCENE_CLASSES))[:, None]).mean()
    assert accuracy > 0.4


def test_primitive_intersections_are_exact() -> None:
    """Random rays against each primitive: hits lie on the surface with the right normal, and nothing is missed."""
    from vpd.data.synthetic import _BOX, _CYLINDER, _SPHERE, _hit, _Material, _Prim, _prim_normals, _shadowed

    mat = _Material("solid", (0.5, 0.5, 0.5))
    prims = [
        _Prim(_BOX, (0.3, 0.4, -0.2), (0.5, 0.4, 0.2), mat, yaw=0.5),
        _Prim(_SPHERE, (0.1, 0.3, 0.2), (0.3, 0.3, 0.3), mat),
        _Prim(_CYLINDER, (-0.2, 0.5, 0.1), (0.25, 0.5, 0.25), mat),
    ]
    rng = np.random.default_rng(0)
    n = 4000
    for p in prims:
        c = np.asarray(p.center)
        direction = rng.normal(size=(n, 3))
        origin = c + 2.5 * direction / np.linalg.norm(direction, axis=1, keepdims=True)  # a shell around the shape
        target = c + rng.uniform(-1.4, 1.4, size=(n, 3)) * max(p.size)  # aimed near the shape, some misses
        d = target - origin
        t = _hit(p, origin[:, 0], origin[:, 1], origin[:, 2], d[:, 0], d[:, 1], d[:, 2], 1e-9)

        def inside(q: np.ndarray, p: _Prim = p, c: np.ndarray = c) -> np.ndarray:
            r = q - c
            if p.kind == _SPHERE:
                return np.linalg.norm(r, axis=-1) < p.size[0]
            if p.kind == _CYLINDER:
                return (np.hypot(r[..., 0], r[..., 2]) < p.size[0]) & (np.abs(r[..., 1]) < p.size[1])
            cy, sy = np.cos(p.yaw), np.sin(p.yaw)
            lx, lz = r[..., 0] * cy + r[..., 2] * sy, r[..., 2] * cy - r[..., 0] * sy
            return (np.abs(lx) < p.size[0]) & (np.abs(r[..., 1]) < p.size[1]) & (np.abs(lz) < p.size[2])

        hit = np.isfinite(t)
        assert 0.2 < hit.mean() < 0.95
        # Just past the hit is inside the shape, just before it is not: t is the first surface crossing.
        q = origin[hit] + t[hit, None] * d[hit]
        step = 1e-5 / np.linalg.norm(d[hit], axis=1, keepdims=True)
        assert inside(origin[hit] + (t[hit, None] + step) * d[hit]).mean() > 0.99
        assert not inside(origin[hit] + (t[hit, None] - step) * d[hit]).any()
        # No missed ray passes through the shape, and no hit ray enters it earlier.
        samples = np.linspace(0.0, 1.0, 400)[None, :, None]
        assert not inside(origin[~hit, None] + samples * d[~hit, None]).any()
        assert not inside(origin[hit, None] + samples * np.minimum(t[hit, None, None] - 1e-6, 1.0) * d[hit, None]).any()
        # Normals are unit, face the incoming ray and are perpendicular to the surface (finite-difference check).
        nx, ny, nz, *_ = _prim_normals(p, q[:, 0], q[:, 1], q[:, 2])
        normal = np.stack([nx, ny, nz], axis=1)
        np.testing.assert_allclose(np.linalg.norm(normal, axis=1), 1.0, atol=1e-9)
        assert ((normal * d[hit]).sum(1) < 0).mean() > 0.995
        assert not inside(q + 1e-4 * normal).any()
        assert inside(q - 1e-4 * normal).mean() > 0.99

    # Shadow rays: a box between a light and the floor blocks the floor right under it, not the floor beside it.
    light = np.array([0.3, 2.5, -0.2])
    floor_x = np.array([0.3, 0.35, 2.5, -2.0])
    blocked = _shadowed(prims[:1], light, floor_x, np.zeros(4), np.array([-0.2, -0.25, -0.2, 1.5]))
    assert blocked.tolist() == [True, True, False, False]


def test_dataset_items_are_tensors() -> None:
    ds = SyntheticDataset(3, height=32, width=48, seed=4)
    assert len(ds) == 3 and ds.class_names == SCENE_CLASSES
    item = ds[1]
    assert item["image"].shape == (3, 32, 48) and item["image"].dtype == torch.float32
    assert float(item["image"].min()) >= 0.0 and float(item["image"].max()) <= 1.0
    assert item["depth"].shape == (1, 32, 48) and item["depth"].dtype == torch.float32
    assert item["normals"].shape == (3, 32, 48) and item["normals"].dtype == torch.float32
    assert item["semantic"].shape == (32, 48) and item["semantic"].dtype == torch.int64  # labels batch as int64
    assert item["instance"].shape == (32, 48) and item["instance"].dtype == torch.int64
    assert item["class_id"].dtype == torch.long and 0 <= int(item["class_id"]) < len(SCENE_CLASSES)
    assert item["name"] == "synthetic_4_00001"

    scene = render_scene(ds.scene_seed(1), 32, 48)
    assert int(item["class_id"]) == scene.scene_class
    np.testing.assert_array_equal(item["depth"][0].numpy(), scene.depth)
    np.testing.assert_array_equal(item["image"].permute(1, 2, 0).mul(255).round().byte().numpy(), scene.image)
    np.testing.assert_array_equal(item["normals"].permute(1, 2, 0).numpy(), scene.normals)
    np.testing.assert_array_equal(item["semantic"].numpy(), scene.semantic)
    np.testing.assert_array_equal(item["instance"].numpy(), scene.instance)
    # The trainer's sampler indexes epoch * len + i: later epochs see the same (unaugmented) scene.
    np.testing.assert_array_equal(ds[1 + 2 * len(ds)]["depth"].numpy(), item["depth"].numpy())
    with pytest.raises(IndexError):
        ds.load(3)


def test_dataset_cache_and_transform() -> None:
    calls: list[int] = []

    def flip(sample: Sample, rng: np.random.Generator) -> Sample:
        calls.append(int(rng.integers(1 << 30)))
        sample.image[:] = sample.image[:, ::-1].copy()  # in place: must not leak into the cache
        assert sample.depth is not None
        return Sample(sample.image, {**sample.targets, "depth": sample.depth[:, ::-1].copy()}, sample.class_id)

    ds = SyntheticDataset(2, height=24, width=32, seed=9, transform=flip)
    first, again = ds[0], ds[0]
    torch.testing.assert_close(first["image"], again["image"])
    assert ds.scene(0) is ds.scene(0)  # cached
    np.testing.assert_array_equal(first["depth"][0].numpy(), ds.scene(0).depth[:, ::-1])
    assert calls[0] == calls[1]  # augmentation seeded by (seed, epoch, index)
    ds[2]  # epoch 1, index 0
    assert calls[2] != calls[0]
    uncached = SyntheticDataset(2, height=24, width=32, seed=9, cache=False)
    assert uncached.scene(0) is not uncached.scene(0)
    np.testing.assert_array_equal(uncached.scene(0).depth, ds.scene(0).depth)


def test_train_and_val_seeds_give_different_scenes() -> None:
    train = SyntheticDataset(6, height=24, width=32, seed=0)
    val = SyntheticDataset(6, height=24, width=32, seed=1)
    assert not {train.scene_seed(i) for i in range(6)} & {val.scene_seed(i) for i in range(6)}
    train_depths = [train.load(i).depth for i in range(6)]
    val_depths = [val.load(i).depth for i in range(6)]
    for a in train_depths:
        assert a is not None
        assert not any(np.array_equal(a, b) for b in val_depths)
    # Scenes within one set differ too, and the set covers several room types.
    assert len({d.tobytes() for d in train_depths if d is not None}) == 6
    assert len({train.load(i).class_id for i in range(6)}) >= 2


def test_semantic_classes_are_ade20k_names() -> None:
    assert len(set(SEMANTIC_CLASSES)) == len(SEMANTIC_CLASSES)
    assert all(name in ADE20K_CLASSES for name in SEMANTIC_CLASSES)
    assert list(SEMANTIC_TO_ADE20K) == sorted(SEMANTIC_TO_ADE20K)  # in ADE20K order
    assert all(ADE20K_CLASSES[i] == name for i, name in zip(SEMANTIC_TO_ADE20K, SEMANTIC_CLASSES))
    assert "bed " in SEMANTIC_CLASSES and "bed" not in SEMANTIC_CLASSES  # mmseg's spelling
    assert set(FURNITURE_CATEGORIES.values()) | set(DECOR_CATEGORIES.values()) <= set(SEMANTIC_CLASSES)
    assert FURNITURE_CATEGORIES["table"] == FURNITURE_CATEGORIES["round_table"] == "table"
    # to_ade20k: labels to ADE20K class ids, ignore kept, anything else refused.
    labels = np.array([[WALL, FLOOR], [SEMANTIC_CLASSES.index("bed "), IGNORE_INDEX]], dtype=np.uint8)
    ade = to_ade20k(labels)
    assert ade.dtype == np.uint8 and ade.shape == labels.shape
    assert ade.tolist() == [[ADE20K_CLASSES.index("wall"), ADE20K_CLASSES.index("floor")], [7, IGNORE_INDEX]]
    with pytest.raises(ValueError):
        to_ade20k(np.array([len(SEMANTIC_CLASSES)]))


def _count(s: SyntheticScene, name: str) -> int:
    return int((s.semantic == SEMANTIC_CLASSES.index(name)).sum())


def test_categories_follow_the_room_type() -> None:
    seeds = range(8)
    bedrooms = [render_scene(seed, 48, 64, scene_class=SCENE_CLASSES.index("bedroom")) for seed in seeds]
    bathrooms = [render_scene(seed, 48, 64, scene_class=SCENE_CLASSES.index("bathroom")) for seed in seeds]
    kitchens = [render_scene(seed, 48, 64, scene_class=SCENE_CLASSES.index("kitchen")) for seed in seeds]
    assert sum(_count(s, "bed ") > 20 for s in bedrooms) >= 6
    assert sum(_count(s, "toilet") + _count(s, "bathtub") > 20 for s in bathrooms) >= 6
    assert sum(_count(s, "counter") + _count(s, "refrigerator") > 20 for s in kitchens) >= 6
    for s in bedrooms:
        assert _count(s, "toilet") == _count(s, "bathtub") == _count(s, "refrigerator") == 0
    for s in bathrooms:
        assert _count(s, "bed ") == _count(s, "sofa") == _count(s, "refrigerator") == 0
    for s in bedrooms + bathrooms + kitchens:
        assert s.semantic.max() < len(SEMANTIC_CLASSES)  # every pixel shows an object: no 255 either


@pytest.mark.parametrize("seed", [0, 3, 21])
def test_floor_label_matches_floor_geometry(seed: int) -> None:
    s = render_scene(seed, 72, 96)
    floor = s.semantic == FLOOR
    assert floor.sum() > 200
    assert (s.instance[floor] == 1).all() and (s.semantic[s.instance == 1] == FLOOR).all()
    up = s.normals[floor][0].astype(np.float64)
    assert np.degrees(np.arccos(-up[1] / np.linalg.norm(up))) < 25  # the floor's normal points up (camera -y)
    # Conversely, every pixel on the floor plane (height 0, facing up) is labelled floor.
    pts = _points(s)
    height = -(pts @ up) - (-(pts[floor] @ up)).mean()
    on_floor = (np.abs(height) < 1e-3) & (np.abs(s.normals.astype(np.float64) @ up - 1.0) < 1e-4)
    np.testing.assert_array_equal(on_floor, floor)


@pytest.mark.parametrize("seed", [11, 12, 13, 14])
def test_instances(seed: int) -> None:
    small, large = render_scene(seed, 60, 80), render_scene(seed, 120, 160)
    for s in (small, large):
        ids = sorted(s.instance_categories)
        assert ids == list(range(1, len(ids) + 1))  # numbered 1..N, the room surfaces first
        assert [s.instance_categories[i] for i in range(1, 7)] == [FLOOR, CEILING, WALL, WALL, WALL, WALL]
        assert s.instance.min() >= 1 and set(np.unique(s.instance).tolist()) <= set(ids)
        # Every pixel of an instance has the instance's category.
        lut = np.zeros(len(ids) + 1, dtype=np.uint8)
        lut[ids] = [s.instance_categories[i] for i in ids]
        np.testing.assert_array_equal(s.semantic, lut[s.instance])
        # Furniture is in view.
        assert (s.instance > 6).any()
    # One seed numbers its objects the same at every resolution: the same objects, the same ids, and what one
    # resolution shows (beyond a sliver of pixels) the other shows too.
    assert small.instance_categories == large.instance_categories
    ids_small, n_small = np.unique(small.instance, return_counts=True)
    ids_large, n_large = np.unique(large.instance, return_counts=True)
    assert set(ids_small[n_small >= 3].tolist()) <= set(ids_large.tolist())
    assert set(ids_large[n_large >= 12].tolist()) <= set(ids_small.tolist())
    same = (large.instance[::2, ::2] == small.instance) | (large.instance[1::2, 1::2] == small.instance)
    assert same.mean() > 0.93


def test_furniture_labels_come_from_their_template() -> None:
    """A table built of boxes is a "table"; what stands on a piece of furniture is an object of its own."""
    from vpd.data.synthetic.furniture import _TEMPLATES
    from vpd.data.synthetic.layout import _make_scene
    from vpd.data.synthetic.primitives import _BOX

    assert set(_TEMPLATES) == set(FURNITURE_CATEGORIES)
    for template in _TEMPLATES.values():
        for seed in range(5):
            f = template(np.random.default_rng(seed))
            assert len(f.owner) == len(f.parts)
            assert set(f.owner) == set(range(len(f.items) + 1))  # every object has parts
            assert all(category in SEMANTIC_CLASSES for category in f.items)
    table = SEMANTIC_CLASSES.index("table")
    kinds = set()
    for seed in range(40):
        spec = _make_scene(np.random.default_rng(seed), SCENE_CLASSES.index("kitchen"))
        kinds |= {p.kind for p in spec.prims if spec.categories[p.instance] == table}
        assert all(p.instance > 6 for p in spec.prims)
    assert _BOX in kinds  # the rectangular tables' boxes


def test_dataset_semantic_classes_and_instance_targets() -> None:
    ds = SyntheticDataset(2, height=24, width=32, seed=3)
    assert ds.semantic_class_names == SEMANTIC_CLASSES and ds.class_names == SCENE_CLASSES
    sample = ds.load(0)
    scene = ds.scene(0)
    assert set(sample.targets) == {"depth", "normals", "semantic", "instance"}
    assert sample.targets["instance"].dtype == np.int32
    np.testing.assert_array_equal(sample.targets["instance"], scene.instance)
    assert sample.meta["instance_categories"] == scene.instance_categories
    sample.targets["instance"][:] = 0  # a copy: the cache is untouched
    assert ds.scene(0).instance.min() >= 1
