"""The image processor against the reference library's PIL backend, plus loading, saving and errors.

Images are generated here (gradients + noise, text-like strokes, a 1x1 pixel, a tall strip, every
PIL mode a photo arrives in). The reference is always its PIL path (``backend="pil"``), which is
what its ``AutoImageProcessor`` picks without torchvision and what this library reproduces.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_hub_cache
from PIL import Image

from leanformers import threads
from leanformers.auto import AutoImageProcessor
from leanformers.errors import (
    CheckpointNotFoundError,
    ConfigError,
    InputError,
    LeanformersError,
    RemoteCodeError,
    UnsupportedModelError,
)
from leanformers.hub import Source
from leanformers.processing.features import BatchFeature
from leanformers.processing.image import ImageProcessor, load_image_processor

transformers = pytest.importorskip("transformers")

TOLERANCE = 1e-6

# preprocessor_config.json files as real hub checkpoints ship them (several in the legacy form).
HUB_CONFIGS = {
    "vit": {  # google/vit-base-patch16-224
        "do_normalize": True,
        "do_resize": True,
        "feature_extractor_type": "ViTFeatureExtractor",
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "resample": 2,
        "size": 224,
    },
    "deit": {  # facebook/deit-base-distilled-patch16-224
        "crop_size": 224,
        "do_center_crop": True,
        "do_normalize": True,
        "do_resize": True,
        "feature_extractor_type": "DeiTFeatureExtractor",
        "image_mean": [0.485, 0.456, 0.406],
        "image_std": [0.229, 0.224, 0.225],
        "resample": 3,
        "size": 256,
    },
    "convnext": {  # facebook/convnext-tiny-224 (and microsoft/resnet-50): crop_pct below 384
        "crop_pct": 0.875,
        "do_normalize": True,
        "do_resize": True,
        "feature_extractor_type": "ConvNextFeatureExtractor",
        "image_mean": [0.485, 0.456, 0.406],
        "image_std": [0.229, 0.224, 0.225],
        "resample": 3,
        "size": 224,
    },
    "convnext-384": {  # facebook/convnext-base-384: warped, no crop
        "crop_pct": 0.875,
        "do_normalize": True,
        "do_resize": True,
        "image_processor_type": "ConvNextImageProcessor",
        "image_mean": [0.485, 0.456, 0.406],
        "image_std": [0.229, 0.224, 0.225],
        "resample": 3,
        "size": {"shortest_edge": 384},
    },
    "bit": {  # google/bit-50
        "crop_size": {"height": 448, "width": 448},
        "do_center_crop": True,
        "do_convert_rgb": True,
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_processor_type": "BitImageProcessor",
        "image_std": [0.5, 0.5, 0.5],
        "resample": 3,
        "rescale_factor": 0.00392156862745098,
        "size": {"shortest_edge": 448},
    },
    "clip": {  # openai/clip-vit-base-patch32
        "crop_size": 224,
        "do_center_crop": True,
        "do_normalize": True,
        "do_resize": True,
        "feature_extractor_type": "CLIPFeatureExtractor",
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711],
        "resample": 3,
        "size": 224,
    },
    "swin": {  # microsoft/swin-tiny-patch4-window7-224 (a ViT processor for another model)
        "do_normalize": True,
        "do_resize": True,
        "feature_extractor_type": "ViTFeatureExtractor",
        "image_mean": [0.485, 0.456, 0.406],
        "image_std": [0.229, 0.224, 0.225],
        "resample": 3,
        "size": 224,
    },
}

# What the seed printed for google/vit-base-patch16-224.
SEED_VIT_REPR = """ViTImageProcessor {
  "do_normalize": true,
  "do_rescale": true,
  "do_resize": true,
  "image_mean": [
    0.5,
    0.5,
    0.5
  ],
  "image_processor_type": "ViTImageProcessor",
  "image_std": [
    0.5,
    0.5,
    0.5
  ],
  "resample": 2,
  "rescale_factor": 0.00392156862745098,
  "size": {
    "height": 224,
    "width": 224
  }
}
"""


# ----------------------------------------------------------------------------------------------
# Fixtures: images and checkpoint folders
# ----------------------------------------------------------------------------------------------


def _photo(width: int, height: int, seed: int) -> Image.Image:
    """Smooth colour gradients plus sensor-like noise: resamples like a photo does."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    base = np.stack(
        [
            255 * x / max(width - 1, 1),
            255 * y / max(height - 1, 1),
            127.5 + 127.5 * np.sin((x + 2 * y) / 23.0),
        ],
        axis=-1,
    )
    noisy = base + rng.normal(0, 18, size=base.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def _strokes(width: int, height: int) -> Image.Image:
    """Black text-like strokes on white: hard edges, where resampling filters differ most."""
    pixels = np.full((height, width, 3), 255, dtype=np.uint8)
    for row in range(4, height - 4, 9):
        for col in range(3, width - 6, 7):
            if (row * 31 + col * 17) % 5:
                pixels[row : row + 5, col : col + 2] = (0, 0, 0)
                pixels[row + 2, col : col + 5] = (20, 20, 90)
    return Image.fromarray(pixels)


@pytest.fixture(scope="module")
def images() -> dict[str, Image.Image]:
    photo = _photo(640, 480, seed=0)
    small = _photo(37, 23, seed=1)
    palette_alpha = small.convert("P")
    palette_alpha.info["transparency"] = 0
    half_alpha = small.convert("RGBA")
    half_alpha.putalpha(Image.fromarray(np.tile(np.arange(37, dtype=np.uint8) * 7, (23, 1))))
    sixteen = Image.fromarray(np.asarray(small.convert("L")).astype(np.uint16) * 257)
    return {
        "photo": photo,
        "tall": _photo(90, 300, seed=2),
        "pixel": _photo(1, 1, seed=3),
        "small": small,
        "strokes": _strokes(120, 80),
        "L": photo.convert("L"),
        "LA": small.convert("LA"),
        "RGBA": half_alpha,
        "P": small.convert("P"),
        "P+transparency": palette_alpha,
        "CMYK": small.convert("CMYK"),
        "I;16": sixteen,
        "I": sixteen.convert("I"),
        "1": small.convert("1"),
    }


def _write(folder: Path, settings: dict, config: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "preprocessor_config.json").write_text(json.dumps(settings))
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("image_processors")
    return {name: _write(root / name, settings) for name, settings in HUB_CONFIGS.items()}


def reference(folder: Path):
    """The reference's processor for a folder, on its PIL path."""
    processor = transformers.AutoImageProcessor.from_pretrained(str(folder), backend="pil")
    assert processor.backend == "pil" and type(processor).__name__.endswith("Pil")
    return processor


def assert_same(ours: BatchFeature, theirs, tolerance: float = TOLERANCE) -> float:
    """Same keys, types, shapes and dtypes, and values within ``tolerance``; returns the max diff."""
    assert isinstance(ours, BatchFeature)
    assert sorted(ours.keys()) == sorted(theirs.keys())
    worst = 0.0
    for key in theirs:
        a, b = ours[key], theirs[key]
        assert type(a) is type(b), (key, type(a), type(b))
        if isinstance(b, list):
            assert len(a) == len(b)
            pairs = list(zip(a, b))
        else:
            pairs = [(a, b)]
        for x, y in pairs:
            assert type(x) is type(y)
            assert tuple(x.shape) == tuple(y.shape), (key, x.shape, y.shape)
            assert x.dtype == y.dtype, (key, x.dtype, y.dtype)
            x = x.numpy() if isinstance(x, torch.Tensor) else x
            y = y.numpy() if isinstance(y, torch.Tensor) else y
            diff = float(np.abs(x.astype(np.float64) - y.astype(np.float64)).max()) if x.size else 0.0
            worst = max(worst, diff)
    assert worst <= tolerance, worst
    return worst


# ----------------------------------------------------------------------------------------------
# Parity with the reference
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(HUB_CONFIGS))
def test_settings_print_and_save_like_the_reference(checkpoints, name):
    ours = AutoImageProcessor.from_pretrained(checkpoints[name])
    theirs = reference(checkpoints[name])
    assert ours.to_json_string() == theirs.to_json_string()
    assert repr(ours) == repr(theirs).replace("Pil {", " {", 1)
    assert ours.class_name == type(theirs).__name__.removesuffix("Pil")


