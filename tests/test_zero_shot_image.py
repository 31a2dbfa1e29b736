"""Zero-shot image classification and image feature extraction against the reference's pipelines.

Tiny random CLIP and SigLIP checkpoints (both towers, with a processor) and a DINOv2 one are built
and saved by the reference (transformers 5.23). Weights are redrawn with a wide spread so that labels
get clearly different scores (a fresh init scores every label alike, which would prove nothing).
Both libraries run the same images (PIL images and files, one and many); labels must come back in
the same order and scores within 1e-5.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from leanformers import registry
from leanformers.errors import InputError, UnsupportedModelError
from leanformers.pipelines import pipeline

transformers = pytest.importorskip("transformers")
PIL_Image = pytest.importorskip("PIL.Image")
transformers.logging.set_verbosity_error()

sys.path.insert(0, str(Path(__file__).parent))
from test_processor import _clip_tokenizer

LABELS = ["a cat", "a dog", "a red car", "snow"]
# SigLIP's tokenizer is being added to the registry; its image processor's name must be there too
SIGLIP_READY = "SiglipTokenizer" in registry.TOKENIZERS and "SiglipImageProcessor" in registry.IMAGE_PROCESSORS
TOWER = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 2}


def _spread(model: Any, seed: int) -> Any:
    """``model`` with every weight redrawn from N(0, 0.3): distinct embeddings for distinct inputs."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    return model.eval()


def build_clip(folder: Path) -> Path:
    """A tiny CLIP checkpoint with its CLIPProcessor (16-pixel images, 600-token vocabulary)."""
    text = dict(TOWER, vocab_size=600, max_position_embeddings=32, bos_token_id=0, eos_token_id=1, pad_token_id=1)
    vision = dict(TOWER, image_size=16, patch_size=8, projection_dim=24)
    config = transformers.CLIPConfig(text_config=text, vision_config=vision, projection_dim=24)
    model = _spread(transformers.CLIPModel(config), seed=0)
    with torch.no_grad():
        model.logit_scale.fill_(2.0)
    model.save_pretrained(folder)
    image_processor = transformers.CLIPImageProcessor(size={"shortest_edge": 20}, crop_size={"height": 16, "width": 16})
    transformers.CLIPProcessor(image_processor=image_processor, tokenizer=_clip_tokenizer()).save_pretrained(folder)
    return folder


def build_siglip(folder: Path) -> Path:
    """A tiny SigLIP checkpoint with its SiglipProcessor (a small trained SentencePiece model)."""
    import io

    spm = pytest.importorskip("sentencepiece")
    from corpus import texts

    lines = [line for text in texts(600, seed=3) for line in text.splitlines() if line.strip()]
    lines += ["This is a photo of " + label + "." for label in LABELS] * 20
    spm_model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=spm_model, vocab_size=300, hard_vocab_limit=False, minloglevel=2,
        model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spiece.model").write_bytes(spm_model.getvalue())
    tokenizer = transformers.SiglipTokenizer(vocab_file=str(folder / "spiece.model"))
    text = dict(TOWER, vocab_size=tokenizer.vocab_size, max_position_embeddings=64, projection_size=32)
    config = transformers.SiglipConfig(text_config=text, vision_config=dict(TOWER, image_size=16, patch_size=8))
    model = _spread(transformers.SiglipModel(config), seed=1)
    image_processor = transformers.SiglipImageProcessor(size={"height": 16, "width": 16})
    # Every text ends in padding, which SigLIP pools: the labels' similarities differ little. A large
    # scale widens the differences and a bias centres them where the sigmoid is not flat.
    sample = tokenizer([f"This is a photo of {label}." for label in LABELS], padding="max_length", max_length=64,
                       return_tensors="pt")
    with torch.no_grad():
        model.logit_scale.fill_(5.0)
        model.logit_bias.fill_(0.0)
        pixels = image_processor(photos(1), return_tensors="pt")["pixel_values"]
        model.logit_bias.fill_(-model(**sample, pixel_values=pixels).logits_per_image.mean().item())
    model.save_pretrained(folder)
    transformers.SiglipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def photos(count: int, seed: int = 0) -> list[Any]:
    """``count`` random RGB images of varied sizes."""
    rng = np.random.default_rng(seed)
    return [
        PIL_Image.fromarray(rng.integers(0, 256, (int(rng.integers(18, 40)), int(rng.integers(18, 40)), 3),
                                         dtype=np.uint8))
        for _ in range(count)
    ]


