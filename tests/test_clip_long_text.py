"""Texts longer than CLIP's 77 positions, against the reference (transformers 5.23).

A tiny CLIP checkpoint with the real model's text length (77 positions, a tokenizer whose
model_max_length is 77) and the zero-shot tests' SigLIP one. What the reference does, and so what
leanformers must do:
- the tokenizer and the processor keep every token unless ``truncation=True``, which cuts a text to
  76 tokens and its end-of-text token: ids equal;
- the text tower refuses more ids than it has positions (the reference with a ValueError, ours
  with InputError), and embeds truncated ids equally;
- the zero-shot pipeline: CLIP texts are not cut by default, so a too long label fails (the
  reference in its model; ours before the model, naming the label and the fix), and with
  ``tokenizer_kwargs={"truncation": True}`` (which the reference's call drops) the scores equal the
  reference model's on the reference tokenizer's truncated texts; SigLIP texts are cut to 64 by
  default in both libraries, so scores are equal.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import torch

import leanformers
from leanformers.errors import InputError
from leanformers.pipelines import pipeline

transformers = pytest.importorskip("transformers")
pytest.importorskip("PIL.Image")
transformers.logging.set_verbosity_error()

sys.path.insert(0, str(Path(__file__).parent))
from test_processor import _clip_tokenizer
from test_zero_shot_image import (
    SIGLIP_READY,
    TOWER,
    _same_ranking,
    _spread,
    build_siglip,
    photos,
)

LONG = "a photo of " + "the quick brown fox jumps over the lazy dog " * 12
LABELS = [LONG, "a cat", "a dog"]


@pytest.fixture(scope="module")
def clip77(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("clip77")
    text = dict(TOWER, vocab_size=600, max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1)
    vision = dict(TOWER, image_size=16, patch_size=8, projection_dim=24)
    config = transformers.CLIPConfig(text_config=text, vision_config=vision, projection_dim=24)
    _spread(transformers.CLIPModel(config), seed=11).save_pretrained(folder)
    tokenizer = _clip_tokenizer()
    tokenizer.model_max_length = 77
    image_processor = transformers.CLIPImageProcessor(size={"shortest_edge": 20}, crop_size={"height": 16, "width": 16})
    transformers.CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def test_tokenizer_and_processor_truncate_like_the_reference(clip77: Path) -> None:
    ours, ref = leanformers.AutoTokenizer.from_pretrained(str(clip77)), transformers.AutoTokenizer.from_pretrained(
        str(clip77))
    full = ref([LONG])["input_ids"][0]
    assert len(full) > 77, "the text must be longer than the model's positions"
    assert ours([LONG])["input_ids"][0] == full
    cut = ref([LONG, "a cat"], truncation=True, padding=True)
    assert len(cut["input_ids"][0]) == 77 and cut["input_ids"][0][-1] == ref.eos_token_id
    mine = ours([LONG, "a cat"], truncation=True, padding=True)
    assert mine["input_ids"] == cut["input_ids"] and mine["attention_mask"] == cut["attention_mask"]

    image = photos(1)[0]
    processors = (leanformers.AutoProcessor.from_pretrained(str(clip77)),
                  transformers.AutoProcessor.from_pretrained(str(clip77)))
    got, expected = (p(text=[LONG, "a cat"], images=[image], truncation=True, padding=True, return_tensors="pt")
                     for p in processors)
    assert got["input_ids"].shape == (2, 77)
    assert torch.equal(got["input_ids"], expected["input_ids"])
    assert torch.equal(got["attention_mask"], expected["attention_mask"])
    torch.testing.assert_close(got["pixel_values"], expected["pixel_values"], rtol=0, atol=1e-6)


def test_text_features_of_truncated_text_match_and_long_ids_raise(clip77: Path) -> None:
    ours = leanformers.AutoModel.from_pretrained(str(clip77))
    ref = transformers.CLIPModel.from_pretrained(str(clip77)).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(clip77))
    cut = tokenizer([LONG, "a cat"], truncation=True, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = ref.get_text_features(**cut)
        got = ours.get_text_features(**cut, return_dict=True).pooler_output
    torch.testing.assert_close(got, getattr(expected, "pooler_output", expected), rtol=1e-5, atol=1e-5)

    full = tokenizer([LONG], return_tensors="pt")
    with pytest.raises(ValueError, match="max_position_embeddings"):
        ref.get_text_features(**full)
    with pytest.raises(InputError, match=r"at most 77 \(max_position_embeddings\); truncate"):
        ours.get_text_features(**full)


def _reference_scores(folder: Path, image: Any, labels: list[str], template: str) -> list[dict[str, Any]]:
    """The reference model's zero-shot scores on the reference tokenizer's truncated texts."""
    model = transformers.CLIPModel.from_pretrained(str(folder)).eval()
    processor = transformers.AutoProcessor.from_pretrained(str(folder))
    texts = [template.format(label) for label in labels]
    inputs = processor(text=texts, images=[image], padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        scores = model(**inputs).logits_per_image.softmax(dim=-1)[0].tolist()
    ranked = sorted(zip(scores, labels), key=lambda pair: -pair[0])
    return [{"score": score, "label": label} for score, label in ranked]


def test_zero_shot_clip_long_labels(clip77: Path) -> None:
    ours = pipeline("zero-shot-image-classification", model=str(clip77))
    ref = transformers.pipeline("zero-shot-image-classification", model=str(clip77))
    image = photos(1, seed=3)[0]
    with pytest.raises(ValueError, match="max_position_embeddings"):
        ref(image, candidate_labels=LABELS)
    with pytest.raises(InputError, match=r"'This is a photo of a photo of the quick.*' is \d+ tokens long, but the text "
                                         r"tower of CLIPModel reads at most 77.*tokenizer_kwargs=\{'truncation': True\}"):
        ours(image, candidate_labels=LABELS)
    with pytest.raises(InputError, match="reads at most 77"):  # a long template, too
        ours(image, candidate_labels=["a cat"], hypothesis_template=LONG + " {}")

    expected = _reference_scores(clip77, image, LABELS, "This is a photo of {}.")
    assert max(e["score"] for e in expected) - min(e["score"] for e in expected) > 1e-3, "labels scored alike"
    _same_ranking(ours(image, candidate_labels=LABELS, tokenizer_kwargs={"truncation": True}), expected, "truncated")
    template = LONG + " {}"
    _same_ranking(ours(image, candidate_labels=["a cat", "a dog"], hypothesis_template=template,
                       tokenizer_kwargs={"truncation": True}),
                  _reference_scores(clip77, image, ["a cat", "a dog"], template), "a long template, truncated")


def test_text_embeddings_long_query(clip77: Path) -> None:
    ours = pipeline("zero-shot-image-classification", model=str(clip77))
    with pytest.raises(InputError, match=r"reads at most 77.*text_embeddings\(texts, truncation=True\)"):
        ours.text_embeddings([LONG])
    ref = transformers.CLIPModel.from_pretrained(str(clip77)).eval()
    cut = transformers.AutoTokenizer.from_pretrained(str(clip77))([LONG], truncation=True, return_tensors="pt")
    with torch.no_grad():
        expected = ref.get_text_features(**cut)
    expected = torch.nn.functional.normalize(getattr(expected, "pooler_output", expected), dim=-1)
    torch.testing.assert_close(ours.text_embeddings([LONG], truncation=True), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not SIGLIP_READY, reason="SiglipTokenizer / SiglipImageProcessor not in leanformers.registry yet")
def test_zero_shot_siglip_cuts_long_labels_like_the_reference(tmp_path: Path) -> None:
    folder = build_siglip(tmp_path / "siglip")
    ours = pipeline("zero-shot-image-classification", model=str(folder))
    ref = transformers.pipeline("zero-shot-image-classification", model=str(folder))
    labels = [LONG, LONG.replace("fox", "cat"), "snow"]
    assert len(ref.tokenizer("This is a photo of " + LONG)["input_ids"]) > 64, "the label must exceed 64 tokens"
    images = photos(2, seed=4)
    _same_ranking(ours(images, candidate_labels=labels), ref(images, candidate_labels=labels), "long SigLIP labels")
    with pytest.raises(InputError, match="reads at most 64"):
        ours(images[0], candidate_labels=labels, tokenizer_kwargs={"truncation": False, "padding": True, "max_length": None})