@pytest.mark.parametrize("name", sorted(HUB_CONFIGS))
def test_photos_match_the_reference(checkpoints, images, name):
    ours, theirs = AutoImageProcessor.from_pretrained(checkpoints[name]), reference(checkpoints[name])
    batch = [images["photo"], images["tall"], images["pixel"], images["strokes"]]
    assert_same(ours(batch, return_tensors="pt"), theirs(batch, return_tensors="pt"))
    for image in batch[1:3]:
        assert_same(ours(image, return_tensors="np"), theirs(image, return_tensors="np"))
    assert_same(ours(batch[2:], return_tensors=None), theirs(batch[2:], return_tensors=None))


def test_reference_photo_batch_output_is_exact(checkpoints, images):
    """The headline case (32 photos 640x480 -> 224x224 'pt'): identical to the last bit."""
    for name in ("vit", "clip"):
        ours, theirs = AutoImageProcessor.from_pretrained(checkpoints[name]), reference(checkpoints[name])
        batch = [images["photo"], images["photo"].transpose(Image.Transpose.FLIP_LEFT_RIGHT)] * 2
        a, b = ours(batch, return_tensors="pt").pixel_values, theirs(batch, return_tensors="pt").pixel_values
        assert a.shape == (4, 3, 224, 224) and a.dtype == torch.float32
        assert torch.equal(a, b)


