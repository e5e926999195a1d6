"""Image / depth I/O: every pixel format a user may hand us, one-line errors, atomic writes, image listing."""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageOps

from vpd.data.io import (
    IMAGE_EXTENSIONS,
    list_images,
    read_depth_png,
    read_image,
    save_npy_atomic,
    write_depth_png,
    write_png_atomic,
)


def _write_raw_png(path: os.PathLike[str] | str, array: np.ndarray, bit_depth: int, color_type: int) -> None:
    """A minimal PNG encoder (filter 0), so 16-bit colour PNGs, which Pillow cannot write, can be tested."""
    height, width = array.shape[:2]
    sample = ">u2" if bit_depth == 16 else "u1"
    raw = b"".join(b"\x00" + np.ascontiguousarray(array[y]).astype(sample).tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    with open(path, "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)))
        handle.write(chunk(b"IEND", b""))


@pytest.fixture
def rgb() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(6, 9, 3), dtype=np.uint8)


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif", ".webp"])
def test_read_image_lossless_formats_round_trip(tmp_path, rgb, ext):
    path = tmp_path / f"img{ext}"
    Image.fromarray(rgb).save(path, **({"lossless": True} if ext == ".webp" else {}))
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == (6, 9, 3) and out.flags.c_contiguous and out.flags.writeable
    np.testing.assert_array_equal(out, rgb)


def test_read_image_jpeg(tmp_path):
    flat = np.full((8, 16, 3), (200, 40, 90), dtype=np.uint8)
    Image.fromarray(flat).save(tmp_path / "a.jpg", quality=95)
    out = read_image(str(tmp_path / "a.jpg"))
    assert out.shape == (8, 16, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - flat).max() <= 3


def test_read_image_grayscale_replicated(tmp_path):
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(gray).save(tmp_path / "g.png")
    out = read_image(tmp_path / "g.png")
    assert out.shape == (3, 4, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], gray)


