"""The ``leanformers`` command on photos: ``predict --labels`` with CLIP, ``search --images FOLDER``
(its embedding cache: reused, refreshed per changed file, kept where --cache says), ``inspect``, and
the errors of bad folders and missing labels. Run in-process through ``cli.main``; the reference
(transformers 5.23) gives the expected scores and rankings.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from leanformers import cli
from leanformers.models.clip import CLIPModel

transformers = pytest.importorskip("transformers")
pytest.importorskip("PIL.Image")
transformers.logging.set_verbosity_error()

sys.path.insert(0, str(Path(__file__).parent))
from test_zero_shot_image import SIGLIP_READY, build_clip, build_siglip, photos


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_clip(tmp_path_factory.mktemp("cli_images") / "clip")


def _photo_folder(folder: Path, count: int = 4, with_text: bool = True) -> Path:
    (folder / "more").mkdir(parents=True)
    for index, image in enumerate(photos(count, seed=21)):
        image.save(folder / ("more" if index == count - 1 else "") / f"photo{index}.{'png' if index % 2 else 'jpg'}")
    if with_text:
        (folder / "notes.txt").write_text("not a photo\n")
    return folder


def run(capsys: pytest.CaptureFixture, *args: Any) -> tuple[int, str, str]:
    code = cli.main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _rows(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _reference_ranking(clip_dir: Path, folder: Path, query: str, truncation: bool = False) -> list[str]:
    from PIL import Image

    model = transformers.CLIPModel.from_pretrained(str(clip_dir)).eval()
    processor = transformers.CLIPProcessor.from_pretrained(str(clip_dir))
    paths = sorted(p for p in folder.rglob("*") if p.suffix in (".jpg", ".png"))

    def pooled(output: Any) -> torch.Tensor:
        return torch.nn.functional.normalize(getattr(output, "pooler_output", output), dim=-1)

    with torch.no_grad():
        images = pooled(model.get_image_features(**processor(images=[Image.open(p) for p in paths], return_tensors="pt")))
        tokens = processor.tokenizer([query], padding=True, truncation=truncation, return_tensors="pt")
        text = pooled(model.get_text_features(**tokens))
    scores = (images @ text[0]).tolist()
    return [str(paths[i]) for i in sorted(range(len(paths)), key=lambda i: -scores[i])]


def test_predict_with_labels_matches_reference(clip_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = _photo_folder(tmp_path / "photos")
    files = [folder / "photo0.jpg", folder / "photo1.png"]
    code, out, err = run(capsys, "predict", clip_dir, *files, "--labels", "a cat, a dog,snow", "--format", "json")
    assert code == 0, err
    ref = transformers.pipeline("zero-shot-image-classification", model=str(clip_dir))
    for row, path in zip(_rows(out), files, strict=True):
        assert row["image"] == str(path)
        expected = ref(str(path), candidate_labels=["a cat", "a dog", "snow"])
        assert [e["label"] for e in row["labels"]] == [e["label"] for e in expected]
        np.testing.assert_allclose([e["score"] for e in row["labels"]], [e["score"] for e in expected], atol=1e-5)


def test_long_labels_and_queries_are_cut_to_the_text_positions(clip_dir: Path, tmp_path: Path, capsys) -> None:
    """A command-line user cannot pass tokenizer options: text past CLIP's positions is truncated as the
    tokenizer's truncation cuts it (the library's pipeline call refuses it unless asked)."""
    from leanformers import pipeline

    folder = _photo_folder(tmp_path / "photos", with_text=False)
    long_label = "a photo of" + " a very large red car" * 20
    code, out, err = run(capsys, "predict", clip_dir, folder / "photo0.jpg", "--labels", f"a cat,{long_label}",
                         "--format", "json")
    assert code == 0, err
    expected = pipeline("zero-shot-image-classification", model=str(clip_dir))(
        str(folder / "photo0.jpg"), candidate_labels=["a cat", long_label], tokenizer_kwargs={"truncation": True})
    row = _rows(out)[0]
    assert [e["label"] for e in row["labels"]] == [e["label"] for e in expected]
    np.testing.assert_allclose([e["score"] for e in row["labels"]], [e["score"] for e in expected], atol=1e-5)

    code, out, err = run(capsys, "search", clip_dir, long_label, "--images", folder, "--format", "json", "--top-k", "10")
    assert code == 0, err
    assert [row["path"] for row in _rows(out)] == _reference_ranking(clip_dir, folder, long_label, truncation=True)


def test_predict_without_labels_is_a_usage_error(clip_dir: Path, tmp_path: Path, capsys) -> None:
    folder = _photo_folder(tmp_path / "photos")
    code, _, err = run(capsys, "predict", clip_dir, folder / "photo0.jpg")
    assert code == 2
    assert "zero-shot-image-classification needs the candidate labels: --labels" in err


def test_search_images_ranks_caches_and_refreshes(clip_dir: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    folder = _photo_folder(tmp_path / "photos")
    query = "a red car"
    calls: list[int] = []
    original = CLIPModel.get_image_features

    def counting(self, pixel_values=None, *args, **kwargs):
        calls.append(pixel_values.shape[0])
        return original(self, pixel_values, *args, **kwargs)

    monkeypatch.setattr(CLIPModel, "get_image_features", counting)
    code, out, err = run(capsys, "search", clip_dir, query, "--images", folder, "--format", "json", "--top-k", "10",
                         "--batch-size", "3")
    assert code == 0, err
    assert "skipped 1 file(s) that are not images: notes.txt" in err
    assert calls == [3, 1], "4 photos in batches of 3; the text file never reaches the model"
    ranked = [row["path"] for row in _rows(out)]
    assert ranked == _reference_ranking(clip_dir, folder, query)
    cache = tmp_path / ".photos.leanformers-index.pt"
    assert cache.is_file()

    # a second query: every embedding comes from the cache, the image tower is not run
    calls.clear()
    code, out, err = run(capsys, "search", clip_dir, "a dog", "--images", folder, "--format", "json")
    assert code == 0, err
    assert calls == [] and len(_rows(out)) == 4
    assert "notes.txt" in err  # still reported, from the cache

    # one photo changed (size and time): only it is embedded again
    photos(1, seed=99)[0].save(folder / "photo0.jpg")
    os.utime(folder / "photo0.jpg", ns=(1, 1))
    calls.clear()
    code, out, _ = run(capsys, "search", clip_dir, query, "--images", folder, "--format", "json", "--top-k", "10")
    assert code == 0 and calls == [1]
    assert [row["path"] for row in _rows(out)] == _reference_ranking(clip_dir, folder, query)

    # a file removed: dropped from the results and the cache, nothing embedded
    (folder / "photo1.png").unlink()
    calls.clear()
    code, out, _ = run(capsys, "search", clip_dir, query, "--images", folder, "--format", "json", "--top-k", "10")
    assert code == 0 and calls == [] and len(_rows(out)) == 3


def test_search_images_cache_option(clip_dir: Path, tmp_path: Path, capsys) -> None:
    folder = _photo_folder(tmp_path / "photos", count=2, with_text=False)
    cache = tmp_path / "elsewhere" / "index.pt"
    cache.parent.mkdir()
    code, out, err = run(capsys, "search", clip_dir, "snow", "--images", folder, "--cache", cache, "--quiet")
    assert code == 0, err
    assert cache.is_file() and not (tmp_path / ".photos.leanformers-index.pt").exists()
    assert err == "" and len(out.splitlines()) == 2
    cache.write_bytes(b"not a cache")  # a damaged cache is rebuilt, not trusted
    code, out, err = run(capsys, "search", clip_dir, "snow", "--images", folder, "--cache", cache, "--quiet")
    assert code == 0 and len(out.splitlines()) == 2 and cache.stat().st_size > 100


def test_search_images_bad_folders(clip_dir: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, "search", clip_dir, "x", "--images", tmp_path / "empty")
    assert code == 2 and "holds no files; put the images to search in it" in err
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text("hello")
    (tmp_path / "texts" / "b.csv").write_text("x,y\n")
    code, _, err = run(capsys, "search", clip_dir, "x", "--images", tmp_path / "texts")
    assert code == 1 and "none of the 2 file(s)" in err and "is an image" in err
    code, _, err = run(capsys, "search", clip_dir, "x", "--images", tmp_path / "missing")
    assert code == 2 and "is not a folder" in err
    code, _, err = run(capsys, "search", clip_dir, "x", "--images", tmp_path / "texts", "--corpus", "c.txt")
    assert code == 2 and "one of the two" in err
    code, _, err = run(capsys, "search", clip_dir, "x")
    assert code == 2 and "--corpus FILE (texts) or --images FOLDER" in err


def test_inspect_lists_the_image_tasks(clip_dir: Path, capsys) -> None:
    code, out, err = run(capsys, "inspect", clip_dir, "--format", "json")
    assert code == 0, err
    info = json.loads(out)
    assert info["tasks"][0] == "zero-shot-image-classification"
    assert "image-feature-extraction" in info["tasks"] and "feature-extraction" not in info["tasks"]
    assert set(info["preprocessing"]) == {"image_processor", "tokenizer"}


@pytest.mark.skipif(not SIGLIP_READY, reason="SiglipTokenizer / SiglipImageProcessor not in leanformers.registry yet")
def test_siglip_predict_and_search(tmp_path: Path, capsys) -> None:
    folder = build_siglip(tmp_path / "siglip")
    photos_dir = _photo_folder(tmp_path / "photos", count=3, with_text=False)
    image = photos_dir / "photo0.jpg"
    code, out, err = run(capsys, "predict", folder, image, "--labels", "a cat,snow", "--format", "json")
    assert code == 0, err
    expected = transformers.pipeline("zero-shot-image-classification", model=str(folder))(
        str(image), candidate_labels=["a cat", "snow"])
    got = _rows(out)[0]["labels"]
    assert [e["label"] for e in got] == [e["label"] for e in expected]
    np.testing.assert_allclose([e["score"] for e in got], [e["score"] for e in expected], atol=1e-5)
    code, out, err = run(capsys, "search", folder, "snow", "--images", photos_dir, "--format", "json")
    assert code == 0 and len(_rows(out)) == 3, err
    code, out, _ = run(capsys, "inspect", folder, "--format", "json")
    assert code == 0 and json.loads(out)["tasks"][0] == "zero-shot-image-classification"