MODES = ["L", "LA", "RGBA", "P", "P+transparency", "CMYK", "I;16", "I", "1"]


@pytest.mark.parametrize("name", ["clip", "bit"])
@pytest.mark.parametrize("mode", MODES)
def test_every_pil_mode_matches_when_converting_to_rgb(checkpoints, images, name, mode):
    ours, theirs = AutoImageProcessor.from_pretrained(checkpoints[name]), reference(checkpoints[name])
    assert_same(ours(images[mode], return_tensors="np"), theirs(images[mode], return_tensors="np"))


@pytest.mark.parametrize("name", ["vit", "deit", "convnext", "convnext-384"])
@pytest.mark.parametrize("mode", MODES)
def test_non_rgb_images_become_rgb_where_the_reference_raises(checkpoints, images, name, mode):
    """ViT, DeiT and ConvNeXT leave do_convert_rgb unset; the reference then refuses a grayscale,
    RGBA, palette... image (its channels do not fit the 3-value mean). Here it is converted as
    do_convert_rgb=True converts it -- the reference's own result for that setting."""
    ours, theirs = AutoImageProcessor.from_pretrained(checkpoints[name]), reference(checkpoints[name])
    with pytest.raises(ValueError):
        theirs(images[mode], return_tensors="np")
    expected = theirs(images[mode], do_convert_rgb=True, return_tensors="np")
    assert_same(ours(images[mode], return_tensors="np"), expected)


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P"])
def test_unconverted_channels_match_when_normalisation_allows(checkpoints, images, mode):
    """Without normalisation (or with do_convert_rgb=False and a scalar mean) the reference keeps
    the image's own channels; so does this."""
    ours, theirs = AutoImageProcessor.from_pretrained(checkpoints["vit"]), reference(checkpoints["vit"])
    image = images[mode]
    kwargs = {"do_normalize": False, "return_tensors": "np"}
    assert_same(ours(image, **kwargs), theirs(image, **kwargs))
    kwargs = {"do_convert_rgb": False, "image_mean": 0.5, "image_std": 0.25, "return_tensors": "np"}
    assert_same(ours(image, **kwargs), theirs(image, **kwargs))


@pytest.mark.parametrize("name", sorted(HUB_CONFIGS))
def test_grayscale_and_opaque_rgba_photos_equal_their_rgb_conversion(checkpoints, images, name):
    ours = AutoImageProcessor.from_pretrained(checkpoints[name])
    gray = images["photo"].convert("L")
    opaque = images["photo"].convert("RGBA")
    expected = ours(gray.convert("RGB"), return_tensors="np").pixel_values
    assert np.array_equal(ours(gray, return_tensors="np").pixel_values, expected)
    rgb = ours(images["photo"], return_tensors="np").pixel_values
    assert np.array_equal(ours(opaque, return_tensors="np").pixel_values, rgb)


def test_arrays_and_tensors_match_the_reference(checkpoints, images):
    photo = np.asarray(images["photo"])
    small = np.asarray(images["small"])
    inputs = {
        "HWC uint8": photo,
        "CHW uint8": np.ascontiguousarray(photo.transpose(2, 0, 1)),
        "CHW float [0,1]": small.transpose(2, 0, 1).astype(np.float32) / 255,
        "HWC float64 [0,1]": small.astype(np.float64) / 255,
        "HWC float whole numbers": small.astype(np.float32),
        "tensor CHW uint8": torch.from_numpy(np.ascontiguousarray(small.transpose(2, 0, 1))),
        "tensor HWC float": torch.from_numpy(small.astype(np.float32) / 255),
        "batch NHWC uint8": np.stack([small, small[::-1]]),
        "1-channel CHW": np.asarray(images["small"].convert("L"))[None],
        "RGBA HWC uint8": np.asarray(images["RGBA"]),
        "RGBA HWC float": np.asarray(images["RGBA"]).astype(np.float32) / 255,
    }
    for name in ("vit", "clip", "convnext", "deit"):
        ours, theirs = AutoImageProcessor.from_pretrained(checkpoints[name]), reference(checkpoints[name])
        for label, value in inputs.items():
            for kwargs in ({}, {"do_resize": False, "do_center_crop": False}):
                if name != "clip" and label in ("1-channel CHW", "RGBA HWC uint8", "RGBA HWC float"):
                    kwargs = {**kwargs, "do_convert_rgb": True}
                kwargs = {"return_tensors": "np", **kwargs}
                assert_same(ours(value, **kwargs), theirs(value, **kwargs))
        # lists of arrays, a nested list (one batch), and a list of tensors
        listed = [photo, small]
        assert_same(ours(listed), theirs(listed))
        assert_same(ours([listed], return_tensors="pt"), theirs([listed], return_tensors="pt"))
        tensors = [torch.from_numpy(photo.copy()), torch.from_numpy(small.copy())]
        assert_same(ours(tensors, return_tensors="pt"), theirs(tensors, return_tensors="pt"))


