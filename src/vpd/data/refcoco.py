"""Referring segmentation data: RefCOCO, RefCOCO+ and RefCOCOg (G-Ref) in the refer API layout, and users' own triples.

On-disk layout (the refer API's, as LAVT and VPD read it through ``REFER(data_root, dataset, splitBy)``)::

    <root>/
      refcoco/instances.json  refcoco/refs(unc).p  [refcoco/refs(google).p]
      refcoco+/instances.json refcoco+/refs(unc).p
      refcocog/instances.json refcocog/refs(umd).p [refcocog/refs(google).p]
      images/mscoco/images/train2014/COCO_train2014_000000000009.jpg ...

``refs(<split_by>).p`` is a pickle of a list of refs (``ref_id``, ``ann_id``, ``image_id``, ``split``,
``category_id``, ``sentences: [{"sent", "raw", "tokens", "sent_id"}]``); ``instances.json`` is COCO-format (``images``,
``annotations`` with polygon or RLE ``segmentation``, ``categories``). Every sentence of every ref of the split is
one sample (as the official evaluation counts them). The mask is the ref's annotation, rasterised with pycocotools;
image and mask are resized to ``size x size`` (bilinear / nearest), as the official ``T.Resize(img_size, img_size)``.

The pickles are read with :func:`restricted_pickle_load`, which refuses every global, so a tampered ``refs.p`` cannot
run code: the genuine files hold only dicts, lists, strings and numbers.
"""

from __future__ import annotations

import io
import json
import os
import pickle
from typing import Any

import numpy as np
from PIL import Image

from vpd.data.base import PerceptionDataset, Sample, Transform, check_files
from vpd.data.io import _open_checked, read_image

__all__ = ["REFER_SPLITS", "RefCOCO", "ReferringFolder", "annotation_mask", "read_mask_png", "restricted_pickle_load"]

#: Valid ``(dataset, split_by) -> splits``; the first ``split_by`` of each dataset is its default.
REFER_SPLITS: dict[str, dict[str, tuple[str, ...]]] = {
    "refcoco": {"unc": ("train", "val", "testA", "testB"), "google": ("train", "val", "test")},
    "refcoco+": {"unc": ("train", "val", "testA", "testB")},
    "refcocog": {"umd": ("train", "val", "test"), "google": ("train", "val")},
}


class _RefusingUnpickler(pickle.Unpickler):
    """An unpickler that resolves no global at all: only the built-in containers and scalars can be loaded."""

    def __init__(self, file: Any, path: str) -> None:
        super().__init__(file, encoding="utf-8")  # Python 2 ``str`` (the refer API's pickles) decoded as UTF-8
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        raise ValueError(
            f"{self._path}: refused to load global {module}.{name} (a refer-API pickle holds only dicts, lists, "
            "strings and numbers; this file is not one, or has been tampered with)"
        )


def restricted_pickle_load(path: str | os.PathLike[str]) -> Any:
    """Loads a refer-API pickle (``refs(unc).p``, ``refs(umd).p``, ``refs(google).p``) without resolving any global.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the pickle references a class or function (naming it and the file), or is corrupt / truncated.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        return _RefusingUnpickler(io.BytesIO(data), path).load()
    except ValueError as exc:
        if str(exc).startswith(path):
            raise
        raise ValueError(f"{path}: not a readable pickle ({type(exc).__name__}: {exc})") from None
    except (pickle.UnpicklingError, EOFError, UnicodeDecodeError, IndexError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a readable pickle ({type(exc).__name__}: {exc})") from None


def _mask_api() -> Any:
    try:
        from pycocotools import mask as mask_api
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "RefCOCO masks need pycocotools (COCO polygon / RLE decoding): pip install pycocotools (or vpd[refer])"
        ) from None
    return mask_api


def annotation_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """Rasterises a COCO ``segmentation`` (a list of polygons, or an RLE dict with list or string counts).

    Several polygons are merged (their union; the refer API sums them and keeps pixels equal to 1, which only differs
    where an annotation's own polygons overlap).

    Returns:
        uint8 ``[height, width]`` of 0 / 1.
    """
    mask_api = _mask_api()
    if isinstance(segmentation, dict):
        counts = segmentation.get("counts")
        if isinstance(counts, list):
            rle = mask_api.frPyObjects(segmentation, height, width)
        else:
            rle = dict(segmentation)
            if isinstance(counts, str):
                rle["counts"] = counts.encode("ascii")
        decoded = mask_api.decode(rle)
    elif isinstance(segmentation, list) and segmentation:
        if isinstance(segmentation[0], dict):  # a list of RLEs
            rles = [annotation_mask(s, height, width) for s in segmentation]
            return np.max(np.stack(rles), axis=0).astype(np.uint8)
        polygons = [[float(v) for v in polygon] for polygon in segmentation]
        decoded = mask_api.decode(mask_api.merge(mask_api.frPyObjects(polygons, height, width)))
    else:
        return np.zeros((height, width), dtype=np.uint8)
    decoded = np.asarray(decoded)
    if decoded.ndim == 3:
        decoded = decoded.max(axis=2)
    return (decoded > 0).astype(np.uint8)


def _resize_pair(image: np.ndarray, mask: np.ndarray, size: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Image bilinear, mask nearest, to ``size x size`` (no-op for None)."""
    if size is None:
        return image, mask
    if image.shape[:2] != (size, size):
        image = np.array(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR))
    if mask.shape != (size, size):
        mask = np.array(Image.fromarray(mask).resize((size, size), Image.Resampling.NEAREST))
    return np.ascontiguousarray(image), np.ascontiguousarray(mask)