@pytest.fixture(scope="session")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("zero_shot_image")
    paths = {"clip": build_clip(root / "clip")}
    vision = transformers.CLIPVisionConfig(**TOWER, image_size=16, patch_size=8, projection_dim=24)
    tower = _spread(transformers.CLIPVisionModelWithProjection(vision), seed=2)
    tower.save_pretrained(root / "clip_vision")
    transformers.CLIPImageProcessor(size={"shortest_edge": 20}, crop_size={"height": 16, "width": 16}).save_pretrained(
        root / "clip_vision"
    )
    paths["clip_vision"] = root / "clip_vision"
    dinov2 = transformers.Dinov2Config(**TOWER, image_size=16, patch_size=8)
    _spread(transformers.Dinov2Model(dinov2), seed=3).save_pretrained(root / "dinov2")
    transformers.BitImageProcessor(
        size={"shortest_edge": 20}, crop_size={"height": 16, "width": 16}, do_convert_rgb=True,
        image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
    ).save_pretrained(root / "dinov2")
    paths["dinov2"] = root / "dinov2"
    images = root / "images"
    images.mkdir()
    for index, image in enumerate(photos(3, seed=5)):
        image.save(images / f"photo{index}.{'png' if index % 2 else 'jpg'}")
    paths["images"] = images
    return paths


def _same_ranking(ours: Any, ref: Any, where: str) -> None:
    if ref and isinstance(ref[0], list):
        assert isinstance(ours, list) and len(ours) == len(ref), where
        for index, (mine, theirs) in enumerate(zip(ours, ref)):
            _same_ranking(mine, theirs, f"{where}, image {index}")
        return
    assert [entry["label"] for entry in ours] == [entry["label"] for entry in ref], where
    np.testing.assert_allclose([e["score"] for e in ours], [e["score"] for e in ref], rtol=0, atol=1e-5, err_msg=where)


def _pipelines(folder: Path) -> tuple[Any, Any]:
    ours = pipeline("zero-shot-image-classification", model=str(folder))
    ref = transformers.pipeline("zero-shot-image-classification", model=str(folder))
    return ours, ref


def _check_against_reference(folder: Path, image_files: list[Path]) -> None:
    ours, ref = _pipelines(folder)
    images = photos(5, seed=9)
    scores = [entry["score"] for entry in ref(images[0], candidate_labels=LABELS)]
    assert max(scores) - min(scores) > 1e-3, "the fixture scores every label alike: the test would prove nothing"
    _same_ranking(ours(images[0], candidate_labels=LABELS), ref(images[0], candidate_labels=LABELS), "one PIL image")
    expected = ref(images, candidate_labels=LABELS)
    _same_ranking(ours(images, candidate_labels=LABELS), expected, "a list of images")
    _same_ranking(ours(images, candidate_labels=LABELS, batch_size=2), expected, "batches of 2")
    files = [str(path) for path in image_files]
    _same_ranking(ours(files, candidate_labels=LABELS), ref(files, candidate_labels=LABELS), "image files")
    template = "a picture showing {}"
    _same_ranking(ours(images[:2], LABELS[:3], hypothesis_template=template),
                  ref(images[:2], candidate_labels=LABELS[:3], hypothesis_template=template), "a template, positional labels")
    _same_ranking(ours(images[1], candidate_labels=["snow"]), ref(images[1], candidate_labels=["snow"]), "one label")


def test_clip_matches_reference(folders: dict[str, Path]) -> None:
    _check_against_reference(folders["clip"], sorted(folders["images"].iterdir()))


@pytest.mark.skipif(not SIGLIP_READY, reason="SiglipTokenizer / SiglipImageProcessor not in leanformers.registry yet")
def test_siglip_matches_reference(folders: dict[str, Path], tmp_path: Path) -> None:
    folder = build_siglip(tmp_path / "siglip")
    _check_against_reference(folder, sorted(folders["images"].iterdir()))
    ours, _ = _pipelines(folder)
    assert ours._text_inputs(["x"])["input_ids"].shape[-1] == 64