def test_per_call_overrides_match_the_reference(checkpoints, images):
    batch = [images["photo"], images["tall"]]
    cases = {
        "vit": [
            {"size": {"height": 96, "width": 160}},
            {"size": 64, "resample": 0},
            {"size": {"shortest_edge": 100}, "do_center_crop": True, "crop_size": 80},
            {"size": {"shortest_edge": 100, "longest_edge": 150}, "return_tensors": None},
            {"size": {"max_height": 120, "max_width": 100}, "return_tensors": None},
            {"resample": 1},
            {"resample": 4},
            {"resample": 5},
            {"do_rescale": False},
            {"do_rescale": False, "do_normalize": False},
            {"rescale_factor": 1 / 127.5, "image_mean": 1.0, "image_std": 1.0},
            {"do_pad": True, "pad_size": {"height": 300, "width": 256}},
        ],
        "deit": [{"crop_size": {"height": 300, "width": 200}}, {"do_center_crop": False}],
        "convnext": [{"crop_pct": 0.5}, {"size": 300}, {"size": {"shortest_edge": 512}}, {"size": 383}],
        "clip": [{"size": 336, "crop_size": 336}, {"do_convert_rgb": False}, {"do_resize": False, "crop_size": 500}],
    }
    for name, overrides in cases.items():
        ours, theirs = AutoImageProcessor.from_pretrained(checkpoints[name]), reference(checkpoints[name])
        for kwargs in overrides:
            kwargs = {"return_tensors": "pt", **kwargs}
            assert_same(ours(batch, **kwargs), theirs(batch, **kwargs)), (name, kwargs)
        # an override lasts one call only
        assert ours.to_json_string() == theirs.to_json_string()


def test_ragged_outputs_are_a_list(checkpoints, images):
    ours, theirs = AutoImageProcessor.from_pretrained(checkpoints["vit"]), reference(checkpoints["vit"])
    batch = [images["photo"], images["tall"], images["pixel"]]
    out = ours(batch, do_resize=False)
    assert [a.shape for a in out.pixel_values] == [(3, 480, 640), (3, 300, 90), (3, 1, 1)]
    assert_same(out, theirs(batch, do_resize=False))
    with pytest.raises(InputError, match="different shapes"):
        ours(batch, do_resize=False, return_tensors="pt")


def test_image_file_paths(tmp_path, checkpoints, images):
    path = tmp_path / "photo.png"
    images["RGBA"].save(path)
    ours, theirs = AutoImageProcessor.from_pretrained(checkpoints["vit"]), reference(checkpoints["vit"])
    assert_same(ours(str(path), return_tensors="np"), theirs(str(path), return_tensors="np"))
    assert_same(ours([str(path), path], return_tensors="np"), theirs([str(path), str(path)], return_tensors="np"))


# ----------------------------------------------------------------------------------------------
# The printed settings, loading and saving
# ----------------------------------------------------------------------------------------------


def test_repr_reproduces_the_seed_printout(tmp_path):
    folder = _write(tmp_path / "vit", HUB_CONFIGS["vit"])
    processor = ImageProcessor.from_pretrained(folder)
    assert repr(processor) == SEED_VIT_REPR
    assert repr(load_image_processor(Source.of(str(folder)))) == SEED_VIT_REPR
    # The reference 5.23 prints the same settings under its backend class name.
    assert repr(reference(folder)) == SEED_VIT_REPR.replace("ViTImageProcessor {", "ViTImageProcessorPil {", 1)


def test_settings_are_attributes(checkpoints):
    processor = AutoImageProcessor.from_pretrained(checkpoints["convnext"])
    theirs = reference(checkpoints["convnext"])
    for key in ("size", "crop_pct", "resample", "do_resize", "do_center_crop", "crop_size", "do_convert_rgb"):
        assert getattr(processor, key) == getattr(theirs, key), key
    assert processor.image_mean == theirs.image_mean == (0.485, 0.456, 0.406)
    assert processor.default_to_square is False and processor.model_input_names == ["pixel_values"]
    processor.do_resize = False
    assert processor.to_dict()["do_resize"] is False
    for clone in (pickle.loads(pickle.dumps(processor)), processor.__class__.from_dict(processor.to_dict())):
        assert clone.to_dict() == processor.to_dict() and clone.default_to_square is False


