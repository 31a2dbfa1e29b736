"""Resize followed by a centre crop, computing only the pixels the crop keeps.

Pillow resizes in two separable passes, one along each axis, through an 8-bit intermediate image; a
centre crop then throws part of the result away (43% of it for ConvNeXT's settings: a 640x480 photo
becomes 341x256, of which 224x224 is kept). ``resize_center_crop`` runs the same two passes as two
one-axis Pillow resizes, in the order Pillow would take, limited to what the crop keeps. The result
is bit for bit the crop of the full resize, because:

* lines across the axis a pass resamples are independent of each other, so what the crop drops
  across that axis can be cropped away before the pass;
* along the resampled axis, Pillow's ``box`` limits the output to the kept range. Pillow then
  computes every sample position and weight from the box edges; they equal the full resize's only
  when all of that arithmetic is exact: when the scale (input length / output length) is a fraction
  with a power-of-two denominator, as ConvNeXT's short side (to 256) always is, and the box edges
  fit a float32 (Pillow reads the box as float32). Otherwise the axis is resampled whole and cropped
  after the pass, which is still exact.

Whatever this cannot do exactly returns None and the caller runs the plain resize: alpha modes
(Pillow premultiplies around the resize), filters other than the five convolution filters, a crop
larger than the image (the crop pads), and Pillow versions whose pass order is not known here.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import PIL
import PIL.Image

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
# Off: always resize whole (for comparison; the output is the same either way).
ENABLED = True
_PILLOW_MAJOR = int(PIL.__version__.split(".")[0])


def _vertical_first(in_width: int, in_height: int, width: int, height: int) -> bool | None:
    """Whether Pillow resizes columns before rows; None for a Pillow version not checked here.
    Up to 12.x the horizontal pass always runs first; 13.x runs the vertical one first when the
    height shrinks by more than twice what the width does (read from its Resample.c)."""
    if 10 <= _PILLOW_MAJOR <= 12:
        return False
    if _PILLOW_MAJOR == 13:
        shrink = in_height - height
        return shrink > 0 and shrink > 2 * (in_width - width)
    return None


def _fits_float32(value: Fraction) -> bool:
    return Fraction(float(np.float32(float(value)))) == value


@dataclass(frozen=True)
class _Axis:
    """One axis of the resize: ``size`` input pixels become ``out``, of which the crop keeps
    ``kept`` starting at ``start``."""

    size: int
    out: int
    start: int
    kept: int

    @property
    def resampled(self) -> bool:
        return self.size != self.out

    def box(self, offset: int = 0) -> tuple[float, float] | None:
        """The kept outputs' edges in input coordinates (less ``offset``) when a ``box`` resize gives
        exactly the full resize's samples there; None when the axis must be resampled whole."""
        if self.kept == self.out:
            return None
        scale = Fraction(self.size, self.out)
        if scale.denominator & (scale.denominator - 1):
            return None
        low, high = self.start * scale - offset, (self.start + self.kept) * scale - offset
        if not (_fits_float32(low) and _fits_float32(high) and _fits_float32(high - low)):
            return None
        return float(low), float(high)

    def inputs(self, support: float) -> tuple[int, int]:
        """A range of input pixels that holds every pixel the kept outputs read (with a pixel to
        spare on each side; any superset gives the same result)."""
        scale = self.size / self.out
        reach = support * max(scale, 1.0) + 1
        low = math.floor((self.start + 0.5) * scale - reach)
        high = math.ceil((self.start + self.kept - 0.5) * scale + reach)
        return max(0, low), min(self.size, high)


def _crop(image: PIL.Image.Image, vertical: bool, low: int, high: int) -> PIL.Image.Image:
    """Keep pixels ``low:high`` along one axis."""
    width, height = image.size
    if (low, high) == (0, height if vertical else width):
        return image
    return image.crop((0, low, width, high) if vertical else (low, 0, high, height))


def _pass(
    image: PIL.Image.Image, axis: _Axis, vertical: bool, resample: int, box: tuple[float, float] | None
) -> PIL.Image.Image:
    """Resample ``image`` along one axis and keep the crop's range of it: through ``box`` when
    given, else whole and then cropped."""
    width, height = image.size
    if not axis.resampled:
        return _crop(image, vertical, axis.start, axis.start + axis.kept)
    if box is None:
        whole = image.resize((width, axis.out) if vertical else (axis.out, height), resample)
        return _crop(whole, vertical, axis.start, axis.start + axis.kept)
    low, high = box
    if vertical:
        return image.resize((width, axis.kept), resample, box=(0, low, width, high))
    return image.resize((axis.kept, height), resample, box=(low, 0, high, height))


@dataclass(frozen=True)
class _Plan:
    vertical_first: bool
    first: _Axis
    second: _Axis
    first_box: tuple[float, float] | None
    second_box: tuple[float, float] | None
    lines: tuple[int, int] | None  # the input lines (across the first pass) the second pass reads


@functools.lru_cache(maxsize=256)
def _plan(
    in_width: int, in_height: int, width: int, height: int, crop_height: int, crop_width: int, resample: int
) -> _Plan | None:
    """How to resize and crop images of one size (the same for every photo of a batch)."""
    vertical_first = _vertical_first(in_width, in_height, width, height)
    if vertical_first is None:
        return None
    x = _Axis(in_width, width, (width - crop_width) // 2, crop_width)
    y = _Axis(in_height, height, (height - crop_height) // 2, crop_height)
    first, second = (y, x) if vertical_first else (x, y)
    second_box = second.box() if second.resampled else None
    lines = None
    if second_box is not None:
        # The first pass then only needs the lines the second pass reads.
        low, high = second.inputs(_SUPPORT[resample])
        shifted = second.box(low)
        if shifted is not None:
            lines, second_box = (low, high), shifted
    return _Plan(vertical_first, first, second, first.box(), second_box, lines)


def resize_center_crop(
    image: PIL.Image.Image, height: int, width: int, resample: int, crop_height: int, crop_width: int
) -> PIL.Image.Image | None:
    """``image.resize((width, height), resample)`` cut to its centre ``crop_height`` x ``crop_width``
    (the top/left offsets rounded down), computing only that part; None when this cannot be done
    exactly (the caller then resizes whole)."""
    if not ENABLED or image.mode not in _MODES or resample not in _SUPPORT:
        return None
    if not (0 < crop_height <= height and 0 < crop_width <= width):
        return None
    plan = _plan(*image.size, width, height, crop_height, crop_width, int(resample))
    if plan is None:
        return None
    if plan.lines is not None:
        image = _crop(image, not plan.vertical_first, *plan.lines)
    image = _pass(image, plan.first, plan.vertical_first, resample, plan.first_box)
    return _pass(image, plan.second, not plan.vertical_first, resample, plan.second_box)