def test_embeddings_match_reference(folders: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """image_embeddings / text_embeddings (what search ranks with): the reference's normalised features,
    the images preprocessed in one processor call and embedded through the pooled-only path."""
    from leanformers.models.clip import CLIPModel

    folder = str(folders["clip"])
    ours = pipeline("zero-shot-image-classification", model=folder)
    ref = transformers.CLIPModel.from_pretrained(folder).eval()
    processor = transformers.AutoProcessor.from_pretrained(folder)
    files = [str(path) for path in sorted(folders["images"].iterdir())]
    calls: list[dict[str, Any]] = []
    original = CLIPModel.get_image_features

    def recording(self, *args, **kwargs):
        calls.append(kwargs)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(CLIPModel, "get_image_features", recording)
    got = ours.image_embeddings(files)
    assert len(calls) == 1 and calls[0].get("pooled_only") is True
    with torch.no_grad():
        pixels = processor(images=[PIL_Image.open(path) for path in files], return_tensors="pt")["pixel_values"]
        expected = ref.get_image_features(pixel_values=pixels)
        texts = processor(text=LABELS, padding=True, return_tensors="pt")
        expected_text = ref.get_text_features(**texts)
    normalize = torch.nn.functional.normalize
    torch.testing.assert_close(got, normalize(getattr(expected, "pooler_output", expected), dim=-1),
                               rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.text_embeddings(LABELS),
                               normalize(getattr(expected_text, "pooler_output", expected_text), dim=-1),
                               rtol=1e-5, atol=1e-5)


def test_task_is_inferred(folders: dict[str, Path]) -> None:
    assert pipeline(model=str(folders["clip"])).task == "zero-shot-image-classification"
    assert pipeline(model=str(folders["clip_vision"])).task == "image-feature-extraction"
    assert pipeline(model=str(folders["dinov2"])).task == "image-feature-extraction"


def test_bad_inputs(folders: dict[str, Path]) -> None:
    ours = pipeline("zero-shot-image-classification", model=str(folders["clip"]))
    image = photos(1)[0]
    with pytest.raises(InputError, match="needs candidate_labels"):
        ours(image)
    with pytest.raises(InputError, match="candidate_labels must be a non-empty list"):
        ours(image, candidate_labels=[])
    with pytest.raises(InputError, match="hypothesis_template must be a string with a {}"):
        ours(image, candidate_labels=LABELS, hypothesis_template="no slot")
    with pytest.raises(InputError, match="download 'https://example.com/cat.jpg' first"):
        ours("https://example.com/cat.jpg", candidate_labels=LABELS)
    with pytest.raises(InputError, match="No image file at"):
        ours(str(folders["images"] / "missing.jpg"), candidate_labels=LABELS)
    with pytest.raises(UnsupportedModelError, match="needs an image-text model"):
        pipeline("zero-shot-image-classification", model=str(folders["dinov2"]))


def _feature_pipelines(folder: Path, ref_class: str | None = None) -> tuple[Any, Any]:
    ref_kwargs: dict[str, Any] = {"model": str(folder)}
    if ref_class is not None:  # the reference loads the full model for a full checkpoint: give it the tower
        ref_kwargs["model"] = getattr(transformers, ref_class).from_pretrained(str(folder))
        ref_kwargs["image_processor"] = transformers.AutoImageProcessor.from_pretrained(str(folder))
    return (pipeline("image-feature-extraction", model=str(folder)),
            transformers.pipeline("image-feature-extraction", **ref_kwargs))


@pytest.mark.parametrize("name, ref_class, pool", [
    ("dinov2", None, False), ("dinov2", None, True), ("clip_vision", None, False), ("clip_vision", None, True),
    ("clip", "CLIPVisionModel", False), ("clip", "CLIPVisionModel", True),
])
def test_image_feature_extraction(folders: dict[str, Path], name: str, ref_class: str | None, pool: bool) -> None:
    ours, ref = _feature_pipelines(folders[name], ref_class)
    images = photos(3, seed=4)
    expected = [torch.tensor(value) for value in ref(images, pool=pool)]
    got = [torch.tensor(value) for value in ours(images, pool=pool, batch_size=2)]
    for mine, theirs in zip(got, expected, strict=True):
        assert mine.shape == theirs.shape
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-5)
    tensors = ours(images[0], pool=pool, return_tensors=True)
    torch.testing.assert_close(tensors, expected[0], rtol=1e-5, atol=1e-5)


def test_image_feature_extraction_with_projection(folders: dict[str, Path]) -> None:
    """CLIPVisionModelWithProjection given as a loaded model: its first output is the image embedding."""
    from leanformers.models.clip import CLIPVisionModelWithProjection

    folder = str(folders["clip_vision"])
    ours = pipeline("image-feature-extraction", model=CLIPVisionModelWithProjection.from_pretrained(folder),
                    image_processor=folder)
    ref = transformers.pipeline(
        "image-feature-extraction", model=transformers.CLIPVisionModelWithProjection.from_pretrained(folder),
        image_processor=transformers.AutoImageProcessor.from_pretrained(folder),
    )
    images = photos(2, seed=6)
    expected = ref(images, return_tensors=True)
    got = ours(images, return_tensors=True)
    assert got[0].shape == expected[0].shape == (1, 24)
    for mine, theirs in zip(got, expected):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-5)
    with pytest.raises(InputError, match="returns no pooler_output"):
        ours(images[0], pool=True)


def test_image_processor_kwargs(folders: dict[str, Path]) -> None:
    ours, ref = _feature_pipelines(folders["dinov2"])
    options = {"do_normalize": False}
    image = photos(1, seed=8)[0]
    got = torch.tensor(ours(image, image_processor_kwargs=options))
    torch.testing.assert_close(got, torch.tensor(ref(image, image_processor_kwargs=options)), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(got, torch.tensor(ours(image)))
    with pytest.raises(InputError, match="image_processor_kwargs must be a dict"):
        ours(image, image_processor_kwargs="do_normalize")

