"""Resize then centre crop, computing only the pixels the crop keeps, with Pillow's bytes.

Pillow resizes in two separable 8-bit passes with integer weights (its filter's values,
normalised, scaled by 2**22, rounded) and 32-bit integer sums. ``_axis_weights`` computes those
weights with the same double arithmetic, and the C passes (``_resample.c``) do the same integer
sums for the kept samples only; integer sums do not depend on their order, so the bytes are
Pillow's. x86-64 only: there C rounds every double operation, as Python does (no fused
multiply-add in the baseline instruction set). What the engine cannot do exactly (alpha modes,
NEAREST, a crop larger than the image, an unknown Pillow) returns None: the caller then runs
Pillow's plain resize.
"""

from __future__ import annotations

import functools
import math
import platform
from dataclasses import dataclass

import numpy as np
import PIL
import PIL.Image

try:
    from . import _resample
except ImportError:  # installed without a C compiler: Pillow's plain resize, same bytes, slower
    _resample = None

# Half-widths of Pillow's convolution filters, in input pixels at scale 1. (NEAREST does not
# convolve; MKS2013/MKS2021 are left to the plain resize.)
_SUPPORT = {
    PIL.Image.Resampling.BOX: 0.5,
    PIL.Image.Resampling.BILINEAR: 1.0,
    PIL.Image.Resampling.HAMMING: 1.0,
    PIL.Image.Resampling.BICUBIC: 2.0,
    PIL.Image.Resampling.LANCZOS: 3.0,
}
_MODES = ("RGB", "L")
# Off: Pillow's plain resize only (for comparison; the output is the same either way).
NATIVE = _resample is not None and platform.machine().lower() in ("x86_64", "amd64")
_PILLOW_MAJOR = int(PIL.__version__.split(".")[0])


def _vertical_first(in_width: int, in_height: int, width: int, height: int) -> bool | None:
    """Whether Pillow resizes columns before rows (None: a Pillow version not checked here). 13.x
    does so when the height shrinks by more than twice what the width does (its Resample.c)."""
    if 10 <= _PILLOW_MAJOR <= 12:
        return False
    if _PILLOW_MAJOR == 13:
        shrink = in_height - height
        return shrink > 0 and shrink > 2 * (in_width - width)
    return None


_PRECISION = 1 << 22  # Pillow's fixed-point scale for 8-bit weights
# Pillow writes the Hamming window's constants as C floats.
_HAMMING_A, _HAMMING_B = float(np.float32(0.54)), float(np.float32(0.46))


def _sinc(x: float) -> float:
    if x == 0.0:
        return 1.0
    x = x * math.pi
    return math.sin(x) / x


def _filter(resample: int, x: np.ndarray) -> np.ndarray:
    """Pillow's filter at offsets ``x`` (float64), by the same operations in the same order as its
    C; the sine-based ones call the C library's sin and cos (``math``), as Pillow does, not numpy's."""
    if resample == PIL.Image.Resampling.BOX:
        return np.where((x > -0.5) & (x <= 0.5), 1.0, 0.0)
    ax = np.abs(x)
    if resample == PIL.Image.Resampling.BILINEAR:
        return np.where(ax < 1.0, 1.0 - ax, 0.0)
    if resample == PIL.Image.Resampling.BICUBIC:
        a = -0.5
        near = ((a + 2.0) * ax - (a + 3.0)) * ax * ax + 1.0
        far = (((ax - 5.0) * ax + 8.0) * ax - 4.0) * a
        return np.where(ax < 1.0, near, np.where(ax < 2.0, far, 0.0))
    if resample == PIL.Image.Resampling.HAMMING:

        def one(v: float) -> float:
            if v == 0.0:
                return 1.0
            if v >= 1.0:
                return 0.0
            v = v * math.pi
            return math.sin(v) / v * (_HAMMING_A + _HAMMING_B * math.cos(v))

        values = ax
    else:  # LANCZOS

        def one(v: float) -> float:
            return _sinc(v) * _sinc(v / 3) if -3.0 <= v < 3.0 else 0.0

        values = x
    return np.array([one(v) for v in values.ravel().tolist()], dtype=np.float64).reshape(x.shape)


