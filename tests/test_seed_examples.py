"""The seed tutorial's code blocks, with only the import line changed, run offline.

Hub ids resolve through a huggingface_hub-style cache the test lays out. The text checkpoints
use the real bert-base-uncased vocabulary (shipped with all-MiniLM-L6-v2); model weights are
random but of the real architectures' shapes, so the printed shapes and types are the seed's.
Downloads in the seed (images over HTTP) are replaced by local images.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch
import transformers
from PIL import Image

from conftest import make_hub_cache

VIT_PREPROCESSOR = {  # google/vit-base-patch16-224's preprocessor_config.json
    "do_normalize": True, "do_resize": True, "feature_extractor_type": "ViTFeatureExtractor",
    "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "resample": 2, "size": 224,
}
SWIN_PREPROCESSOR = {  # microsoft/swin-tiny-patch4-window7-224's preprocessor_config.json
    "do_normalize": True, "do_resize": True, "feature_extractor_type": "ViTFeatureExtractor",
    "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225], "resample": 3, "size": 224,
}
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
}"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory, minilm_dir):
    root = tmp_path_factory.mktemp("seed")
    work = root / "work"
    work.mkdir()
    text = {name: minilm_dir / name for name in
            ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")}
    torch.manual_seed(0)
    bert = work / "bert"
    transformers.BertModel(transformers.BertConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37)).save_pretrained(bert)
    distil = work / "distil"
    transformers.DistilBertForMaskedLM(transformers.DistilBertConfig(
        dim=32, n_layers=1, n_heads=2, hidden_dim=37)).save_pretrained(distil)
    swin = work / "swin"
    transformers.SwinForImageClassification(transformers.SwinConfig()).save_pretrained(swin)
    (work / "vit.json").write_text(json.dumps(VIT_PREPROCESSOR))
    (work / "swin.json").write_text(json.dumps(SWIN_PREPROCESSOR))
    cache = root / "hub"
    make_hub_cache(cache, "google-bert/bert-base-uncased", {**text, "config.json": bert / "config.json",
                                                            "model.safetensors": bert / "model.safetensors"})
    make_hub_cache(cache, "distilbert/distilbert-base-uncased",
                   {**text, "config.json": distil / "config.json", "model.safetensors": distil / "model.safetensors"})
    make_hub_cache(cache, "google/vit-base-patch16-224", {"preprocessor_config.json": work / "vit.json"})
    make_hub_cache(cache, "microsoft/swin-tiny-patch4-window7-224",
                   {"preprocessor_config.json": work / "swin.json", "config.json": swin / "config.json",
                    "model.safetensors": swin / "model.safetensors"})
    Image.effect_mandelbrot((640, 480), (-2, -1.2, 1, 1.2), 100).convert("RGB").save(work / "cat.png")
    return cache, work


def run_seed(hub, code: str) -> str:
    cache, work = hub
    env = {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                         cwd=work, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_auto_tokenizer_block(hub):
    out = run_seed(hub, """
        from leanformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained("google-bert/bert-base-uncased")
        print(tokenizer)
        print('-'*30)
        sequence = "In a hole in the ground there lived a hobbit."
        print(tokenizer(sequence))
    """)
    assert "BertTokenizer(name_or_path='google-bert/bert-base-uncased', vocab_size=30522" in out
    assert "'input_ids': [101, 1999, 1037, 4920, 1999, 1996, 2598, 2045, 2973, 1037, 7570, 10322, 4183, 1012, 102]" in out


def test_auto_image_processor_block(hub):
    out = run_seed(hub, """
        from leanformers import AutoImageProcessor

        image_processor = AutoImageProcessor.from_pretrained("google/vit-base-patch16-224")

        print(image_processor)

        print('-'*30)
        from PIL import Image
        image = Image.open("cat.png")

        inputs = image_processor(images=image, return_tensors="pt")

        print("shape:", inputs.pixel_values.shape)
        print("type:", type(inputs))
        for key, value in inputs.items():
            print(f"{key}: {type(value)} - shape: {value.shape}")
    """)
    assert out.startswith(SEED_VIT_REPR)
    assert "shape: torch.Size([1, 3, 224, 224])" in out
    assert "BatchFeature" in out
    assert "pixel_values: <class 'torch.Tensor'> - shape: torch.Size([1, 3, 224, 224])" in out


def test_auto_backbone_block(hub):
    out = run_seed(hub, """
        from leanformers import AutoImageProcessor, AutoBackbone
        import torch
        from PIL import Image

        image = Image.open("cat.png")
        processor = AutoImageProcessor.from_pretrained("microsoft/swin-tiny-patch4-window7-224")
        model = AutoBackbone.from_pretrained("microsoft/swin-tiny-patch4-window7-224", out_indices=(1,))

        inputs = processor(image, return_tensors="pt")
        outputs = model(**inputs)
        feature_maps = outputs.feature_maps

        print(feature_maps[0].shape)
    """)
    assert out.strip().endswith("torch.Size([1, 96, 56, 56])")


def test_auto_model_block(hub):
    out = run_seed(hub, """
        from leanformers import AutoModelForSequenceClassification

        model = AutoModelForSequenceClassification.from_pretrained("distilbert/distilbert-base-uncased")

        from leanformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained("distilbert/distilbert-base-uncased")

        text = "This restaurant is awesome"

        inputs = tokenizer(text, return_tensors="pt")
        print(f'inputs: {inputs}')

        outputs = model(**inputs)
        print(f'outputs: {outputs}')
        print(f'outputs logits: {outputs.logits[0]}')
    """)
    assert "inputs: {'input_ids': tensor([[  101,  2023,  4825,  2003, 12476,   102]])" in out
    assert "outputs: SequenceClassifierOutput(loss=None, logits=tensor([[" in out
    assert "hidden_states=None, attentions=None)" in out
    assert "outputs logits: tensor([" in out
