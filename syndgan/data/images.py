"""Open, verify and fingerprint images and masks, decoding each file exactly once.

An image is accepted only after it was fully decoded: ``Image.open`` reads just the header, so a
truncated or corrupt file would otherwise pass and fail much later, in training.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from syndgan.errors import ImageError, PairingError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_SUFFIX = {"PNG": ".png", "JPEG": ".jpg", "BMP": ".bmp", "TIFF": ".tif", "WEBP": ".webp", "GIF": ".gif"}


@dataclass(frozen=True)
class ImageInfo:
    sha256: str
    width: int
    height: int
    mode: str  # "L" (any grayscale mode) or "RGB" (colour, palette, alpha...)
    format: str  # PIL format name, e.g. "PNG"

    @property
    def suffix(self) -> str:
        return _SUFFIX.get(self.format, ".png")


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


@contextlib.contextmanager
def pixel_limit_disabled() -> Iterator[None]:
    """Switch off PIL's own decompression-bomb check; callers enforce ``max_pixels`` from the header.

    PIL's check warns or raises with its own global limit; ours is a parameter and gives a one-line
    error naming the file, before any pixel is decoded.
    """
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = old


def _open_verified(data: bytes, path: Path, max_pixels: int) -> Image.Image:
    if ImageFile.LOAD_TRUNCATED_IMAGES:  # someone switched it on globally; truncated files must fail
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set; refusing to verify images")
    try:
        im = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageError(path, "not an image, or an unsupported image format") from None
    except Image.DecompressionBombError as e:  # only if the caller left PIL's own check on
        raise ImageError(path, f"over the pixel limit: {e}") from None
    except Exception as e:
        raise ImageError(path, f"unreadable image header: {e}") from None
    w, h = im.size
    if w * h > max_pixels:
        raise ImageError(path, f"image is {w}x{h} = {w * h} pixels, over the limit of {max_pixels} (ingest.max_pixels)")
    if w == 0 or h == 0:
        raise ImageError(path, f"image is {w}x{h}")
    try:
        im.load()
    except Exception as e:
        raise ImageError(path, f"corrupt or truncated image: {e}") from None
    return im


def inspect_image(path: Path, max_pixels: int, data: bytes | None = None) -> ImageInfo:
    """Hash, size and colour mode of an image, after a full decode. ``data``: bytes instead of the file."""
    if data is None:
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise ImageError(path, f"cannot read image: {e.strerror or e}") from None
    im = _open_verified(data, path, max_pixels)
    mode = "L" if im.mode in _GRAY_MODES else "RGB"
    return ImageInfo(hashlib.sha256(data).hexdigest(), im.width, im.height, mode, im.format or "PNG")


def load_mask(
    path: Path,
    size: tuple[int, int],
    max_pixels: int,
    data: bytes | None = None,
    decode: bool = True,
) -> np.ndarray | None:
    """A mask as a grayscale uint8 array, checked to be ``size`` = (width, height) of its image.

    ``decode=False`` only checks the size from the header (masks whose content is not used).
    """
    try:
        data = Path(path).read_bytes() if data is None else data
    except OSError as e:
        raise PairingError(path, f"cannot read mask: {e.strerror or e}") from None
    if not decode:
        try:
            with Image.open(io.BytesIO(data)) as im:
                msize = im.size
        except Exception as e:
            raise ImageError(path, f"unreadable mask: {e}") from None
    else:
        im = _open_verified(data, path, max_pixels)
        msize = im.size
    if tuple(msize) != tuple(size):
        raise PairingError(path, f"mask is {msize[0]}x{msize[1]} but its image is {size[0]}x{size[1]}")
    if not decode:
        return None
    if im.mode in ("RGB", "RGBA", "P", "LA", "1", "L"):
        return np.asarray(im.convert("L"))
    return np.clip(np.asarray(im), 0, 255).astype(np.uint8)  # 16-bit / float masks


def encode_mask(mask: np.ndarray) -> bytes:
    """A boolean mask as PNG bytes ("L", 0 / 255), the form of in-memory masks (threshold 127)."""
    buf = io.BytesIO()
    Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), "L").save(buf, format="PNG")
    return buf.getvalue()


def decode_mask(data: bytes) -> np.ndarray:
    """Inverse of ``encode_mask``: uint8 (H, W) array."""
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("L"))