@functools.lru_cache(maxsize=512)
def _axis_weights(size: int, out: int, resample: int) -> tuple[np.ndarray, np.ndarray]:
    """Pillow's integer weights for resampling ``size`` samples to ``out``: ``bounds`` (out, 2), each
    output's first input and tap count; ``weights`` (out, taps), zero past the count."""
    scale = size / out
    filterscale = max(scale, 1.0)
    support = _SUPPORT[resample] * filterscale
    taps = math.ceil(support) * 2 + 1
    center = (np.arange(out) + 0.5) * scale
    first = np.maximum((center - support + 0.5).astype(np.int64), 0)  # C casts truncate, as astype does
    last = np.minimum((center + support + 0.5).astype(np.int64), size)
    count = last - first
    tap = np.arange(taps)
    values = _filter(resample, ((tap + first[:, None]).astype(np.float64) - center[:, None] + 0.5) * (1.0 / filterscale))
    values[tap >= count[:, None]] = 0.0
    total = np.zeros(out)
    for t in range(taps):  # summed in Pillow's order, not numpy's pairwise one
        total = total + values[:, t]
    values = np.where(total[:, None] != 0.0, values / np.where(total == 0.0, 1.0, total)[:, None], values)
    scaled = values * float(_PRECISION)
    weights = np.where(values < 0, np.trunc(scaled - 0.5), np.trunc(scaled + 0.5)).astype(np.int32)
    bounds = np.stack([first, count], axis=1).astype(np.int32)
    for table in (bounds, weights):  # cached and shared between threads
        table.setflags(write=False)
    return bounds, weights


@dataclass(frozen=True)
class _Cut:
    """One axis of a native resize: the kept outputs' weights, with their first inputs counted from
    ``low``, the first input line any of them reads (``high`` is one past the last)."""

    bounds: np.ndarray | None  # None: the axis keeps its size, so its pass is skipped (as Pillow does)
    weights: np.ndarray | None
    low: int
    high: int


@functools.lru_cache(maxsize=256)
def _cut(size: int, out: int, start: int, kept: int, resample: int) -> _Cut:
    if size == out:
        return _Cut(None, None, start, start + kept)
    bounds, weights = _axis_weights(size, out, resample)
    bounds, weights = bounds[start : start + kept].copy(), np.ascontiguousarray(weights[start : start + kept])
    low, high = int(bounds[:, 0].min()), int((bounds[:, 0] + bounds[:, 1]).max())
    bounds[:, 0] -= low
    bounds.setflags(write=False)
    return _Cut(bounds, weights, low, high)


def _vertical_pass(pixels: np.ndarray, rows: tuple[int, int], columns: tuple[int, int], cut: _Cut) -> np.ndarray:
    """Resample along the rows of ``pixels[rows[0]:rows[1], columns[0]:columns[1]]`` (``pixels``
    C-contiguous; ``cut.bounds`` counts from ``rows[0]``), every byte of each pixel."""
    pixel, row = pixels.shape[2], pixels.strides[0]
    out = np.empty((len(cut.bounds), columns[1] - columns[0], pixel), np.uint8)
    _resample.vertical(
        pixels, rows[0] * row + columns[0] * pixel, row, rows[1] - rows[0], out.shape[1] * pixel,
        cut.bounds, cut.weights, cut.weights.shape[1], out.shape[0], out, out.strides[0],
    )
    return out


def _horizontal_pass(
    pixels: np.ndarray, rows: tuple[int, int], columns: tuple[int, int], cut: _Cut, channels: int
) -> np.ndarray:
    """Resample along the columns of the same kind of window (``cut.bounds`` counts from
    ``columns[0]``), keeping the first ``channels`` bytes of each pixel."""
    pixel, row = pixels.shape[2], pixels.strides[0]
    out = np.empty((rows[1] - rows[0], len(cut.bounds), channels), np.uint8)
    _resample.horizontal(
        pixels, rows[0] * row + columns[0] * pixel, row, out.shape[0], columns[1] - columns[0], pixel, channels,
        cut.bounds, cut.weights, cut.weights.shape[1], out.shape[1], out, out.strides[0],
    )
    return out


