"""The native resampling engine (processing/_resample.c + resample.resize_crop_native): bit for bit
Pillow's resize (then crop) for every convolution filter, pass order, kernel and shape, and safe
against tables that do not fit the image."""

from __future__ import annotations

import gc
import platform
import random
import shutil

import numpy as np
import pytest
from PIL import Image

from leanformers.processing import resample

FILTERS = [Image.Resampling.BOX, Image.Resampling.BILINEAR, Image.Resampling.HAMMING,
           Image.Resampling.BICUBIC, Image.Resampling.LANCZOS]
BUILT_HERE = platform.machine() == "x86_64" and shutil.which("gcc") is not None

needs_native = pytest.mark.skipif(not resample.NATIVE, reason="the native resampler is not built here")


def pillow(pixels: np.ndarray, height: int, width: int, filt: int, crop: tuple[int, int] | None) -> np.ndarray:
    image = Image.fromarray(pixels if pixels.shape[2] == 3 else pixels[..., 0])
    full = np.asarray(image.resize((width, height), filt)).reshape(height, width, pixels.shape[2])
    if crop is None:
        return full
    top, left = (height - crop[0]) // 2, (width - crop[1]) // 2
    return full[top : top + crop[0], left : left + crop[1]]


def kernels() -> list[str]:
    """The horizontal kernels this CPU can run (the build picks the widest)."""
    if resample._resample is None:
        return []
    available = []
    for name in ("avx512", "avx2", "plain"):
        try:
            previous = resample._resample.use(name)
        except ValueError:
            continue
        resample._resample.use(previous)
        available.append(name)
    return available


@pytest.fixture(params=kernels() or ["none"])
def kernel(request):
    if request.param == "none":
        pytest.skip("the native resampler is not built here")
    previous = resample._resample.use(request.param)
    yield request.param
    resample._resample.use(previous)


def test_the_native_engine_is_built_where_ci_runs():
    """CI installs on x86-64 with gcc: a build that silently fell back to Pillow would lose the speed
    the benchmarks report, so it fails here instead."""
    if not BUILT_HERE:
        pytest.skip("no x86-64 compiler here")
    assert resample.NATIVE
    assert "plain" in kernels()


@needs_native
def test_random_sizes_every_filter_and_kernel_equal_pillow(kernel):
    rng, pixels = random.Random(3), np.random.default_rng(3)
    vertical_first = skipped_axis = 0
    for case in range(700):
        in_w, in_h, out_w, out_h = (rng.randint(1, 90) for _ in range(4))
        if case % 5 == 0:
            in_h = rng.randint(120, 300)  # tall: Pillow 13 resamples these vertically first
        if case % 7 == 0:
            out_w = in_w  # an axis that keeps its size is only cropped
        if case % 11 == 0:
            out_h = in_h
        crop = None if case % 3 == 0 else (rng.randint(1, out_h), rng.randint(1, out_w))
        array = pixels.integers(0, 256, (in_h, in_w, rng.choice([1, 3])), dtype=np.uint8)
        filt = rng.choice(FILTERS)
        expected = pillow(array, out_h, out_w, filt, crop)
        got = resample.resize_crop_native(array, out_h, out_w, filt, crop)
        assert got is not None and got.flags.c_contiguous
        assert np.array_equal(got, expected), (in_w, in_h, out_w, out_h, crop, filt, array.shape[2])
        if case % 2:  # the same pixels read in place from a Pillow image (RGB: 4 bytes a pixel)
            memory = resample.pillow_pixels(Image.fromarray(array if array.shape[2] == 3 else array[..., 0]))
            got = resample.resize_crop_native(memory, out_h, out_w, filt, crop, array.shape[2])
            assert np.array_equal(got, expected), (in_w, in_h, out_w, out_h, crop, filt, array.shape[2])
        vertical_first += bool(resample._vertical_first(in_w, in_h, out_w, out_h))
        skipped_axis += out_w == in_w or out_h == in_h
    assert (vertical_first > 50 or resample._PILLOW_MAJOR < 13) and skipped_axis > 50


@needs_native
@pytest.mark.parametrize(
    ("in_size", "out_size", "crop"),
    [
        ((1100, 1500), (256, 349), (224, 224)),  # rows wider than the vertical pass's 2,048-byte chunk
        ((3000, 4000), (7, 9), None),  # a long filter: over 1,000 taps per sample
        ((1, 1), (40, 33), None),  # one pixel, upscaled
        ((5, 700), (200, 3), (200, 1)),  # one axis up, the other down
        ((37, 17), (37, 17), (36, 16)),  # neither axis resampled: a plain crop
    ],
)
def test_extreme_shapes_equal_pillow(in_size, out_size, crop):
    array = np.random.default_rng(4).integers(0, 256, (*in_size, 3), dtype=np.uint8)
    for filt in (Image.Resampling.BICUBIC, Image.Resampling.LANCZOS):
        got = resample.resize_crop_native(array, *out_size, filt, crop)
        assert np.array_equal(got, pillow(array, *out_size, filt, crop))


