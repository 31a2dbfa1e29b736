"""Resize + centre crop computing only the kept pixels (processing/resample.py): always bit for bit
the crop of Pillow's full resize, and taken by the processors whose settings allow it."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from PIL import Image

from leanformers.auto import AutoImageProcessor
from leanformers.processing import image as image_module
from leanformers.processing import resample

FILTERS = [Image.Resampling.BOX, Image.Resampling.BILINEAR, Image.Resampling.HAMMING,
           Image.Resampling.BICUBIC, Image.Resampling.LANCZOS]


def full_then_cropped(image: Image.Image, height: int, width: int, filt: int, crop_h: int, crop_w: int) -> np.ndarray:
    full = np.asarray(image.resize((width, height), filt))
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    return full[top : top + crop_h, left : left + crop_w]


@pytest.fixture
def passes(monkeypatch):
    """Counts the one-axis passes that cropped through a box and those resampled whole."""
    counts = {"box": 0, "whole": 0}
    original = resample._pass

    def spy(image, axis, vertical, filt, box):
        if axis.resampled and axis.kept < axis.out:
            counts["box" if box is not None else "whole"] += 1
        return original(image, axis, vertical, filt, box)

    monkeypatch.setattr(resample, "_pass", spy)
    return counts


@pytest.fixture
def unknown_pillow(monkeypatch):
    """A Pillow version whose pass order this library does not know (plans are cached per size, so
    the cache is emptied on the way in and out)."""
    resample._plan.cache_clear()
    monkeypatch.setattr(resample, "_PILLOW_MAJOR", 99)
    yield
    resample._plan.cache_clear()


def _random_case(rng: random.Random) -> tuple[int, int, int, int]:
    """(in width, in height, out width, out height): a third with power-of-two scale denominators
    (where the box is exact), some tall ones (Pillow 13 resamples those vertically first), the rest
    anything."""
    kind = rng.random()
    if kind < 0.4:
        sizes = []
        for _ in range(2):
            out = rng.randint(1, 40) * 2 ** rng.randint(0, 3)
            denominator = 2 ** rng.randint(0, 3)
            numerator = rng.randint(1, 4 * denominator)
            size = out * numerator // denominator if out * numerator % denominator == 0 else rng.randint(1, 200)
            sizes.append((max(size, 1), out))
        (in_w, out_w), (in_h, out_h) = sizes
        return in_w, in_h, out_w, out_h
    if kind < 0.55:
        return rng.randint(1, 40), rng.randint(100, 400), rng.randint(1, 60), rng.randint(8, 64)
    return tuple(rng.randint(1, 200) for _ in range(4))


def test_cropped_resize_equals_cropping_the_full_resize(passes):
    rng, pixels = random.Random(0), np.random.default_rng(0)
    vertical_first = 0
    for _ in range(1500):
        in_w, in_h, out_w, out_h = _random_case(rng)
        crop_h, crop_w = rng.randint(1, out_h), rng.randint(1, out_w)
        mode, filt = rng.choice(["RGB", "L"]), rng.choice(FILTERS)
        shape = (in_h, in_w, 3) if mode == "RGB" else (in_h, in_w)
        image = Image.fromarray(pixels.integers(0, 256, shape, dtype=np.uint8), mode)
        got = resample.resize_center_crop(image, out_h, out_w, filt, crop_h, crop_w)
        assert got is not None and got.mode == mode
        expected = full_then_cropped(image, out_h, out_w, filt, crop_h, crop_w)
        assert np.array_equal(np.asarray(got), expected), (in_w, in_h, out_w, out_h, crop_w, crop_h, mode, filt)
        vertical_first += bool(resample._vertical_first(in_w, in_h, out_w, out_h))
    # Both ways of cropping an axis, and (on Pillow 13) both pass orders, were exercised.
    assert passes["box"] > 300 and passes["whole"] > 300
    assert vertical_first > 100 or resample._PILLOW_MAJOR < 13


@pytest.mark.parametrize("rule", ["convnext", "clip", "deit"])
def test_photo_sizes_under_processor_rules(rule, passes):
    """Photo-sized inputs resized the way the processors do, every filter; ConvNeXT's short side
    (to 256) always gets the box."""
    rng, pixels = random.Random(1), np.random.default_rng(1)
    for _ in range(12):
        in_w, in_h = rng.randint(200, 1100), rng.randint(200, 1100)
        if rule == "deit":
            out_w = out_h = 256
        else:
            edge = 256 if rule == "convnext" else 224
            out_w, out_h = (edge, int(edge * in_h / in_w)) if in_w <= in_h else (int(edge * in_w / in_h), edge)
        image = Image.fromarray(pixels.integers(0, 256, (in_h, in_w, 3), dtype=np.uint8), "RGB")
        filt = rng.choice(FILTERS)
        got = resample.resize_center_crop(image, out_h, out_w, filt, 224, 224)
        assert np.array_equal(np.asarray(got), full_then_cropped(image, out_h, out_w, filt, 224, 224))
    assert passes["box"] >= (12 if rule == "convnext" else 0)


def test_what_it_cannot_do_exactly_is_left_to_the_plain_resize(request):
    rgb = Image.fromarray(np.random.default_rng(2).integers(0, 256, (48, 64, 3), dtype=np.uint8))
    assert resample.resize_center_crop(rgb, 32, 40, Image.Resampling.BICUBIC, 24, 24) is not None
    # Alpha is premultiplied around Pillow's resize; NEAREST does not convolve.
    assert resample.resize_center_crop(rgb.convert("RGBA"), 32, 40, Image.Resampling.BICUBIC, 24, 24) is None
    assert resample.resize_center_crop(rgb, 32, 40, Image.Resampling.NEAREST, 24, 24) is None
    # A crop larger than the resized image pads instead.
    assert resample.resize_center_crop(rgb, 32, 40, Image.Resampling.BICUBIC, 36, 24) is None
    # A Pillow version whose pass order is not known here.
    request.getfixturevalue("unknown_pillow")
    assert resample.resize_center_crop(rgb, 32, 40, Image.Resampling.BICUBIC, 24, 24) is None


CONVNEXT = {"image_processor_type": "ConvNextImageProcessor", "size": {"shortest_edge": 224}, "crop_pct": 0.875,
            "resample": 3, "do_normalize": True, "do_resize": True,
            "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}
CLIP = {"image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": 224},
        "crop_size": {"height": 224, "width": 224}, "do_center_crop": True, "resample": 3}


@pytest.mark.parametrize("settings", [CONVNEXT, CLIP], ids=["convnext", "clip"])
def test_processors_take_the_cropped_paths_and_fall_back_to_the_same_pixels(tmp_path, monkeypatch, request, settings):
    """Native engine first; without it, Pillow with boxes; for an unknown Pillow, the whole resize."""
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(settings))
    processor = AutoImageProcessor.from_pretrained(tmp_path)
    photos = [Image.fromarray(np.random.default_rng(seed).integers(0, 256, (480, 640, 3), dtype=np.uint8))
              for seed in range(3)] + [Image.fromarray(np.zeros((500, 333, 3), dtype=np.uint8))]
    # Over Pillow's 16 MB memory block: the native engine copies its pixels out instead of reading them in place.
    photos.append(Image.fromarray(np.random.default_rng(9).integers(0, 256, (1700, 2600, 3), dtype=np.uint8)))
    taken = {"native": [], "box": []}

    def spy(name, original):
        def call(*args):
            result = original(*args)
            taken[name].append(result is not None)
            return result
        return call

    monkeypatch.setattr(image_module, "resize_crop_native", spy("native", image_module.resize_crop_native))
    monkeypatch.setattr(image_module, "resize_center_crop", spy("box", image_module.resize_center_crop))
    outputs = []
    if resample.NATIVE:
        outputs.append(processor(photos, return_tensors="np").pixel_values)
        assert taken["native"] == [True] * len(photos) and not taken["box"]
    monkeypatch.setattr(resample, "NATIVE", False)
    outputs.append(processor(photos, return_tensors="np").pixel_values)
    assert taken["box"] == [True] * len(photos)
    request.getfixturevalue("unknown_pillow")
    outputs.append(processor(photos, return_tensors="np").pixel_values)
    assert taken["box"][len(photos):] == [False] * len(photos)
    assert all(np.array_equal(outputs[0], other) for other in outputs[1:])


def test_the_box_needs_a_power_of_two_scale_denominator():
    """Box edges that happen to be whole numbers are not enough: with a scale of 5/3 Pillow's sample
    positions inside the box are rounded differently from the full resize's."""
    assert resample._Axis(15, 9, 3, 3).box() is None
    assert resample._Axis(30, 16, 4, 8).box() == (7.5, 22.5)
    assert resample._Axis(30, 16, 4, 8).box(offset=5) == (2.5, 17.5)