def _check_size(size: int | None) -> None:
    if size is not None and (not isinstance(size, int) or size < 1):
        raise ValueError(f"size must be a positive integer or None, got {size!r}")


class RefCOCO(PerceptionDataset):
    """RefCOCO / RefCOCO+ / RefCOCOg in the refer API layout (see the module docstring).

    Args:
        root: the refer data folder holding ``<dataset>/`` (e.g. LAVT's ``refer/data``).
        dataset: ``"refcoco"``, ``"refcoco+"`` or ``"refcocog"``.
        split: ``"train"``, ``"val"``, ``"testA"``, ``"testB"`` (RefCOCO, RefCOCO+ unc) or ``"test"`` (G-Ref umd).
        split_by: the partition: ``unc`` (RefCOCO, RefCOCO+; default), ``umd`` (RefCOCOg; default) or ``google``.
        image_root: the COCO ``train2014`` images; default ``<root>/images/mscoco/images/train2014``.
        size: image and mask side after resizing (image bilinear, mask nearest); None keeps the COCO size.
        sentences: ``"all"``: one sample per sentence (evaluation); ``"one_per_ref"``: one sample per ref (object),
            its sentence drawn anew each epoch from a generator seeded by ``(seed, epoch, ref)`` -- the official
            training set, whose epochs count refs.
        transform: paired augmentation.
        seed: augmentation seed.

    Samples: ``image`` uint8 ``[S, S, 3]``; ``targets["mask"]`` uint8 ``[S, S]`` of 0 / 1; ``text`` the sentence
    (the refer API's normalised ``sent``); ``name`` ``"<ref_id>_<sentence index>"``; ``meta`` ``image_file`` (the
    COCO file name), ``image_id``, ``ref_id``, ``category`` (the COCO category name).

    Raises (at construction):
        ValueError: unknown dataset, split_by or split (one line listing the valid ones), a malformed refs pickle or
            instances.json, a ref naming an annotation or image that instances.json lacks.
        FileNotFoundError: the refs pickle, instances.json or images are missing (count + first few).
    """

    class_names: tuple[str, ...] = ()

    def __init__(
        self,
        root: str | os.PathLike[str],
        dataset: str = "refcoco",
        split: str = "train",
        split_by: str | None = None,
        image_root: str | os.PathLike[str] | None = None,
        size: int | None = 512,
        sentences: str = "all",
        transform: Transform | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(transform=transform, seed=seed)
        if sentences not in ("all", "one_per_ref"):
            raise ValueError(f"RefCOCO: sentences must be 'all' or 'one_per_ref', got {sentences!r}")
        if dataset not in REFER_SPLITS:
            raise ValueError(f"RefCOCO: dataset must be one of {', '.join(REFER_SPLITS)}, got {dataset!r}")
        partitions = REFER_SPLITS[dataset]
        split_by = split_by if split_by is not None else next(iter(partitions))
        if split_by not in partitions:
            raise ValueError(
                f"RefCOCO: split_by for {dataset} must be one of {', '.join(partitions)}, got {split_by!r}"
            )
        if split not in partitions[split_by]:
            raise ValueError(
                f"RefCOCO: split for {dataset} ({split_by}) must be one of {', '.join(partitions[split_by])}, "
                f"got {split!r}"
            )
        _check_size(size)
        self.root = os.fspath(root)
        self.dataset, self.split, self.split_by, self.size = dataset, split, split_by, size
        self.image_root = (
            os.fspath(image_root)
            if image_root is not None
            else os.path.join(self.root, "images", "mscoco", "images", "train2014")
        )
        folder = os.path.join(self.root, dataset)
        refs_path = os.path.join(folder, f"refs({split_by}).p")
        instances_path = os.path.join(folder, "instances.json")
        for path in (refs_path, instances_path):
            if not os.path.isfile(path):
                raise FileNotFoundError(
                    f"RefCOCO: {path} not found (expected the refer API layout <root>/{dataset}/refs({split_by}).p "
                    f"and <root>/{dataset}/instances.json)"
                )
        refs = restricted_pickle_load(refs_path)
        if not isinstance(refs, list):
            raise ValueError(f"{refs_path}: expected a list of refs, got {type(refs).__name__}")
        try:
            refs = [r for r in refs if r["split"] == split]
        except (TypeError, KeyError) as exc:
            raise ValueError(f"{refs_path}: a ref is not a dict with a 'split' ({type(exc).__name__}: {exc})") from None
        if not refs:
            raise ValueError(f"{refs_path}: no refs in split {split!r}")
        with open(instances_path, encoding="utf-8") as handle:
            try:
                instances = json.load(handle)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{instances_path}: not valid JSON ({exc})") from None
        try:
            ann_ids = {r["ann_id"] for r in refs}
            self._anns = {a["id"]: a for a in instances["annotations"] if a["id"] in ann_ids}
            image_ids = {r["image_id"] for r in refs}
            self._images = {i["id"]: i for i in instances["images"] if i["id"] in image_ids}
            self._categories = {c["id"]: c["name"] for c in instances.get("categories", [])}
        except (TypeError, KeyError) as exc:
            raise ValueError(f"{instances_path}: not COCO-format instances ({type(exc).__name__}: {exc})") from None
        missing_anns = sorted(ann_ids - set(self._anns))
        if missing_anns:
            raise ValueError(
                f"{instances_path}: {len(missing_anns)} annotations named by refs are missing: {missing_anns[:3]}"
            )
        missing_images = sorted(image_ids - set(self._images))
        if missing_images:
            raise ValueError(
                f"{instances_path}: {len(missing_images)} images named by refs are missing: {missing_images[:3]}"
            )
        # (ref index, sentence index) per sample, refs in file order as the refer API lists them.
        self._refs: list[dict[str, Any]] = refs
        self._items: list[tuple[int, int]] = []
        self.per_ref = sentences == "one_per_ref"
        for r_index, ref in enumerate(refs):
            count = len(ref.get("sentences") or [])
            self._items.extend([(r_index, -count)] if self.per_ref and count else
                               [(r_index, s_index) for s_index in range(count)])  # fmt: skip
        if not self._items:
            raise ValueError(f"{refs_path}: the refs of split {split!r} have no sentences")
        paths = sorted({self._image_path(r["image_id"]) for r in refs})
        check_files(paths, f"RefCOCO {dataset} {split} images (COCO train2014)", self.image_root)

    def _image_path(self, image_id: Any) -> str:
        return os.path.join(self.image_root, self._images[image_id]["file_name"])

    def __len__(self) -> int:
        return len(self._items)

    def load(self, index: int) -> Sample:
        return self.load_for_epoch(index, 0)

    def load_for_epoch(self, index: int, epoch: int) -> Sample:
        r_index, s_index = self._items[index]
        if s_index < 0:  # one_per_ref: -count sentences to draw from
            s_index = int(np.random.default_rng([self.seed, epoch, r_index, 0x5E]).integers(-s_index))
        ref = self._refs[r_index]
        info = self._images[ref["image_id"]]
        path = self._image_path(ref["image_id"])
        image = read_image(path)
        height, width = int(info["height"]), int(info["width"])
        if image.shape[:2] != (height, width):
            raise ValueError(
                f"{path}: image is {image.shape[0]}x{image.shape[1]}, instances.json says {height}x{width}"
            )
        mask = annotation_mask(self._anns[ref["ann_id"]]["segmentation"], height, width)
        image, mask = _resize_pair(image, mask, self.size)
        sentence = ref["sentences"][s_index]
        text = sentence.get("sent") or sentence.get("raw") or ""
        category_id = ref.get("category_id", self._anns[ref["ann_id"]].get("category_id"))
        meta = {
            "image_file": str(info["file_name"]),
            "image_id": ref["image_id"],
            "ref_id": ref["ref_id"],
            "category": self._categories.get(category_id, ""),
        }
        return Sample(image=image, targets={"mask": mask}, text=str(text), name=f"{ref['ref_id']}_{s_index}", meta=meta)


def read_mask_png(path: str | os.PathLike[str]) -> np.ndarray:
    """Reads a mask image (any mode; colour masks use their first channel): nonzero = object. uint8 ``[H, W]`` 0 / 1."""
    path = os.fspath(path)
    with _open_checked(path) as image:
        if image.mode == "P":
            values = np.asarray(image)
        elif image.mode in ("RGB", "RGBA", "LA", "CMYK", "YCbCr"):
            values = np.asarray(image.convert("L")) if image.mode != "LA" else np.asarray(image)[..., 0]
        else:
            values = np.asarray(image)
    return (np.asarray(values) != 0).astype(np.uint8)


class ReferringFolder(PerceptionDataset):
    """A user's own (image, expression, mask) triples from a JSON-lines file.

    Each non-blank line is an object with ``image``, ``expression`` and ``mask`` (paths relative to ``image_root`` if
    given, otherwise to the JSON-lines file's folder; absolute paths kept). A mask is an image whose nonzero pixels
    are the object.

    Args:
        jsonl: the JSON-lines file.
        image_root: the folder relative paths start from.
        size: resize image (bilinear) and mask (nearest) to ``size x size``; None keeps the native size.
        transform: paired augmentation.
        seed: augmentation seed.

    Samples: as :class:`RefCOCO`, with ``name`` the line's ``name`` if present, else the image stem and line number,
    and ``meta`` ``{"line": number}``.

    Raises:
        FileNotFoundError: (at construction) the file, or images / masks it names (count + first few).
        ValueError: (at construction) a line that is not a JSON object with the three string keys (naming the line),
            no entries; (on load) a mask of another size than its image.
    """

    class_names: tuple[str, ...] = ()

    def __init__(
        self,
        jsonl: str | os.PathLike[str],
        image_root: str | os.PathLike[str] | None = None,
        size: int | None = None,
        transform: Transform | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(transform=transform, seed=seed)
        _check_size(size)
        self.path = os.fspath(jsonl)
        self.size = size
        if not os.path.isfile(self.path):
            raise FileNotFoundError(f"ReferringFolder: {self.path} not found")
        base = os.fspath(image_root) if image_root is not None else os.path.dirname(os.path.abspath(self.path))
        self.image_root = base
        self.entries: list[tuple[str, str, str, str, int]] = []
        with open(self.path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{self.path}:{number}: not valid JSON ({exc})") from None
                if not isinstance(record, dict) or not all(
                    isinstance(record.get(key), str) and record.get(key) for key in ("image", "expression", "mask")
                ):
                    raise ValueError(
                        f"{self.path}:{number}: expected an object with string keys image, expression and mask"
                    )
                image = os.path.join(base, record["image"])
                mask = os.path.join(base, record["mask"])
                name = record.get("name")
                if not isinstance(name, str) or not name:
                    name = f"{os.path.splitext(os.path.basename(record['image']))[0]}_{number}"
                self.entries.append((image, record["expression"], mask, name, number))
        if not self.entries:
            raise ValueError(f"ReferringFolder: {self.path} has no entries")
        check_files(sorted({e[0] for e in self.entries}), "ReferringFolder images", base)
        check_files(sorted({e[2] for e in self.entries}), "ReferringFolder masks", base)

    def __len__(self) -> int:
        return len(self.entries)

    def load(self, index: int) -> Sample:
        image_path, expression, mask_path, name, number = self.entries[index]
        image = read_image(image_path)
        mask = read_mask_png(mask_path)
        if mask.shape != image.shape[:2]:
            raise ValueError(
                f"{mask_path}: mask is {mask.shape[0]}x{mask.shape[1]}, image {image_path} is "
                f"{image.shape[0]}x{image.shape[1]}"
            )
        image, mask = _resize_pair(image, mask, self.size)
        meta = {"line": number, "image_file": os.path.relpath(image_path, self.image_root)}
        return Sample(image=image, targets={"mask": mask}, text=expression, name=name, meta=meta)