def test_loads_from_the_hub_cache_offline(tmp_path, monkeypatch, images):
    cache = make_hub_cache(
        tmp_path / "hub",
        "google/vit-base-patch16-224",
        {"preprocessor_config.json": json.dumps(HUB_CONFIGS["vit"]).encode()},
        commit="0123456789abcdef0123456789abcdef01234567",
    )
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    processor = AutoImageProcessor.from_pretrained("google/vit-base-patch16-224")
    assert repr(processor) == SEED_VIT_REPR
    snapshot = cache / "models--google--vit-base-patch16-224" / "snapshots" / ("0123456789abcdef" * 2 + "01234567")
    assert (snapshot / "preprocessor_config.json").is_file()
    out = processor(images["photo"], return_tensors="pt")
    assert out.pixel_values.shape == (1, 3, 224, 224)
    with pytest.raises(CheckpointNotFoundError, match="HF_HUB_OFFLINE"):
        AutoImageProcessor.from_pretrained("google/not-cached")


def test_class_chosen_from_model_type_when_the_file_names_none(tmp_path, images):
    settings = {key: value for key, value in HUB_CONFIGS["convnext"].items() if key != "feature_extractor_type"}
    folder = _write(tmp_path / "resnet", settings, config={"model_type": "resnet"})
    ours = AutoImageProcessor.from_pretrained(folder)
    assert ours.class_name == "ConvNextImageProcessor"
    theirs = reference(folder)
    assert ours.to_json_string() == theirs.to_json_string()
    assert_same(ours(images["photo"], return_tensors="pt"), theirs(images["photo"], return_tensors="pt"))


def test_processor_config_bundle_and_fast_names(tmp_path):
    folder = tmp_path / "bundle"
    folder.mkdir()
    bundled = {**HUB_CONFIGS["bit"], "image_processor_type": "BitImageProcessorFast"}
    (folder / "processor_config.json").write_text(json.dumps({"image_processor": bundled, "processor_class": "X"}))
    processor = AutoImageProcessor.from_pretrained(folder, use_fast=True)
    assert processor.class_name == "BitImageProcessor"
    assert json.loads(processor.to_json_string())["image_processor_type"] == "BitImageProcessor"


def test_load_overrides_and_unused_keywords(checkpoints):
    processor = AutoImageProcessor.from_pretrained(
        checkpoints["clip"], size=256, do_center_crop=False, use_fast=False, backend="torchvision"
    )
    assert processor.size == {"shortest_edge": 256} and processor.do_center_crop is False
    theirs = transformers.AutoImageProcessor.from_pretrained(
        str(checkpoints["clip"]), size=256, do_center_crop=False, backend="pil"
    )
    assert processor.to_json_string() == theirs.to_json_string()
    processor, unused = ImageProcessor.from_pretrained(checkpoints["vit"], not_a_setting=1, return_unused_kwargs=True)
    assert unused == {"not_a_setting": 1}
    from_file = ImageProcessor.from_pretrained(checkpoints["convnext"] / "preprocessor_config.json", crop_pct=0.9)
    assert from_file.crop_pct == 0.9 and from_file.class_name == "ConvNextImageProcessor"


@pytest.mark.parametrize("name", sorted(HUB_CONFIGS))
def test_save_round_trips_both_ways(tmp_path, checkpoints, images, name):
    ours = AutoImageProcessor.from_pretrained(checkpoints[name])
    written = ours.save_pretrained(tmp_path / "ours")
    assert written == [str(tmp_path / "ours" / "preprocessor_config.json")]
    assert sorted(os.listdir(tmp_path / "ours")) == ["preprocessor_config.json"]  # no temporary left behind
    reloaded_by_them = reference(tmp_path / "ours")
    reloaded_by_us = ImageProcessor.from_pretrained(tmp_path / "ours")
    assert reloaded_by_them.to_json_string() == reloaded_by_us.to_json_string() == ours.to_json_string()
    image = images["small"]
    assert_same(reloaded_by_us(image, return_tensors="pt"), reloaded_by_them(image, return_tensors="pt"))

    reference(checkpoints[name]).save_pretrained(str(tmp_path / "theirs"))
    from_theirs = AutoImageProcessor.from_pretrained(tmp_path / "theirs")
    assert from_theirs.to_json_string() == ours.to_json_string()


