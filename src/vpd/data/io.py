"""Image and depth-map I/O shared by the datasets, the evaluator and ``vpd predict``.

Reading turns whatever a user hands us (8/16-bit, grayscale, palette, alpha, EXIF-rotated photos) into one form,
uint8 ``[H, W, 3]`` RGB, and fails with one line naming the file instead of a Pillow traceback. Writing is atomic: the
bytes go to a hidden temporary file in the destination folder, which is then renamed over the target with
``os.replace`` (atomic on POSIX and Windows within one file system), so a process killed mid-write leaves either the
old file or the new one, never a truncated PNG that a resumed evaluation would trust.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import secrets
import warnings
from collections.abc import Callable
from typing import IO, Any

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = [
    "IMAGE_EXTENSIONS",
    "depth_png_scale",
    "list_images",
    "read_depth_png",
    "read_image",
    "save_npy_atomic",
    "write_csv_atomic",
    "write_depth_png",
    "write_json_atomic",
    "write_png_atomic",
]

#: File name endings (lower case) that :func:`list_images` treats as images.
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

# EXIF tag 0x0112 (Orientation) -> numpy op that undoes it; same mapping as PIL.ImageOps.exif_transpose.
_ORIENTATION_OPS: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: np.swapaxes(a, 0, 1),
    6: lambda a: np.rot90(a, k=-1),
    7: lambda a: np.swapaxes(a[::-1, ::-1], 0, 1),
    8: lambda a: np.rot90(a, k=1),
}

SIXTEEN_BIT_GRAY_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def _open_checked(path: str) -> Image.Image:
    """Opens and fully decodes ``path``, turning every Pillow failure into one clear line."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ValueError(f"{path}: is a folder, expected an image file")
    with warnings.catch_warnings():
        # Pillow warns above MAX_IMAGE_PIXELS and refuses above twice that; the refusal is reported below, and a
        # large image that decodes is bounded later by the model's pixel budget (vpd.limits.MAX_MODEL_PIXELS).
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(path)
        except UnidentifiedImageError:
            raise ValueError(f"{path}: not an image Pillow can read (expected PNG/JPEG/BMP/TIFF/WebP)") from None
        except Image.DecompressionBombError:
            raise ValueError(f"{path}: image too large to decode safely ({_too_large(path)})") from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise ValueError(f"{path}: unreadable image ({type(exc).__name__}: {exc})") from None
        try:
            image.load()  # decoding is lazy; truncated or corrupt data only fails here
        except Image.DecompressionBombError:
            image.close()
            raise ValueError(f"{path}: image too large to decode safely ({_too_large(path)})") from None
        except (OSError, SyntaxError, ValueError, MemoryError) as exc:
            image.close()
            raise ValueError(f"{path}: unreadable image ({type(exc).__name__}: {exc})") from None
    return image


def _too_large(path: str) -> str:
    """``"20000x20000 = 400.0 MP, limit 178.9 MP"`` from the header alone (Pillow's limit lifted just to read it)."""
    limit = Image.MAX_IMAGE_PIXELS or 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Image.MAX_IMAGE_PIXELS = None
            with Image.open(path) as image:
                width, height = image.size
    except Exception:
        return f"more than {2 * limit / 1e6:.1f} MP"
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    return f"{width}x{height} = {width * height / 1e6:.1f} MP, limit {2 * limit / 1e6:.1f} MP"


def _exif_orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(0x0112, 1))
    except Exception:  # a malformed EXIF block must not make the pixels unreadable
        return 1


