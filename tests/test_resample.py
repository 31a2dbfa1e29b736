"""Resize + centre crop computing only the kept pixels (processing/resample.py): taken by the
processors whose settings allow it, and always the same pixels as Pillow's plain resize."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from leanformers.auto import AutoImageProcessor
from leanformers.processing import image as image_module
from leanformers.processing import resample

needs_native = pytest.mark.skipif(not resample.NATIVE, reason="the native resampler is not built here")


@needs_native
def test_what_it_cannot_do_exactly_is_left_to_the_plain_resize(monkeypatch):
    rgb = np.random.default_rng(0).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    assert resample.resize_crop_native(rgb, 32, 40, Image.Resampling.BICUBIC, (24, 24)) is not None
    # NEAREST does not convolve; a crop larger than the image pads; RGBA is premultiplied by Pillow.
    assert resample.resize_crop_native(rgb, 32, 40, Image.Resampling.NEAREST, (24, 24)) is None
    assert resample.resize_crop_native(rgb, 32, 40, Image.Resampling.BICUBIC, (36, 24)) is None
    assert resample.native_pixels(Image.fromarray(rgb).convert("RGBA")) is None
    monkeypatch.setattr(resample, "_PILLOW_MAJOR", 99)  # a Pillow whose pass order is not known here
    assert resample.resize_crop_native(rgb, 32, 40, Image.Resampling.BICUBIC, (24, 24)) is None


CONVNEXT = {"image_processor_type": "ConvNextImageProcessor", "size": {"shortest_edge": 224}, "crop_pct": 0.875,
            "resample": 3, "do_normalize": True, "do_resize": True,
            "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}
CLIP = {"image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": 224},
        "crop_size": {"height": 224, "width": 224}, "do_center_crop": True, "resample": 3}


@pytest.mark.parametrize("settings", [CONVNEXT, CLIP], ids=["convnext", "clip"])
def test_processors_take_the_cropped_path_and_fall_back_to_the_same_pixels(tmp_path, monkeypatch, settings):
    """Native engine first; without it (or for an unknown Pillow), the whole resize: same pixels."""
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(settings))
    processor = AutoImageProcessor.from_pretrained(tmp_path)
    photos = [Image.fromarray(np.random.default_rng(seed).integers(0, 256, (480, 640, 3), dtype=np.uint8))
              for seed in range(3)] + [Image.fromarray(np.zeros((500, 333, 3), dtype=np.uint8))]
    # Over Pillow's 16 MB memory block: the native engine copies its pixels out instead of reading them in place.
    photos.append(Image.fromarray(np.random.default_rng(9).integers(0, 256, (1700, 2600, 3), dtype=np.uint8)))
    taken = []

    def spy(*args):
        result = original(*args)
        taken.append(result is not None)
        return result

    original = image_module.resize_crop_native
    monkeypatch.setattr(image_module, "resize_crop_native", spy)
    outputs = []
    if resample.NATIVE:
        outputs.append(processor(photos, return_tensors="np").pixel_values)
        assert taken == [True] * len(photos)
        monkeypatch.setattr(resample, "_PILLOW_MAJOR", 99)
        outputs.append(processor(photos, return_tensors="np").pixel_values)
        assert taken[len(photos):] == [False] * len(photos)
    monkeypatch.setattr(resample, "NATIVE", False)
    outputs.append(processor(photos, return_tensors="np").pixel_values)
    assert all(np.array_equal(outputs[0], other) for other in outputs[1:])