def test_dict_round_trip_and_unknown_keys_are_kept(checkpoints):
    settings = {**HUB_CONFIGS["vit"], "some_future_key": [1, 2], "crop_pct": 0.9}
    ours = ImageProcessor.from_dict(settings)
    theirs = transformers.ViTImageProcessorPil.from_dict(dict(settings))
    assert ours.to_json_string() == theirs.to_json_string()
    again = ImageProcessor.from_dict(ours.to_dict())
    assert again.to_dict() == ours.to_dict()
    clip_defaults = transformers.CLIPImageProcessorPil().to_json_string()
    assert ImageProcessor("CLIPImageProcessor").to_json_string() == clip_defaults


# ----------------------------------------------------------------------------------------------
# BatchFeature
# ----------------------------------------------------------------------------------------------


def test_batch_feature_behaves_like_the_reference(checkpoints, images):
    processor = AutoImageProcessor.from_pretrained(checkpoints["vit"])
    out = processor([images["small"], images["photo"]], return_tensors="pt")
    assert isinstance(out, dict) and list(out) == ["pixel_values"]
    assert out.pixel_values is out["pixel_values"]
    assert repr(out).startswith("{'pixel_values': tensor(")
    with pytest.raises(KeyError):
        out[0]
    with pytest.raises(AttributeError):
        _ = out.input_ids
    mixed = BatchFeature({"pixel_values": out.pixel_values, "mask": torch.ones(2, 3, dtype=torch.long)})
    assert mixed.to(torch.float16) is mixed
    assert mixed.pixel_values.dtype == torch.float16 and mixed.mask.dtype == torch.long
    mixed.to("cpu")
    mixed.to(device="cpu", dtype=torch.float32)
    assert mixed.pixel_values.dtype == torch.float32
    with pytest.raises(InputError):
        mixed.to(3.5)
    restored = pickle.loads(pickle.dumps(out))
    assert isinstance(restored, BatchFeature) and torch.equal(restored.pixel_values, out.pixel_values)
    data = {"pixel_values": [np.zeros((3, 2, 2), np.float32)] * 2, "labels": [1, 2], "name": "x"}
    as_numpy = BatchFeature(data, tensor_type="np")
    assert as_numpy.pixel_values.shape == (2, 3, 2, 2) and as_numpy.labels.dtype.kind == "i" and as_numpy.name == "x"
    assert BatchFeature({"v": [np.zeros(2)] * 3}).convert_to_tensors("pt").v.shape == (3, 2)


def test_return_tensors_kinds(checkpoints, images):
    processor = AutoImageProcessor.from_pretrained(checkpoints["clip"])
    as_list = processor([images["small"], images["photo"]])
    assert isinstance(as_list.pixel_values, list) and all(isinstance(a, np.ndarray) for a in as_list.pixel_values)
    assert as_list.pixel_values[0].shape == (3, 224, 224) and as_list.pixel_values[0].dtype == np.float32
    assert isinstance(processor(images["small"], return_tensors="np").pixel_values, np.ndarray)
    assert processor(images["small"], return_tensors="pt").pixel_values.dtype == torch.float32
    raw = processor(images["small"], do_rescale=False, do_normalize=False, return_tensors="pt").pixel_values
    assert raw.dtype == torch.uint8


# ----------------------------------------------------------------------------------------------
# Errors: ours, saying what, where and how to fix it
# ----------------------------------------------------------------------------------------------


def test_bad_images_raise_input_errors(checkpoints, images):
    processor = AutoImageProcessor.from_pretrained(checkpoints["vit"])
    cases = [
        (None, "No images"),
        ([], "empty"),
        ([[]], "empty"),
        (42, "not an image"),
        ({"pixel_values": 1}, "not an image"),
        ("no/such/file.png", "does not exist"),
        ("https://example.com/cat.png", "not fetched"),
        (np.zeros((2, 20, 30), np.uint8), "input_data_format"),
        (np.zeros((20, 30, 2), np.uint8), "input_data_format"),
        (np.zeros((1, 1, 20, 30, 3), np.uint8), "dimensions"),
        (np.zeros((3,), np.uint8), "dimensions"),
        (np.full((20, 30, 3), np.nan, np.float32), "NaN"),
        (np.full((20, 30, 3), 2.5, np.float32), r"\[0, 1\]"),
        (np.full((20, 30, 3), 300, np.int32), "outside the 8-bit range"),
        (np.zeros((0, 5, 3), np.uint8), "at least one pixel"),
        ([[[images["small"]]]], "nested"),
    ]
    for value, message in cases:
        with pytest.raises(InputError, match=message):
            processor(value)
    with pytest.raises(InputError, match="image_mean has 3 values"):
        processor(images["LA"], do_convert_rgb=False)
    with pytest.raises(InputError, match="I;16|outside the 8-bit range"):
        processor(images["I;16"], do_normalize=False)
    # NaN passes through when nothing needs 8-bit pixels, as in the reference
    out = processor(np.full((4, 4, 3), np.nan, np.float32), do_resize=False, return_tensors="np")
    assert np.isnan(out.pixel_values).all()


