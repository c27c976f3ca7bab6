"""Class-id masks: an images folder and a masks folder whose pixel values are class ids (NEU-Seg, VOC-style).

The mask of ``<images>/<dir>/<stem>.<ext>`` is ``<masks>/<dir>/<stem><mask_suffix>.<ext>`` (any image
suffix but JPEG: lossy compression changes the ids). The masks folder may be the images folder itself when
``mask_suffix`` tells masks apart (KolektorSDD2's ``<stem>_GT.png``). ``mask_values`` maps each pixel value to
a source label (then the source's label map applies) or to ``"normal"`` (background); a value it does not
map is an error naming the mask and the value. Masks are read as stored: single-channel (``L``, 16-bit),
palette (``P``: the index, not its colour) or bilevel; an RGB mask only when its three channels are equal.

Each class present becomes one in-memory 0/255 mask (``Annotation.mask_bytes``, like decoded RLE), in the
order of its smallest pixel value: that is the "first region" of ``multi_label: first``. A mask that is all
background makes a normal image; an image without a mask is unlabelled (``ImageRecord.unlabelled``). A
bad mask (unmapped value, wrong size or mode) drops its image, never turns it into a normal one; every
mask file must pair with an image (a stray one is a ``PairingError``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from syndgan.data.images import encode_mask, is_image_file, pixel_limit_disabled
from syndgan.data.records import NORMAL, SHAPE_MASK, Annotation, ErrorHandler, ImageRecord, handle
from syndgan.errors import AnnotationError, ConfigError, DataError, ImageError, PairingError

if TYPE_CHECKING:
    from syndgan.data.ingest import Source

_INDEX_MODES = ("1", "L", "P", "I", "I;16", "I;16B", "I;16L", "I;16N")  # pixel value = class id as stored


def check_mask_settings(source: Source, classes: Sequence[str]) -> None:
    """The ``masks`` / ``mask_suffix`` / ``mask_values`` settings of one source, each error naming it."""
    name = source.id_prefix
    if source.format != "masks":
        if source.masks is not None or source.mask_suffix or source.mask_values:
            raise ConfigError(f"source {name!r}: masks, mask_suffix and mask_values are for masks sources")
        return
    if source.masks is None:
        raise ConfigError(f"source {name!r}: format masks needs a masks folder")
    if not source.mask_values:
        raise ConfigError(f"source {name!r}: format masks needs mask_values (pixel value -> class or 'normal')")
    for value, label in source.mask_values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"source {name!r}: mask_values key {value!r} is not a pixel value (an integer >= 0)")
        mapped = source.label_map.get(label, label)
        if mapped != NORMAL and mapped not in classes:
            raise ConfigError(f"source {name!r}: mask_values.{value} -> {label!r} is not a class or 'normal'")
    images = source.images if source.images is not None else source.root
    if not source.mask_suffix and _same(images, source.masks):
        raise ConfigError(f"source {name!r}: masks is the images folder; set mask_suffix to tell masks apart")


def _same(a: str | Path, b: str | Path) -> bool:
    return os.path.abspath(a) == os.path.abspath(b)


def _files(folder: Path, skip: Path | None = None) -> list[Path]:
    """Visible image files under ``folder``, sorted, leaving out the ``skip`` folder (masks kept inside it)."""
    return sorted(
        p
        for p in folder.rglob("*")
        if is_image_file(p)
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        and not (skip is not None and p.is_relative_to(skip))
    )


def read_class_masks(
    root: str | Path,
    masks: str | Path,
    mask_values: dict[int, str],
    mask_suffix: str = "",
    on_error: ErrorHandler | None = None,
    image_dir: str | Path | None = None,
) -> list[ImageRecord]:
    """Images under ``image_dir`` (default: ``root``) with their class-id masks under ``masks``; see the module doc."""
    images = Path(image_dir if image_dir is not None else root).absolute()
    masks = Path(masks).absolute()
    if not images.is_dir():
        raise DataError(images, "images folder not found (masks)")
    if not masks.is_dir():
        raise DataError(masks, "masks folder not found (masks)")
    shared = images == masks
    if shared and not mask_suffix:
        raise ConfigError(f"{masks}: masks in the images folder need a mask_suffix to tell them apart")
    found: dict[Path, Path] = {}  # <dir>/<image stem> -> mask
    for m in _files(masks, images if images.is_relative_to(masks) and not shared else None):
        if not m.stem.endswith(mask_suffix) or m.stem == mask_suffix:
            if not shared:  # in a folder of their own, every file must be a mask
                handle(PairingError(m, f"not a mask name (<image stem>{mask_suffix}.<ext>)"), on_error)
            continue
        key = m.relative_to(masks).with_name(m.stem[: len(m.stem) - len(mask_suffix)])
        if key in found:
            handle(PairingError(m, f"second mask for image {key.as_posix()!r} (first: {found[key].name})"), on_error)
        else:
            found[key] = m
    records: list[ImageRecord] = []
    used: set[Path] = set()
    for img in _files(images, masks if masks.is_relative_to(images) and not shared else None):
        if shared and img.stem.endswith(mask_suffix):
            continue  # a mask
        key = img.relative_to(images).with_suffix("")
        mask = found.get(key)
        if mask is None:
            records.append(ImageRecord(path=img, unlabelled=True))
            continue
        used.add(key)
        try:
            records.append(_record(img, mask, mask_values))
        except DataError as e:
            handle(e, on_error)  # the image is dropped, not taken for a normal one
    for key in sorted(set(found) - used):
        handle(PairingError(found[key], f"orphan mask: no image {key.as_posix()}.* in {images}"), on_error)
    return records


def _record(img: Path, mask: Path, mask_values: dict[int, str]) -> ImageRecord:
    if mask.suffix.lower() in (".jpg", ".jpeg"):
        raise AnnotationError(mask, "JPEG mask: lossy compression changes the class ids; save masks as PNG")
    # The image's header gives its size (no decode; ingest checks max_pixels later). An unreadable image keeps
    # no regions: ingest rejects it with its own error.
    try:
        with pixel_limit_disabled(), Image.open(img) as im:
            size = im.size
    except Exception:
        return ImageRecord(path=img, annotation_file=mask)
    arr = _read_mask(mask, size)
    values = _values(arr)
    unmapped = [int(v) for v in values if int(v) not in mask_values]
    if unmapped:
        listed = ", ".join(map(str, unmapped[:10])) + (", ..." if len(unmapped) > 10 else "")
        raise AnnotationError(
            mask, f"mask value(s) {listed} not in mask_values ({', '.join(map(str, sorted(mask_values)))})"
        )
    by_label: dict[str, list[int]] = {}
    for v in values:  # ascending: a class's first value orders its region
        label = mask_values[int(v)]
        if label != NORMAL:
            by_label.setdefault(label, []).append(int(v))
    if not by_label:
        return ImageRecord(path=img, label=NORMAL, annotation_file=mask)
    anns = [
        Annotation(
            label,
            SHAPE_MASK,
            mask_bytes=encode_mask(np.isin(arr, vals)),
            source_file=mask,
            where=f"mask value{'s' if len(vals) > 1 else ''} {', '.join(map(str, vals))}",
        )
        for label, vals in by_label.items()
    ]
    return ImageRecord(path=img, annotations=anns, annotation_file=mask)


def _read_mask(path: Path, size: tuple[int, int]) -> np.ndarray:
    """The stored pixel values (no colour conversion). PIL's own decompression-bomb limit stays on here."""
    try:
        with Image.open(path) as im:
            if im.size != tuple(size):
                raise PairingError(path, f"mask is {im.width}x{im.height} but its image is {size[0]}x{size[1]}")
            mode = im.mode
            im.load()
            arr = np.asarray(im)
    except DataError:
        raise
    except Exception as e:
        raise ImageError(path, f"unreadable mask: {e}") from None
    if mode in _INDEX_MODES:
        return arr.astype(np.uint8) if arr.dtype == bool else arr
    if mode == "RGB" and (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all():
        return arr[..., 0]  # grey saved as RGB: the values are unambiguous
    what = "RGB mask with colours" if mode == "RGB" else f"mask of mode {mode}"
    raise AnnotationError(path, f"{what}: class-id masks must be grayscale (L) or palette (P) images of class ids")


def _values(arr: np.ndarray) -> np.ndarray:
    """Distinct pixel values, ascending (a histogram for 8/16-bit masks: faster than sorting)."""
    if arr.dtype in (np.uint8, np.uint16):
        return np.flatnonzero(np.bincount(arr.ravel()))
    return np.unique(arr)
