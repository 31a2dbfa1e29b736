"""Image classification end to end: processor + model from one folder, against the reference."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import transformers
from PIL import Image

from leanformers import AutoImageProcessor, AutoModelForImageClassification

LABELS = {0: "cat", 1: "dog", 2: "hobbit"}


def photo(seed: int, size=(97, 61), mode="RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB").convert(mode)


@pytest.fixture(scope="module", params=["vit", "swin", "resnet"])
def checkpoint(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    torch.manual_seed(0)
    if request.param == "vit":
        config = transformers.ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                                        num_attention_heads=4, intermediate_size=37, id2label=LABELS)
        model = transformers.ViTForImageClassification(config)
        processor = {"image_processor_type": "ViTImageProcessor", "size": {"height": 32, "width": 32},
                     "image_mean": [0.5] * 3, "image_std": [0.5] * 3}
    elif request.param == "swin":
        config = transformers.SwinConfig(image_size=32, patch_size=4, embed_dim=16, depths=[1, 2],
                                         num_heads=[2, 4], window_size=4, id2label=LABELS)
        model = transformers.SwinForImageClassification(config)
        processor = {"feature_extractor_type": "ViTFeatureExtractor", "size": 32, "resample": 3,
                     "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}
    else:
        config = transformers.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 2, 1],
                                           id2label=LABELS)
        model = transformers.ResNetForImageClassification(config)
        processor = {"image_processor_type": "ConvNextImageProcessor", "size": {"shortest_edge": 32},
                     "crop_pct": 0.875, "resample": 3}
    model.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(processor))
    return folder


def test_predictions_match_reference(checkpoint):
    images = [photo(1), photo(2, (40, 90), "L"), photo(3, (64, 64), "RGBA")]
    ours_processor = AutoImageProcessor.from_pretrained(checkpoint)
    ours_model = AutoModelForImageClassification.from_pretrained(checkpoint)
    ref_processor = transformers.AutoImageProcessor.from_pretrained(checkpoint)
    ref_model = transformers.AutoModelForImageClassification.from_pretrained(checkpoint).eval()
    ours_inputs = ours_processor(images, return_tensors="pt")
    # the reference refuses non-RGB images unless told to convert them
    ref_inputs = ref_processor([im.convert("RGB") for im in images], return_tensors="pt")
    assert torch.equal(ours_inputs["pixel_values"], ref_inputs["pixel_values"])
    with torch.no_grad():
        ours = ours_model(**ours_inputs).logits
        ref = ref_model(**ref_inputs).logits
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    predicted = [ours_model.config.id2label[i] for i in ours.argmax(-1).tolist()]
    assert predicted == [ref_model.config.id2label[i] for i in ref.argmax(-1).tolist()]
    assert set(predicted) <= set(LABELS.values())