def test_bad_call_arguments_raise_input_errors(checkpoints, images):
    processor = AutoImageProcessor.from_pretrained(checkpoints["vit"])
    image = images["small"]
    cases = [
        ({"crop_pct": 0.5}, "unexpected argument"),
        ({"sizee": 3}, "unexpected argument"),
        ({"return_tensors": "tf"}, "return_tensors"),
        ({"size": {"foo": 3}}, "key sets"),
        ({"size": "big"}, "not a size"),
        ({"size": None}, "needs a size"),
        ({"resample": 9}, "Pillow filter"),
        ({"do_resize": "yes"}, "true, false or null"),
        ({"image_mean": [1, 2]}, "image_mean has 2 values"),
        ({"image_mean": "grey"}, "number"),
        ({"do_center_crop": True}, "crop_size"),
        ({"do_center_crop": True, "crop_size": {"shortest_edge": 100}}, "crop_size"),
        ({"do_pad": True}, "pad_size"),
        ({"do_pad": True, "pad_size": {"height": 10, "width": 10}}, "smaller"),
        ({"input_data_format": "sideways"}, "channels_first"),
        ({"size": {"min_pixels": 1, "max_pixels": 9}}, "Cannot resize"),
    ]
    for kwargs, message in cases:
        with pytest.raises(InputError, match=message):
            processor(image, **kwargs)
    with pytest.raises(InputError, match="positionally"):
        processor(image, "pt")
    convnext = AutoImageProcessor.from_pretrained(checkpoints["convnext"])
    with pytest.raises(InputError, match="shortest_edge"):
        convnext(image, size={"height": 224, "width": 224})
    assert all(issubclass(e, (LeanformersError, ValueError)) for e in (InputError, ConfigError))


def test_bad_checkpoints_raise_our_errors(tmp_path):
    def folder(name: str, text: str | None = None, config: dict | None = None) -> Path:
        path = tmp_path / name
        path.mkdir()
        if text is not None:
            (path / "preprocessor_config.json").write_text(text)
        if config is not None:
            (path / "config.json").write_text(json.dumps(config))
        return path

    with pytest.raises(ConfigError, match="not valid JSON"):
        AutoImageProcessor.from_pretrained(folder("broken", "{not json"))
    with pytest.raises(ConfigError, match="JSON object"):
        AutoImageProcessor.from_pretrained(folder("list", "[1, 2]"))
    with pytest.raises(UnsupportedModelError, match="DetrImageProcessor.*Supported"):
        AutoImageProcessor.from_pretrained(folder("detr", json.dumps({"image_processor_type": "DetrImageProcessor"})))
    with pytest.raises(RemoteCodeError, match="never runs"):
        remote = {"image_processor_type": "MyProc", "auto_map": {"AutoImageProcessor": "a.MyProc"}}
        AutoImageProcessor.from_pretrained(folder("remote", json.dumps(remote)))
    with pytest.raises(UnsupportedModelError, match="image_processor_type"):
        AutoImageProcessor.from_pretrained(folder("untyped", json.dumps({"size": 224}), config={"model_type": "bert"}))
    with pytest.raises(CheckpointNotFoundError, match="preprocessor_config.json"):
        AutoImageProcessor.from_pretrained(folder("empty"))
    bad_size = {**HUB_CONFIGS["vit"], "size": {"height": 224}}
    with pytest.raises(ConfigError, match="preprocessor_config.json.*key sets"):
        AutoImageProcessor.from_pretrained(folder("bad_size", json.dumps(bad_size)))
    bad_resample = {**HUB_CONFIGS["vit"], "resample": "bicubic"}
    with pytest.raises(ConfigError, match="Pillow filter"):
        AutoImageProcessor.from_pretrained(folder("bad_resample", json.dumps(bad_resample)))
    with pytest.raises(InputError, match="a folder"):
        ImageProcessor("ViTImageProcessor").save_pretrained(tmp_path / "broken" / "preprocessor_config.json")


def test_importing_the_module_stays_light():
    code = "import sys, leanformers.processing.image; print('torch' in sys.modules, 'transformers' in sys.modules)"
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.split() == ["False", "False"]


# ----------------------------------------------------------------------------------------------
# Batches on several threads: the same result, and the same error, as one thread
# ----------------------------------------------------------------------------------------------


@pytest.fixture
def budget():
    """threads.set_num_threads for the test; the default budget and torch's threads come back afterwards."""
    before = torch.get_num_threads()
    yield threads.set_num_threads
    threads.set_num_threads(None)
    torch.set_num_threads(before)


