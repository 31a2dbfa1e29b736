"""SigLIP's image processor settings (and CLIP's, bit for bit) against the reference's PIL path.

SiglipImageProcessor is the one image engine with the "siglip" profile: warp to the square size
(bicubic, no crop), rescale by 1/255, normalize with mean = std = 0.5, convert to RGB. Configs are
written as the hub checkpoints ship them; images are generated here in several sizes and modes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from leanformers import registry
from leanformers.processing.image import ImageProcessor, load_image_processor

transformers = pytest.importorskip("transformers")

TOLERANCE = 1e-6
# The registry lines SigLIP needs (added by the registry's owner; added here for this module's
# duration while they are not there yet).
REGISTRY_LINES = {"SiglipImageProcessor": "siglip"}

HUB_CONFIGS = {
    "siglip": {  # google/siglip-base-patch16-224
        "do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": [0.5, 0.5, 0.5],
        "image_processor_type": "SiglipImageProcessor", "image_std": [0.5, 0.5, 0.5],
        "processor_class": "SiglipProcessor", "resample": 3, "rescale_factor": 0.00392156862745098,
        "size": {"height": 224, "width": 224},
    },
    "siglip-384": {  # google/siglip-so400m-patch14-384
        "do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": [0.5, 0.5, 0.5],
        "image_processor_type": "SiglipImageProcessor", "image_std": [0.5, 0.5, 0.5],
        "processor_class": "SiglipProcessor", "resample": 3, "rescale_factor": 0.00392156862745098,
        "size": {"height": 384, "width": 384},
    },
    "siglip-bare": {"image_processor_type": "SiglipImageProcessor"},  # every class default
    "clip": {  # openai/clip-vit-base-patch32
        "crop_size": 224, "do_center_crop": True, "do_normalize": True, "do_resize": True,
        "feature_extractor_type": "CLIPFeatureExtractor", "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3, "size": 224,
    },
    "clip-processor": {  # openai/clip-vit-large-patch14 (the v4 form)
        "crop_size": {"height": 224, "width": 224}, "do_center_crop": True, "do_convert_rgb": True,
        "do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_processor_type": "CLIPImageProcessor", "image_std": [0.26862954, 0.26130258, 0.27577711],
        "resample": 3, "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": 224},
    },
}


@pytest.fixture(scope="module", autouse=True)
def siglip_registered() -> Iterator[bool]:
    """Whether the registry itself knows the class; the profile tests run either way."""
    known = "SiglipImageProcessor" in registry.IMAGE_PROCESSORS
    with pytest.MonkeyPatch.context() as patch:
        for name, profile in REGISTRY_LINES.items():
            if name not in registry.IMAGE_PROCESSORS:
                patch.setitem(registry.IMAGE_PROCESSORS, name, profile)
        yield known


def _photo(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    base = np.stack([255 * x / max(width - 1, 1), 255 * y / max(height - 1, 1),
                     127.5 + 127.5 * np.sin((x + 2 * y) / 23.0)], axis=-1)
    return Image.fromarray(np.clip(base + rng.normal(0, 18, size=base.shape), 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def images() -> dict[str, Image.Image]:
    photo, small = _photo(640, 480, seed=0), _photo(37, 23, seed=1)
    strokes = np.full((80, 120, 3), 255, dtype=np.uint8)
    strokes[10:70:9, 5:115] = (0, 0, 0)
    half_alpha = small.convert("RGBA")
    half_alpha.putalpha(Image.fromarray(np.tile(np.arange(37, dtype=np.uint8) * 7, (23, 1))))
    return {
        "photo": photo, "tall": _photo(90, 300, seed=2), "pixel": _photo(1, 1, seed=3), "small": small,
        "strokes": Image.fromarray(strokes), "L": photo.convert("L"), "LA": small.convert("LA"), "RGBA": half_alpha,
        "P": small.convert("P"), "CMYK": small.convert("CMYK"),
        "I;16": Image.fromarray(np.asarray(small.convert("L")).astype(np.uint16) * 257),
    }


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("siglip_image_processors")
    folders = {}
    for name, settings in HUB_CONFIGS.items():
        folders[name] = root / name
        folders[name].mkdir()
        (folders[name] / "preprocessor_config.json").write_text(json.dumps(settings))
    return folders


def reference(folder: Path):
    processor = transformers.AutoImageProcessor.from_pretrained(str(folder), backend="pil")
    assert processor.backend == "pil" and type(processor).__name__.endswith("Pil")
    return processor


def _worst(ours, theirs) -> float:
    """The largest difference of two outputs, after checking keys, types, shapes and dtypes."""
    assert sorted(ours.keys()) == sorted(theirs.keys())
    worst = 0.0
    for key in theirs:
        a, b = ours[key], theirs[key]
        rows = list(zip(a, b)) if isinstance(b, list) else [(a, b)]
        assert type(a) is type(b) and (not isinstance(b, list) or len(a) == len(b)), key
        for x, y in rows:
            assert type(x) is type(y) and tuple(x.shape) == tuple(y.shape) and x.dtype == y.dtype, key
            x, y = (np.asarray(v.numpy() if isinstance(v, torch.Tensor) else v, dtype=np.float64) for v in (x, y))
            worst = max(worst, float(np.abs(x - y).max()) if x.size else 0.0)
    return worst


SIGLIP = ["siglip", "siglip-384", "siglip-bare"]


@pytest.mark.parametrize("name", sorted(HUB_CONFIGS))
def test_settings_match_the_reference(checkpoints: dict[str, Path], name: str) -> None:
    ours, theirs = load_image_processor(checkpoints[name]), reference(checkpoints[name])
    assert ours.to_json_string() == theirs.to_json_string()
    assert repr(ours) == repr(theirs).replace("Pil {", " {", 1)
    assert ours.class_name == type(theirs).__name__.removesuffix("Pil")


def test_siglip_defaults_are_the_reference_class_defaults() -> None:
    ours, theirs = ImageProcessor("SiglipImageProcessor"), transformers.SiglipImageProcessorPil()
    assert json.loads(ours.to_json_string()) == {
        **json.loads(theirs.to_json_string()), "image_processor_type": "SiglipImageProcessor"
    }
    assert ours.size == {"height": 224, "width": 224} and ours.resample == 3 and not ours.do_center_crop
    assert ours.image_mean == ours.image_std == theirs.image_mean == theirs.image_std == (0.5, 0.5, 0.5)


@pytest.mark.parametrize("name", sorted(HUB_CONFIGS))
def test_images_match_the_reference(checkpoints: dict[str, Path], images: dict, name: str) -> None:
    ours, theirs = load_image_processor(checkpoints[name]), reference(checkpoints[name])
    batch = [images[key] for key in ("photo", "tall", "pixel", "strokes", "small")]
    assert _worst(ours(batch, return_tensors="pt"), theirs(batch, return_tensors="pt")) <= TOLERANCE
    for image in batch[1:3]:
        assert _worst(ours(image, return_tensors="np"), theirs(image, return_tensors="np")) <= TOLERANCE


@pytest.mark.parametrize("name", ["siglip", "clip", "clip-processor"])
@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "I;16"])
def test_image_modes_match_the_reference(checkpoints: dict[str, Path], images: dict, name: str, mode: str) -> None:
    ours, theirs = load_image_processor(checkpoints[name]), reference(checkpoints[name])
    assert _worst(ours(images[mode], return_tensors="np"), theirs(images[mode], return_tensors="np")) <= TOLERANCE


@pytest.mark.parametrize("name", ["siglip", "clip"])
def test_photo_batch_is_bit_exact(checkpoints: dict[str, Path], images: dict, name: str) -> None:
    """The common case (photos, 'pt'): the reference's values to the last bit."""
    ours, theirs = load_image_processor(checkpoints[name]), reference(checkpoints[name])
    batch = [images["photo"], images["photo"].transpose(Image.Transpose.FLIP_LEFT_RIGHT), images["tall"]]
    a, b = ours(batch, return_tensors="pt").pixel_values, theirs(batch, return_tensors="pt").pixel_values
    assert a.shape == (3, 3, 224, 224) and a.dtype == torch.float32
    assert torch.equal(a, b)