def pillow_pixels(image: PIL.Image.Image) -> np.ndarray | None:
    """The pixel memory of an RGB (4 bytes a pixel, the 4th unused) or L image as a read-only
    (rows, columns, bytes) array, uncopied; None where Pillow cannot export it so."""
    if _resample is None or not hasattr(image, "__arrow_c_array__") or PIL.Image.core.get_alignment() != 1:
        return None
    try:
        memory = _resample.pillow_pixels(*image.__arrow_c_array__())
    except ValueError:
        return None
    pixel = 1 if image.mode == "L" else 4
    width, height = image.size
    if len(memoryview(memory)) != width * height * pixel:  # rows split over blocks: only the first block
        return None
    return np.frombuffer(memory, np.uint8).reshape(height, width, pixel)


def native_pixels(image: PIL.Image.Image | np.ndarray) -> tuple[np.ndarray, int] | None:
    """``(pixels, channels)`` for ``resize_crop_native`` when Pillow would resize ``image`` as an 8-bit
    RGB or grey image (its own memory where Pillow exports it, else a copy), else None; None too
    where the native engine is off, so that no copy is made for nothing."""
    if not NATIVE:
        return None
    if isinstance(image, PIL.Image.Image):
        if image.mode not in _MODES:
            return None
        array = pillow_pixels(image)
        if array is None:
            array = np.asarray(image)
    elif image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] in (1, 3):
        array = np.ascontiguousarray(image)
    else:
        return None
    if array.ndim == 2:
        array = array[..., None]
    return array, 1 if array.shape[2] == 1 else 3


def resize_crop_native(
    pixels: np.ndarray,
    height: int,
    width: int,
    resample: int,
    crop: tuple[int, int] | None,
    channels: int | None = None,
) -> np.ndarray | None:
    """``Image.fromarray(pixels).resize((width, height), resample)`` as an array, cut to its centre
    ``crop`` (height, width) when given, for C-contiguous uint8 ``pixels`` (rows, columns, bytes)
    whose first ``channels`` (1 or 3; default all) are the image; None where it cannot give
    Pillow's bytes."""
    if not NATIVE or resample not in _SUPPORT or pixels.dtype != np.uint8 or pixels.ndim != 3:
        return None
    channels = pixels.shape[2] if channels is None else channels
    if channels not in (1, 3) or not channels <= pixels.shape[2] <= 4 or not pixels.flags.c_contiguous:
        return None
    in_height, in_width = pixels.shape[:2]
    crop_height, crop_width = crop if crop is not None else (height, width)
    if not (0 < crop_height <= height and 0 < crop_width <= width) or in_height == 0 or in_width == 0:
        return None
    vertical_first = _vertical_first(in_width, in_height, width, height)
    if vertical_first is None:
        return None
    x = _cut(in_width, width, (width - crop_width) // 2, crop_width, int(resample))
    y = _cut(in_height, height, (height - crop_height) // 2, crop_height, int(resample))
    # The window of the input still to be read; each pass narrows it to its own output. An axis that
    # keeps its size is only cropped (Pillow skips that pass too).
    rows, columns = (y.low, y.high), (x.low, x.high)
    order = ((y, _vertical_pass), (x, functools.partial(_horizontal_pass, channels=channels)))
    for cut, run in order if vertical_first else order[::-1]:
        if cut.bounds is not None:
            pixels = run(pixels, rows, columns, cut)
            rows, columns = (0, pixels.shape[0]), (0, pixels.shape[1])
    return np.ascontiguousarray(pixels[rows[0] : rows[1], columns[0] : columns[1], :channels])
