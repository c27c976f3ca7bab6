"""Where a defect may go: a foreground (object) estimate from local texture.

Rule: inspection objects are textured (machined metal, ceramic tiles) while the fixture/background is
flat, whatever the illumination (a back-lit part is *dark* on a bright background, so brightness alone
cannot tell object from background). So a pixel is object when its local standard deviation (in a
``window`` x ``window`` neighbourhood, log-scaled) is above an Otsu threshold; specks are opened away,
the largest connected part is the object, and background parts smaller than ``min_background`` of the
image are holes in it (texture-poor spots), filled even where they touch the image border. A brightness
step (the object's outline) has a high local deviation on its flat side too, so the result is eroded by
half a window: the estimate errs towards the inside of the object.

When the texture histogram is not bimodal (Otsu separability below ``min_separability``; a unimodal
histogram reaches at most 2/pi ~ 0.64) the image is taken to be all object: e.g. Magnetic Tile crops,
which show tile surface edge to edge.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def to_gray(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image, dtype=np.float32)
    return img.mean(axis=-1) if img.ndim == 3 else img


def otsu_threshold(values: np.ndarray, bins: int = 256) -> tuple[float, float]:
    """Otsu threshold of ``values`` and its separability (between-class / total variance, in [0, 1])."""
    v = np.asarray(values, dtype=np.float64).ravel()
    total = v.var()
    if v.size == 0 or total <= 1e-12:
        return float(v.mean() if v.size else 0.0), 0.0
    hist, edges = np.histogram(v, bins=bins)
    p = hist / hist.sum()
    centers = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(p)
    m0 = np.cumsum(p * centers)
    w1 = 1.0 - w0
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (m0[-1] * w0 - m0) ** 2 / (w0 * w1)
    between = np.nan_to_num(between, nan=0.0, posinf=0.0)
    i = int(np.argmax(between))
    return float(edges[i + 1]), float(between[i] / total)


def local_texture(image: np.ndarray, window: int = 5) -> np.ndarray:
    """log(1 + local standard deviation) of the gray image, lightly smoothed; same shape."""
    g = to_gray(image)
    mean = ndimage.uniform_filter(g, window, mode="reflect")
    sq = ndimage.uniform_filter(g * g, window, mode="reflect")
    tex = np.log1p(np.sqrt(np.maximum(sq - mean * mean, 0.0)))
    return ndimage.gaussian_filter(tex, window / 4.0)  # steadier on sparse texture (dark field)


def _padded(op, mask: np.ndarray, iterations: int) -> np.ndarray:
    """Binary morphology as if the image went on beyond its border (edge pixels replicated)."""
    if iterations < 1:
        return mask
    pad = iterations + 1
    return op(np.pad(mask, pad, mode="edge"), iterations=iterations)[pad:-pad, pad:-pad]


def _largest(mask: np.ndarray) -> np.ndarray:
    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = ndimage.sum(mask, labels, index=np.arange(1, n + 1))
    return labels == 1 + int(np.argmax(sizes))


def foreground_mask(
    image: np.ndarray, window: int = 5, min_separability: float = 0.75, min_background: float = 0.05
) -> np.ndarray:
    """Boolean (H, W) object estimate; see the module docstring for the rule."""
    tex = local_texture(image, window)
    threshold, separability = otsu_threshold(tex)
    if separability < min_separability:
        return np.ones(tex.shape, bool)
    fg = tex > threshold
    fg = ndimage.binary_opening(fg, iterations=1)
    fg = _padded(ndimage.binary_closing, fg, 2)  # close thin gaps to the background
    fg = _largest(fg)
    # Texture-poor patches of the object (smooth spots, dark-field shadows) look like background:
    # background parts much smaller than the object are holes, also where they touch the image border.
    bg = ~fg
    labels, n = ndimage.label(bg)
    if n:
        sizes = ndimage.sum(bg, labels, index=np.arange(1, n + 1))
        small = np.flatnonzero(sizes < min_background * bg.size) + 1
        fg |= np.isin(labels, small)
    # A brightness step looks textured for half a window on its flat side: pull the outline back.
    fg = _padded(ndimage.binary_erosion, fg, window // 2)
    if not fg.any():  # degenerate (flat image): nothing to tell apart
        return np.ones(tex.shape, bool)
    return fg