def test_arrays_and_call_overrides_match_the_reference(checkpoints: dict[str, Path], images: dict) -> None:
    ours, theirs = load_image_processor(checkpoints["siglip"]), reference(checkpoints["siglip"])
    array = np.asarray(images["tall"])
    inputs = [array, array.transpose(2, 0, 1).astype(np.float32) / 255, torch.tensor(array.transpose(2, 0, 1))]
    for image in inputs:
        assert _worst(ours(image, return_tensors="pt"), theirs(image, return_tensors="pt")) <= TOLERANCE
    photo = images["photo"]
    # An int size means the short side here (default_to_square is off), as in the reference.
    for options in ({"size": 128}, {"size": {"height": 96, "width": 160}}, {"resample": 2}, {"do_normalize": False},
                    {"image_mean": [0.1, 0.2, 0.3], "image_std": 0.25}, {"do_resize": False}):
        got, expected = ours(photo, return_tensors="np", **options), theirs(photo, return_tensors="np", **options)
        assert _worst(got, expected) <= TOLERANCE, options
    assert ours(photo, size=128, return_tensors="np").pixel_values.shape == (1, 3, 128, 170)


def test_save_round_trips_both_ways(checkpoints: dict[str, Path], images: dict, tmp_path: Path) -> None:
    ours = load_image_processor(checkpoints["siglip-384"])
    ours.save_pretrained(tmp_path / "ours")
    theirs = reference(tmp_path / "ours")
    again = load_image_processor(tmp_path / "ours")
    assert again.to_json_string() == ours.to_json_string() == theirs.to_json_string()
    photo = images["photo"]
    assert _worst(again(photo, return_tensors="np"), theirs(photo, return_tensors="np")) <= TOLERANCE


def test_auto_image_processor_by_model_type(siglip_registered: bool, tmp_path: Path, images: dict) -> None:
    """A SigLIP checkpoint whose preprocessor_config.json names no class gets SigLIP's settings."""
    if not siglip_registered or registry.DEFAULT_IMAGE_PROCESSOR.get("siglip") != "SiglipImageProcessor":
        pytest.skip("the registry has no SiglipImageProcessor entries yet")
    from leanformers.auto import AutoImageProcessor

    settings = {key: value for key, value in HUB_CONFIGS["siglip"].items() if key != "image_processor_type"}
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(settings))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "siglip"}))
    ours, theirs = AutoImageProcessor.from_pretrained(tmp_path), reference(tmp_path)
    assert ours.class_name == "SiglipImageProcessor"
    assert _worst(ours(images["photo"], return_tensors="pt"), theirs(images["photo"], return_tensors="pt")) == 0.0