@needs_native
def test_saturated_and_ringing_pixels_clamp_like_pillow():
    """Black-white edges make bicubic and Lanczos overshoot below 0 and above 255."""
    stripes = np.zeros((64, 96, 3), dtype=np.uint8)
    stripes[:, ::2] = 255
    stripes[::3] = 255 - stripes[::3]
    for filt in FILTERS:
        for size in ((29, 41), (130, 170)):
            assert np.array_equal(resample.resize_crop_native(stripes, *size, filt, None),
                                  pillow(stripes, *size, filt, None))


@needs_native
def test_pillow_pixels_are_read_in_place_and_outlive_the_image():
    array = np.random.default_rng(5).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    image = Image.fromarray(array)
    memory = resample.pillow_pixels(image)
    assert memory.shape == (30, 40, 4) and not memory.flags.writeable
    assert np.array_equal(memory[..., :3], array)
    grey = resample.pillow_pixels(image.convert("L"))
    assert grey.shape == (30, 40, 1) and np.array_equal(grey[..., 0], np.asarray(image.convert("L")))
    del image
    gc.collect()
    assert np.array_equal(memory[..., :3], array)  # the view holds Pillow's export, and so the pixels
    # Writing to the image after the export does not move its memory.
    image = Image.fromarray(array)
    memory = resample.pillow_pixels(image)
    image.putpixel((0, 0), (1, 2, 3))
    assert tuple(memory[0, 0, :3]) == (1, 2, 3)


@needs_native
def test_pillow_pixels_that_cannot_be_read_in_place_are_copied(monkeypatch):
    """Rows spread over several memory blocks, or rows padded by an alignment setting, are not one
    (rows, columns, 4) array: the processors then copy the pixels out, with the same result."""
    big = Image.new("RGB", (2600, 1700), (10, 20, 30))  # 17.7 MB, over Pillow's 16 MB block
    assert resample.pillow_pixels(big) is None
    # Images mapped onto a caller's buffer: rows in order are read in place; rows bottom-up or
    # padded are not one array.
    data = bytes(np.arange(160, dtype=np.uint8))
    mapped = Image.frombuffer("L", (16, 10), data, "raw", "L", 0, 1)
    assert np.array_equal(resample.pillow_pixels(mapped)[..., 0], np.asarray(mapped))
    assert resample.pillow_pixels(Image.frombuffer("L", (16, 10), data, "raw", "L", 0, -1)) is None
    assert resample.pillow_pixels(Image.frombuffer("L", (12, 10), data, "raw", "L", 16, 1)) is None
    monkeypatch.setattr(Image.core, "get_alignment", lambda: 64)
    assert resample.pillow_pixels(Image.new("RGB", (8, 8))) is None


def test_what_the_native_engine_leaves_to_pillow():
    rgb = np.zeros((20, 30, 3), dtype=np.uint8)
    assert resample.resize_crop_native(rgb, 10, 10, Image.Resampling.NEAREST, None) is None
    assert resample.resize_crop_native(np.zeros((20, 30, 4), np.uint8), 10, 10, Image.Resampling.BICUBIC, None) is None
    assert resample.resize_crop_native(rgb.astype(np.float32), 10, 10, Image.Resampling.BICUBIC, None) is None
    assert resample.resize_crop_native(rgb[:, ::2], 10, 10, Image.Resampling.BICUBIC, None) is None
    assert resample.resize_crop_native(rgb, 10, 10, Image.Resampling.BICUBIC, (11, 5)) is None


@needs_native
def test_the_c_passes_refuse_tables_that_do_not_fit_the_image():
    """The passes index memory by the table; a wrong one must raise, not read out of bounds."""
    native = resample._resample
    src, out = np.zeros((4, 6, 3), np.uint8), np.zeros((4, 2, 3), np.uint8)
    weights = np.zeros((2, 3), np.int32)
    good = np.array([[0, 3], [3, 3]], np.int32)
    native.horizontal(src, 0, 18, 4, 6, 3, 3, good, weights, 3, 2, out, 6)
    for bounds in ([[0, 3], [4, 3]], [[-1, 2], [0, 1]], [[0, 4], [0, 1]]):
        with pytest.raises(ValueError, match="outside the input|window"):
            native.horizontal(src, 0, 18, 4, 6, 3, 3, np.array(bounds, np.int32), weights, 3, 2, out, 6)
    with pytest.raises(ValueError, match="too small"):
        native.horizontal(src, 1, 18, 4, 6, 3, 3, good, weights, 3, 2, out, 6)
    with pytest.raises(ValueError, match="does not match"):
        native.vertical(src, 0, 18, 4, 18, good, weights[:1], 3, 2, np.zeros((2, 18), np.uint8), 18)
    with pytest.raises(ValueError, match="too small"):
        native.vertical(src, 0, 18, 4, 18, good, weights, 3, 2, np.zeros((1, 18), np.uint8), 18)
    with pytest.raises(TypeError):
        native.vertical(src, 0, 18, 4, 18, good, weights, 3, 2, bytes(36), 18)  # read-only output