def test_read_image_16bit_gray_rounds_to_8bit(tmp_path):
    values = np.array([[0, 65535, 32896, 257 * 7, 1000, 128, 127]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as written:
        assert written.mode.startswith("I")  # really a 16-bit file
    out = read_image(tmp_path / "g16.png")
    # round(v / 257): 1000 / 257 = 3.89 -> 4; 128 / 257 = 0.498 -> 0 ... 127 -> 0
    np.testing.assert_array_equal(out[0, :, 0], [0, 255, 128, 7, 4, 0, 0])
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


def test_read_image_16bit_rgb_uses_all_16_bits(tmp_path):
    values = np.array([[[0, 255, 256], [32896, 65535, 1000]], [[129, 385, 65407], [257, 514, 771]]], dtype=np.uint16)
    _write_raw_png(tmp_path / "rgb16.png", values, 16, 2)
    out = read_image(tmp_path / "rgb16.png")
    expected = np.floor(values / 257.0 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(out, expected)
    # 255 and 385 expose the floor-of-high-byte decode (0 and 1) that a plain Pillow read would give
    assert out[0, 0, 1] == 1 and out[1, 0, 1] == 1


def test_read_image_16bit_rgba_drops_alpha(tmp_path):
    values = np.array([[[65535, 0, 1000, 0]]], dtype=np.uint16)
    _write_raw_png(tmp_path / "rgba16.png", values, 16, 6)
    np.testing.assert_array_equal(read_image(tmp_path / "rgba16.png"), [[[255, 0, 4]]])


def test_read_image_alpha_and_palette(tmp_path, rgb):
    rgba = np.concatenate([rgb, np.zeros_like(rgb[..., :1])], axis=2)  # fully transparent: alpha must be ignored
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.png"), rgb)

    gray = rgb[..., 0]
    Image.fromarray(np.stack([gray, np.full_like(gray, 9)], axis=2), mode="LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(read_image(tmp_path / "la.png"), np.repeat(gray[..., None], 3, axis=2))

    palette_image = Image.fromarray(rgb).quantize(colors=8)
    palette_image.save(tmp_path / "p.png")
    with Image.open(tmp_path / "p.png") as written:
        assert written.mode == "P"
    np.testing.assert_array_equal(read_image(tmp_path / "p.png"), np.asarray(palette_image.convert("RGB")))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_read_image_applies_exif_orientation(tmp_path, rgb, orientation):
    image = Image.fromarray(rgb)
    exif = Image.Exif()
    exif[0x0112] = orientation
    image.save(tmp_path / "o.png", exif=exif)
    with Image.open(tmp_path / "o.png") as written:
        expected = np.asarray(ImageOps.exif_transpose(written).convert("RGB"))
    out = read_image(tmp_path / "o.png")
    np.testing.assert_array_equal(out, expected)
    assert out.shape == ((9, 6, 3) if orientation >= 5 else (6, 9, 3))


def test_read_image_errors_are_one_line_and_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.png"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(ValueError, match=r"text\.png: not an image") as info:
        read_image(tmp_path / "text.png")
    assert "\n" not in str(info.value) and info.value.__cause__ is None and info.value.__suppress_context__
    with pytest.raises(ValueError, match="folder"):
        read_image(tmp_path)
    Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 7).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut\.png"):
        read_image(tmp_path / "cut.png")
    Image.fromarray(np.ones((2, 2), np.float32)).save(tmp_path / "f.tif")
    with pytest.raises(ValueError, match="floating-point"):
        read_image(tmp_path / "f.tif")


@pytest.mark.parametrize(("scale", "stored", "metres"), [(1000.0, 2345, 2.345), (256.0, 5120, 20.0)])
def test_read_depth_png_scales_and_keeps_zero(tmp_path, scale, stored, metres):
    values = np.array([[0, stored], [65535, 1]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "d.png")
    depth = read_depth_png(tmp_path / "d.png", scale)
    assert depth.dtype == np.float32 and depth.shape == (2, 2)
    assert depth[0, 0] == 0.0
    assert depth[0, 1] == np.float32(metres)
    assert depth[1, 0] == np.float32(65535 / scale)


def test_read_depth_png_8bit_and_wrong_channels(tmp_path):
    Image.fromarray(np.array([[0, 200]], dtype=np.uint8)).save(tmp_path / "d8.png")
    with pytest.raises(ValueError, match=r"d8\.png: an 8-bit depth PNG"):  # 0-255 read as mm: garbage metrics
        read_depth_png(tmp_path / "d8.png", 1000.0)
    read = read_depth_png(tmp_path / "d8.png", 100.0, allow_8bit=True)  # an explicit scale for 8-bit files
    np.testing.assert_array_equal(read, np.float32([[0.0, 2.0]]))
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(ValueError, match=r"rgb\.png.*single-channel"):
        read_depth_png(tmp_path / "rgb.png", 1000.0)
    with pytest.raises(FileNotFoundError, match=r"missing\.png"):
        read_depth_png(tmp_path / "missing.png", 1000.0)


def test_write_depth_png_rounds_clips_and_zeroes_non_finite(tmp_path):
    depth = np.array([[1.2344, 1.2346, -1.0], [70.0, np.nan, np.inf], [-np.inf, 0.0, 65.535]], dtype=np.float32)
    path = tmp_path / "deep" / "er" / "d.png"
    write_depth_png(path, depth)
    with Image.open(path) as image:
        assert image.mode == "I;16"
        stored = np.asarray(image)
    np.testing.assert_array_equal(stored, [[1234, 1235, 0], [65535, 0, 0], [0, 0, 65535]])
    assert os.listdir(path.parent) == ["d.png"]
    write_depth_png(path, np.full((2, 3), 2.0), scale=256.0)  # overwrite in place
    np.testing.assert_array_equal(read_depth_png(path, 256.0), np.full((2, 3), 2.0, np.float32))
    with pytest.raises(ValueError, match=r"\[H, W\]"):
        write_depth_png(tmp_path / "bad.png", np.zeros((2, 2, 2)))


def test_write_depth_png_round_trips_millimetres(tmp_path):
    depth = np.random.default_rng(1).uniform(0.1, 10.0, size=(5, 7)).astype(np.float32)
    write_depth_png(tmp_path / "d.png", depth)
    back = read_depth_png(tmp_path / "d.png", 1000.0)
    assert np.abs(back - depth).max() <= 0.0005 + 1e-6


def test_write_png_and_npy_atomic(tmp_path, rgb):
    write_png_atomic(tmp_path / "a" / "x.png", rgb)
    np.testing.assert_array_equal(read_image(tmp_path / "a" / "x.png"), rgb)
    save_npy_atomic(tmp_path / "b" / "x.data", rgb.astype(np.float32))  # written at the exact path
    np.testing.assert_array_equal(np.load(tmp_path / "b" / "x.data"), rgb.astype(np.float32))
    assert os.listdir(tmp_path / "a") == ["x.png"] and os.listdir(tmp_path / "b") == ["x.data"]
    with pytest.raises(ValueError, match="uint8"):
        write_png_atomic(tmp_path / "y.png", rgb.astype(np.float32))


def test_atomic_write_failure_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch, rgb):
    target = tmp_path / "x.png"
    write_png_atomic(target, rgb)
    before = target.read_bytes()

    def half_then_die(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG partial")
        raise KeyboardInterrupt  # a kill arriving mid-write

    monkeypatch.setattr(Image.Image, "save", half_then_die)
    with pytest.raises(KeyboardInterrupt):
        write_png_atomic(target, np.zeros_like(rgb))
    with pytest.raises(KeyboardInterrupt):
        write_depth_png(tmp_path / "new.png", np.ones((2, 2)))
    assert target.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["x.png"]


def test_list_images(tmp_path):
    for rel in ["b.PNG", "a.jpg", "sub/c.jpeg", "sub/deeper/d.webp", "notes.txt", ".hidden.png", ".cache/e.png"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    found = list_images(tmp_path)
    rel = [os.path.relpath(p, tmp_path) for p in found]
    assert (
        rel == sorted(rel) == ["a.jpg", "b.PNG", os.path.join("sub", "c.jpeg"), os.path.join("sub", "deeper", "d.webp")]
    )
    assert [os.path.basename(p) for p in list_images(str(tmp_path), recursive=False)] == ["a.jpg", "b.PNG"]
    assert list_images(str(tmp_path / "notes.txt")) == [str(tmp_path / "notes.txt")]
    with pytest.raises(FileNotFoundError, match="nowhere"):
        list_images(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        list_images(tmp_path / "empty")
    assert ".png" in IMAGE_EXTENSIONS and ".jpg" in IMAGE_EXTENSIONS


def test_json_and_csv_are_strict_and_atomic(tmp_path):
    import json

    from vpd.data.io import write_csv_atomic, write_json_atomic

    write_json_atomic(tmp_path / "m.json", {"a": float("nan"), "b": [1.0, float("inf")], "c": tmp_path})
    text = (tmp_path / "m.json").read_text()
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON literal {c}")) == {
        "a": None,
        "b": [1.0, None],
        "c": str(tmp_path),
    }
    write_csv_atomic(tmp_path / "r.csv", [{"name": "x", "v": 1.5}, {"name": "y", "v": 2}])
    assert (tmp_path / "r.csv").read_text().splitlines() == ["name,v", "x,1.5", "y,2"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "r.csv"]


def test_dataloader_worker_errors_read_as_one_line():
    """A dataset error inside a DataLoader worker reaches the user as the dataset's own message."""
    from torch.utils.data import DataLoader, Dataset

    from vpd.errors import iterate

    class Broken(Dataset):
        def __len__(self) -> int:
            return 2

        def __getitem__(self, index: int):
            raise ValueError(f"item {index}: unreadable label map")

    with pytest.raises(ValueError) as raised:
        list(iterate(DataLoader(Broken(), num_workers=1)))
    assert str(raised.value) == "item 0: unreadable label map"