def sixteen_to_eight(values: np.ndarray) -> np.ndarray:
    """Rounds 16-bit values to 8 bits: ``round(v * 255 / 65535) == round(v / 257)``, so 8-bit data stored as 16-bit
    (``v = 257 * k``) round-trips exactly and white stays 255."""
    v = np.clip(values.astype(np.int64), 0, 65535)
    return ((v + 128) // 257).astype(np.uint8)


def _png_rgb16(path: str, image: Image.Image) -> np.ndarray | None:
    """Full 16-bit samples of a 48/64-bit RGB(A) PNG, or ``None`` when ``path`` is not such a file.

    Pillow keeps only the high byte of each 16-bit colour sample (``v >> 8``, i.e. floor instead of round). Decoding
    the same PNG a second time with the little-endian raw mode makes Pillow's unpacker keep the *other* byte, so two
    decodes give the exact values without another dependency. This relies on Pillow's tile layout; any surprise
    returns ``None`` and the caller keeps the high-byte decode (at most one grey level off).
    """
    if image.format != "PNG" or image.mode not in ("RGB", "RGBA"):
        return None
    try:
        with Image.open(path) as high_image, Image.open(path) as low_image:
            if len(high_image.tile) != 1 or high_image.tile[0].args not in ("RGB;16B", "RGBA;16B"):
                return None  # an 8-bit (or interlaced) PNG: the ordinary decode is exact
            tile = high_image.tile[0]
            low_image.tile = [tile._replace(args=str(tile.args).replace(";16B", ";16L"))]
            high = np.asarray(high_image, dtype=np.uint16)  # np.asarray loads
            low = np.asarray(low_image, dtype=np.uint16)
    except Exception:
        return None
    if high.shape != low.shape:
        return None
    return (high << 8) | low


def _to_rgb(path: str, image: Image.Image) -> np.ndarray:
    """Pixels of a loaded image as uint8 ``[H, W, 3]`` RGB (before the EXIF orientation)."""
    mode = image.mode
    array: np.ndarray
    if mode in SIXTEEN_BIT_GRAY_MODES:
        gray = sixteen_to_eight(np.asarray(image))
        array = np.repeat(gray[..., None], 3, axis=2)
    elif mode in ("L", "1"):
        gray = np.asarray(image.convert("L"))
        array = np.repeat(gray[..., None], 3, axis=2)
    elif mode in ("LA", "La"):
        gray = np.asarray(image)[..., 0]
        array = np.repeat(gray[..., None], 3, axis=2)
    elif mode in ("RGB", "RGBA"):
        full = _png_rgb16(path, image)
        array = sixteen_to_eight(full[..., :3]) if full is not None else np.asarray(image)[..., :3]
    elif mode in ("F", "I;32F"):
        raise ValueError(f"{path}: floating-point image (mode {mode}); expected 8- or 16-bit integer pixels")
    else:
        # P, PA, RGBX, RGBa, CMYK, YCbCr, LAB, HSV, ...: let Pillow map to RGB (palette alpha is dropped).
        try:
            array = np.asarray(image.convert("RGBA" if mode in ("P", "PA") else "RGB"))[..., :3]
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: cannot convert image mode {mode} to RGB ({exc})") from None
    return array


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Reads an image file as RGB.

    Handles 8- and 16-bit PNG (16-bit rounded to 8 bits, ``round(v / 257)``), grayscale (replicated to 3 channels),
    grayscale + alpha, RGBA, palette and CMYK (alpha dropped, not composited), and applies the EXIF orientation.

    Args:
        path: a PNG, JPEG, BMP, TIFF or WebP file (the format is detected from the content, not the name).

    Returns:
        uint8 ``[H, W, 3]`` RGB, C-contiguous and writeable.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is a folder, not an image, corrupt, or a floating-point image.
    """
    path = os.fspath(path)
    with _open_checked(path) as image:  # closes the file even for multi-frame TIFF/WebP
        array = _to_rgb(path, image)
        orientation = _exif_orientation(image)
    op = _ORIENTATION_OPS.get(orientation)
    if op is not None:
        array = op(array)
    # np.asarray(PIL image) is read-only; callers (and torch.from_numpy) expect an array they own.
    return np.require(array, dtype=np.uint8, requirements=["C_CONTIGUOUS", "WRITEABLE", "OWNDATA"])


def read_depth_png(path: str | os.PathLike[str], scale: float, *, allow_8bit: bool = False) -> np.ndarray:
    """Reads a single-channel 16-bit depth PNG as metres.

    Args:
        path: the PNG.
        scale: stored value per metre (NYUv2 sync: 1000, i.e. millimetres; KITTI: 256).
        allow_8bit: also accept 8-bit PNGs. Off by default: an 8-bit depth map read at a 16-bit scale (values
            0-255 as millimetres) silently gives nonsense metrics, so only a caller that was given an explicit scale
            for its 8-bit files turns this on.

    Returns:
        float32 ``[H, W]`` depth in metres, ``value / scale``; 0 stays 0 (invalid).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: not an image, not single-channel, or 8-bit without ``allow_8bit``.
    """
    path = os.fspath(path)
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"read_depth_png: scale must be a finite number > 0 (NYU mm: 1000, KITTI: 256), got {scale}")
    with _open_checked(path) as image:
        if image.mode not in (*SIXTEEN_BIT_GRAY_MODES, "L"):
            raise ValueError(
                f"{path}: a depth PNG must be single-channel 16-bit, got mode {image.mode} "
                f"({len(image.getbands())} channels)"
            )
        if image.mode == "L" and not allow_8bit:
            raise ValueError(
                f"{path}: an 8-bit depth PNG; depth maps are 16-bit (values / {scale:g} = metres). If these 8-bit "
                "values really are depths, give the dataset an explicit depth_scale"
            )
        stored = np.asarray(image)
    # float64 for the division so /1000 and /256 are correctly rounded to float32 once.
    return (stored.astype(np.float64) / scale).astype(np.float32)


#: Depth PNG units per metre: millimetres (NYU) unless that cannot hold the model's range, then KITTI's 1/256 m.
MILLIMETRES, KITTI_UNITS = 1000.0, 256.0
_UINT16_MAX = 65535


def depth_png_scale(max_depth: float, scale: float | None = None) -> float:
    """The 16-bit PNG scale (units per metre) for depths up to ``max_depth`` metres.

    Default: 1000 (millimetres) when ``max_depth`` fits in 65.535 m, else 256 (the KITTI convention). A requested
    ``scale`` is checked: it must store ``max_depth`` without clipping and give at least 256 levels over it.

    Raises:
        ValueError: a scale that is not a finite number, that would clip depths below ``max_depth``, or that would
            leave fewer than 256 levels.
    """
    if scale is None:
        return MILLIMETRES if max_depth * MILLIMETRES <= _UINT16_MAX else KITTI_UNITS
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"png scale: expected a finite number > 0 (units per metre), got {scale}")
    if max_depth * scale > _UINT16_MAX:
        raise ValueError(
            f"png scale {scale:g}: 16 bits hold at most {_UINT16_MAX / scale:.4g} m at that scale, less than the "
            f"model's max_depth {max_depth:g} m; use at most {math.floor(_UINT16_MAX / max_depth)}"
        )
    if max_depth * scale < 255:
        raise ValueError(
            f"png scale {scale:g}: only {max_depth * scale:.0f} levels over the model's 0-{max_depth:g} m; "
            f"use at least {math.ceil(255 / max_depth)}"
        )
    return float(scale)


def _atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], object]) -> None:
    """Runs ``write`` on a fresh hidden file next to ``path``, fsyncs it, then renames it over ``path``."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    # os.open with 0o666 lets the umask decide the final permissions, as a plain open() would (mkstemp forces 0o600).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_png_atomic(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Writes a uint8 image as PNG, atomically; parent folders are created.

    Args:
        path: destination file.
        array: uint8 ``[H, W]`` (gray), ``[H, W, 3]`` (RGB) or ``[H, W, 4]`` (RGBA).
    """
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"write_png_atomic({os.fspath(path)}): expected a uint8 array, got {array.dtype}")
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (1, 3, 4))):
        raise ValueError(
            f"write_png_atomic({os.fspath(path)}): expected shape [H, W], [H, W, 3] or [H, W, 4], got {array.shape}"
        )
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    image = Image.fromarray(np.ascontiguousarray(array))
    _atomic_write(path, lambda handle: image.save(handle, format="PNG"))


def write_depth_png(path: str | os.PathLike[str], depth_m: np.ndarray, scale: float = MILLIMETRES) -> None:
    """Writes metric depth as a 16-bit PNG (``round(depth * scale)``), atomically; parent folders are created.

    Args:
        path: destination file.
        depth_m: ``[H, W]`` depth in metres (any float/int dtype; a torch tensor is accepted via ``np.asarray``).
        scale: stored value per metre: 1000 (millimetres, NYU) by default, 256 for KITTI.

    Values are rounded and clipped to [0, 65535] (65.535 m at scale 1000); NaN and +-inf become 0 (invalid).
    """
    depth = np.asarray(depth_m, dtype=np.float64)
    if depth.ndim == 3 and depth.shape[0] == 1:
        depth = depth[0]
    if depth.ndim != 2:
        raise ValueError(f"write_depth_png({os.fspath(path)}): expected depth of shape [H, W], got {depth.shape}")
    if scale <= 0:
        raise ValueError(f"write_depth_png: scale must be > 0, got {scale}")
    stored = np.nan_to_num(depth * scale, nan=0.0, posinf=0.0, neginf=0.0)
    stored = np.clip(np.rint(stored), 0, 65535).astype(np.uint16)
    image = Image.fromarray(stored)  # uint16 -> mode I;16 -> a 16-bit grayscale PNG
    _atomic_write(path, lambda handle: image.save(handle, format="PNG"))


def write_png16_atomic(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Writes a uint16 ``[H, W]`` (gray) or ``[H, W, 3]`` (RGB) image as a 16-bit PNG, atomically.

    Pillow writes 16-bit gray but not 16-bit RGB, so RGB is encoded here: the PNG container is three chunks (IHDR
    with bit depth 16 and colour type 2, one zlib-compressed IDAT of big-endian rows each behind filter byte 0,
    IEND), each with its CRC-32.
    """
    array = np.asarray(array)
    if array.dtype != np.uint16 or not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
        raise ValueError(f"write_png16_atomic({os.fspath(path)}): expected uint16 [H, W] or [H, W, 3], got "
                         f"{array.dtype} {array.shape}")  # fmt: skip
    if array.ndim == 2:
        image = Image.fromarray(np.ascontiguousarray(array))  # mode I;16
        _atomic_write(path, lambda handle: image.save(handle, format="PNG"))
        return
    import struct
    import zlib

    height, width = array.shape[:2]
    rows = np.ascontiguousarray(array.astype(">u2")).view(np.uint8).reshape(height, width * 6)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1).tobytes()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")
    _atomic_write(path, lambda handle: handle.write(png))


