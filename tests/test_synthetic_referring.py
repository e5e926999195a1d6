"""Referring expressions on the synthetic scenes: determinism, one-instance masks, uniqueness, kinds."""

from __future__ import annotations

import numpy as np
import pytest

from vpd.data.synthetic import SEMANTIC_CLASSES
from vpd.data.synthetic.referring import (
    EXPRESSION_KINDS,
    ReferringExpression,
    SyntheticReferringDataset,
    colour_name,
    display_name,
    generate_expressions,
    resolve,
    scene_graph,
)

H, W = 96, 128


@pytest.fixture(scope="module")
def dataset() -> SyntheticReferringDataset:
    return SyntheticReferringDataset(24, H, W, seed=3, expressions_per_scene=4)


def test_deterministic_by_seed(dataset: SyntheticReferringDataset) -> None:
    again = SyntheticReferringDataset(24, H, W, seed=3, expressions_per_scene=4, cache=False)
    for i in (0, 5, 17, 95):
        a, b = dataset.load(i), again.load(i)
        assert a.text == b.text and a.name == b.name and a.meta == b.meta
        np.testing.assert_array_equal(a.targets["mask"], b.targets["mask"])
        np.testing.assert_array_equal(a.image, b.image)
    other = SyntheticReferringDataset(24, H, W, seed=4, expressions_per_scene=4)
    assert [other.load(i).text for i in range(8)] != [dataset.load(i).text for i in range(8)] or not np.array_equal(
        other.load(0).image, dataset.load(0).image
    )


def test_masks_are_one_nonempty_instance(dataset: SyntheticReferringDataset) -> None:
    assert len(dataset) == 96
    for i in range(0, len(dataset), 3):
        sample = dataset.load(i)
        mask = sample.targets["mask"]
        assert mask.dtype == np.uint8 and mask.shape == (H, W) and set(np.unique(mask)) <= {0, 1}
        assert mask.sum() >= 0.01 * H * W
        instance = dataset.scene(sample.meta["scene"]).instance
        ids = np.unique(instance[mask == 1])
        assert ids.tolist() == [sample.meta["target_id"]]
        np.testing.assert_array_equal(mask, instance == ids[0])  # the whole instance, nothing else
        assert sample.text is not None and sample.text.startswith("the ") and sample.meta["category"] in sample.text
        assert sample.meta["kind"] in EXPRESSION_KINDS


def test_expressions_are_unique_in_a_fresh_scene_graph(dataset: SyntheticReferringDataset) -> None:
    for scene_index in range(6):
        scene = dataset.scene(scene_index)
        graph = scene_graph(scene.instance, scene.instance_categories, scene.image, scene.depth)
        for expression in generate_expressions(graph, scene.instance.size):
            assert resolve(graph, expression) == [expression.target], expression
            target = graph[expression.target]
            assert not target.surface and target.pixels >= 0.01 * scene.instance.size
            same = [o for o in graph.values() if o.category == expression.category]
            if expression.kind == "category":
                assert len(same) == 1
            elif expression.kind == "colour":
                assert sum(o.colour == expression.attribute for o in same) == 1 and len(same) >= 2
            elif expression.kind == "size" and expression.attribute == "largest":
                assert target.pixels == max(o.pixels for o in same)
            elif expression.kind == "depth" and expression.attribute == "nearest":
                assert target.depth == min(o.depth for o in same)
            elif expression.kind == "position" and expression.attribute == "left":
                assert target.cx == min(o.cx for o in same)
            elif expression.kind == "relation":
                others = [o for o in graph.values() if o.category == expression.attribute]
                assert len(others) == 1 and others[0].id in target.neighbours
                assert sum(others[0].id in o.neighbours for o in same) == 1


def test_all_kinds_appear(dataset: SyntheticReferringDataset) -> None:
    kinds = {dataset.load(i).meta["kind"] for i in range(len(dataset))}
    assert kinds == set(EXPRESSION_KINDS)


def test_ambiguity_is_rejected() -> None:
    # Two chairs side by side of the same size, depth and colour: only position (and relation) can tell them apart.
    instance = np.full((20, 40), 1, dtype=np.int32)  # floor
    instance[5:15, 2:10] = 7
    instance[5:15, 28:36] = 8
    instance[5:15, 10:14] = 9  # a table touching chair 7 only
    chair, table = SEMANTIC_CLASSES.index("chair"), SEMANTIC_CLASSES.index("table")
    categories = {1: SEMANTIC_CLASSES.index("floor"), 7: chair, 8: chair, 9: table}
    image = np.full((20, 40, 3), 128, dtype=np.uint8)
    depth = np.full((20, 40), 2.0, dtype=np.float32)
    graph = scene_graph(instance, categories, image, depth)
    texts = {e.text: e.target for e in generate_expressions(graph, instance.size)}
    assert texts["the chair on the left"] == 7 and texts["the chair on the right"] == 8
    assert texts["the chair next to the table"] == 7 and texts["the table"] == 9
    assert "the chair" not in texts and "the largest chair" not in texts and "the grey chair" not in texts
    assert "the nearest chair" not in texts
    assert resolve(graph, ReferringExpression("the chair", 7, "category", "chair")) == [7, 8]


def test_baseline_masks(dataset: SyntheticReferringDataset) -> None:
    for i in range(0, 40, 4):
        sample = dataset.load(i)
        largest = dataset.largest_object_mask(i)
        of_category = dataset.largest_of_category_mask(i)
        assert largest.dtype == np.uint8 and largest.sum() > 0 and of_category.sum() > 0
        assert of_category.sum() >= sample.targets["mask"].sum() or sample.meta["kind"] != "size"
        instance = dataset.scene(sample.meta["scene"]).instance
        assert len(np.unique(instance[of_category == 1])) == 1
        cat_id = int(np.unique(instance[of_category == 1])[0])
        graph = dataset.graph(sample.meta["scene"])
        assert display_name(graph[cat_id].category) == sample.meta["category"]
        if sample.meta["kind"] == "category":
            np.testing.assert_array_equal(of_category, sample.targets["mask"])


def test_colour_names() -> None:
    assert colour_name((250, 250, 250)) == "white"
    assert colour_name((10, 10, 10)) == "black"
    assert colour_name((128, 128, 128)) == "grey"
    assert colour_name((220, 30, 30)) == "red"
    assert colour_name((30, 60, 200)) == "blue"
    assert colour_name((110, 70, 40)) == "brown"


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="expressions_per_scene"):
        SyntheticReferringDataset(2, H, W, expressions_per_scene=0)
    with pytest.raises(IndexError):
        SyntheticReferringDataset(1, H, W, expressions_per_scene=2).load(2)