def _mixed_batch(images, folder: Path) -> list:
    """Nine images of mixed sizes and modes, two of them files (a PNG with alpha and a JPEG)."""
    png, jpeg = folder / "rgba.png", folder / "tall.jpg"
    images["RGBA"].save(png)
    images["tall"].save(jpeg, quality=90)
    return [images["photo"], images["L"], images["small"], str(png), images["P"], images["strokes"], str(jpeg),
            images["pixel"], images["RGBA"]]


def _one_and_four_threads(budget, processor, batch, **kwargs):
    budget(1)
    one = processor(batch, **kwargs)
    budget(4)
    four = processor(batch, **kwargs)
    assert any(thread.name.startswith("leanformers-image") for thread in threading.enumerate())
    return one.pixel_values, four.pixel_values


@pytest.mark.parametrize("name", ["vit", "convnext", "clip"])
def test_threads_give_the_same_batch(tmp_path, checkpoints, images, budget, name):
    processor = AutoImageProcessor.from_pretrained(checkpoints[name])
    one, four = _one_and_four_threads(budget, processor, _mixed_batch(images, tmp_path), return_tensors="pt")
    assert one.shape == (9, 3, 224, 224) and torch.equal(one, four)


def test_threads_give_the_same_mixed_outputs(tmp_path, checkpoints, images, budget):
    processor = AutoImageProcessor.from_pretrained(checkpoints["clip"])
    batch = _mixed_batch(images, tmp_path)
    cases = [
        {"do_resize": False, "do_center_crop": False},  # every size differs
        {"do_convert_rgb": False, "do_normalize": False},  # 1, 3 or 4 channels: no one batch array
        {"do_rescale": False, "do_normalize": False},  # uint8 out
        {"do_pad": True, "pad_size": {"height": 230, "width": 230}},
    ]
    for kwargs in cases:
        one, four = _one_and_four_threads(budget, processor, batch, **kwargs)
        assert type(one) is type(four) is list and len(one) == len(four) == 9, kwargs
        for a, b in zip(one, four):
            assert a.dtype == b.dtype and np.array_equal(a, b), kwargs


def test_threads_raise_the_lowest_index_error(tmp_path, checkpoints, images, budget):
    processor = AutoImageProcessor.from_pretrained(checkpoints["vit"])
    batch = [images["small"]] * 9
    batch[5] = str(tmp_path / "missing.png")
    batch[7] = np.full((20, 30, 3), 2.5, np.float32)
    cannot_finish = [images["small"], images["LA"]] + batch[2:]  # 2 channels against a 3-value mean
    for bad, kwargs, message in [
        (batch, {}, "does not exist"),
        (batch[:5] + batch[6:], {}, r"\[0, 1\]"),
        # a file that cannot be read comes before a later image that cannot be normalized
        (cannot_finish, {"do_convert_rgb": False}, "does not exist"),
        (cannot_finish[:5], {"do_convert_rgb": False}, "image_mean has 3 values"),
    ]:
        raised = []
        for count in (1, 4):
            budget(count)
            with pytest.raises(InputError, match=message) as caught:
                processor(bad, **kwargs)
            raised.append((type(caught.value), str(caught.value)))
        assert raised[0] == raised[1]


def test_threaded_batch_matches_the_reference(tmp_path, checkpoints, images, budget):
    budget(4)
    batch = _mixed_batch(images, tmp_path)
    ours, theirs = AutoImageProcessor.from_pretrained(checkpoints["clip"]), reference(checkpoints["clip"])
    assert assert_same(ours(batch, return_tensors="pt"), theirs(batch, return_tensors="pt")) == 0.0
    photos = [images["photo"], images["photo"].transpose(Image.Transpose.FLIP_TOP_BOTTOM), images["tall"]] * 2
    ours, theirs = AutoImageProcessor.from_pretrained(checkpoints["convnext"]), reference(checkpoints["convnext"])
    assert assert_same(ours(photos, return_tensors="pt"), theirs(photos, return_tensors="pt")) == 0.0


def test_a_lazily_opened_image_given_twice(tmp_path, checkpoints, images, budget):
    """Pillow reads an opened file on first use; two threads must not do that for one image at once."""
    path = tmp_path / "photo.png"
    images["photo"].save(path)
    processor = AutoImageProcessor.from_pretrained(checkpoints["vit"])
    budget(4)
    expected = processor(images["photo"], return_tensors="pt").pixel_values
    with Image.open(path) as opened:
        out = processor([opened, opened, opened], return_tensors="pt").pixel_values
    assert all(torch.equal(row, expected[0]) for row in out)