def save_npy_atomic(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Saves ``array`` with ``np.save`` (no pickling), atomically; parent folders are created.

    The file is written exactly at ``path`` (``np.save`` on an open handle does not append ``.npy``).
    """
    data = np.asarray(array)
    _atomic_write(path, lambda handle: np.save(handle, data, allow_pickle=False))


def _json_safe(value: Any) -> Any:
    """``value`` with NaN / infinity (no JSON literal for them) as None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> None:
    """Writes strict JSON (NaN and infinity as ``null``; other objects as ``str``), atomically."""
    text = json.dumps(_json_safe(data), indent=2, allow_nan=False, default=str) + "\n"
    _atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def write_csv_atomic(path: str | os.PathLike[str], rows: list[dict[str, Any]]) -> None:
    """Writes dict rows (the first row's keys as the header) as CSV, atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    _atomic_write(path, lambda handle: handle.write(buffer.getvalue().encode("utf-8")))


def _has_image_extension(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def list_images(path_or_dir: str | os.PathLike[str], recursive: bool = True) -> list[str]:
    """Lists image files.

    Args:
        path_or_dir: a folder (images found by extension, see :data:`IMAGE_EXTENSIONS`, case-insensitive; hidden
            files and folders skipped), or one file (returned as is, whatever its extension).
        recursive: descend into sub-folders.

    Returns:
        Sorted paths (folder results are joined onto ``path_or_dir``).

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: a folder holding no image.
    """
    if not isinstance(path_or_dir, (str, os.PathLike)):
        raise TypeError(f"list_images: expected a path, got {type(path_or_dir).__name__}")
    root = os.fspath(path_or_dir)
    if os.path.isfile(root):
        return [root]
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{root}: no such file or folder")
    found: list[str] = []
    if recursive:
        visited: set[tuple[int, int]] = set()  # each real folder once: a symlink loop is not an endless tree
        for folder, subdirs, files in os.walk(root, followlinks=True):
            info = os.stat(folder)
            if (info.st_dev, info.st_ino) in visited:
                subdirs[:] = []
                continue
            visited.add((info.st_dev, info.st_ino))
            subdirs[:] = [d for d in subdirs if not d.startswith(".")]
            found.extend(os.path.join(folder, f) for f in files if not f.startswith(".") and _has_image_extension(f))
    else:
        with os.scandir(root) as entries:
            found = [
                e.path for e in entries if e.is_file() and not e.name.startswith(".") and _has_image_extension(e.name)
            ]
    if not found:
        where = "under" if recursive else "directly in"
        raise ValueError(f"{root}: no image files ({', '.join(IMAGE_EXTENSIONS)}) {where} this folder")
    return sorted(found)
