"""Batch prediction with Ray Data (leanformers.distributed): the same labels and scores as one
process, every row exactly once, a killed worker retried, and the error without the extra.

One local Ray instance (2 CPUs, no dashboard) serves the module; the model is a tiny random BERT
classifier with the real MiniLM tokenizer."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from leanformers.errors import InputError, LeanformersError

HAS_RAY = importlib.util.find_spec("ray") is not None and importlib.util.find_spec("pyarrow") is not None
needs_ray = pytest.mark.skipif(not HAS_RAY, reason='Ray Data is not installed (pip install "leanformers[ray]")')

WORDS = [
    "the",
    "movie",
    "was",
    "great",
    "terrible",
    "fine",
    "boring",
    "awesome",
    "plot",
    "actors",
    "long",
    "short",
    "not",
    "very",
    "good",
    "bad",
    "I",
    "liked",
    "it",
]


def make_texts(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.choice([1, 3, 8, 20, 60, 120]))) for _ in range(count)]


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory, minilm_dir) -> Path:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    folder = tmp_path_factory.mktemp("tiny-bert-classifier")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        num_labels=3,
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    for name in (
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.txt",
        "special_tokens_map.json",
    ):
        if (minilm_dir / name).exists():
            shutil.copy(minilm_dir / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def ray_local():
    if not HAS_RAY:
        pytest.skip('Ray Data is not installed (pip install "leanformers[ray]")')
    import ray
    from ray import cloudpickle

    # The killing pipeline below is defined in this test module, which Ray's workers cannot import.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def reference(classifier_dir):
    """Single-process predictions with the same pipeline."""
    from leanformers.pipelines import pipeline

    pipe = pipeline("text-classification", model=str(classifier_dir))

    def predict(texts: list[str], **kwargs) -> list:
        results = []
        for start in range(0, len(texts), 64):
            results.extend(pipe.run_batch(texts[start : start + 64], **kwargs))
        return results

    return predict


def check_same(rows: list[dict], texts: list[str], expected: list[dict]) -> None:
    assert sorted(row["id"] for row in rows) == list(range(len(texts)))  # every row exactly once
    by_id = {row["id"]: row for row in rows}
    for i, want in enumerate(expected):
        assert by_id[i]["label"] == want["label"], i
        assert abs(by_id[i]["score"] - want["score"]) <= 1e-6, i


@needs_ray
def test_jsonl_matches_single_process(ray_local, classifier_dir, reference, tmp_path):
    from leanformers.distributed import predict_dataset, write_predictions

    texts = make_texts(3000)
    source = tmp_path / "reviews.jsonl"
    source.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    predictions = predict_dataset(str(source), str(classifier_dir), batch_size=64, concurrency=2)
    output = tmp_path / "predictions.jsonl"
    assert write_predictions(predictions, output) == len(texts)
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [row["id"] for row in rows] == list(range(len(texts)))  # ids are file order; output in input order
    assert list(rows[0]) == ["id", "text", "label", "score"]  # the input's fields, then the prediction's
    check_same(rows, texts, reference(texts))
    assert not Path(str(output) + ".partial").exists()


@needs_ray
def test_csv_with_own_ids_to_parquet(ray_local, classifier_dir, reference, tmp_path):
    import pyarrow.parquet as pq

    from leanformers.distributed import predict_dataset, write_predictions

    texts = make_texts(300, seed=1)
    source = tmp_path / "reviews.csv"
    with source.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["review_id", "body", "stars"])
        writer.writerows((f"r{i:04d}", text, i % 5) for i, text in enumerate(texts))
    predictions = predict_dataset(
        source,
        classifier_dir,
        "sentiment-analysis",
        column="body",
        id_column="review_id",
        batch_size=32,
        concurrency=2,  # both CPUs held by workers: the streaming read must still get to run
    )
    output = tmp_path / "out" / "predictions.parquet"
    assert write_predictions(predictions, output) == len(texts)
    table = pq.read_table(output)
    assert table.column_names == ["review_id", "body", "stars", "label", "score"]
    rows = [{**row, "id": int(row["review_id"][1:])} for row in table.to_pylist()]
    check_same(rows, texts, reference(texts))


@needs_ray
def test_directory_of_files_ids_follow_file_order(ray_local, classifier_dir, reference, tmp_path):
    from leanformers.distributed import predict_dataset

    texts = make_texts(90, seed=5)
    folder = tmp_path / "parts"
    folder.mkdir()
    for part, start in enumerate(range(0, 90, 30)):
        chunk = texts[start : start + 30]
        (folder / f"part-{part}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in chunk))
    for here in (False, True):  # Ray Data's read tasks; read by this process
        rows = predict_dataset(folder, classifier_dir, batch_size=16, read_on_this_node=here).take_all()
        check_same(rows, texts, reference(texts))


@needs_ray
def test_nested_results_are_json_in_the_local_engines_field(ray_local, classifier_dir, reference):
    from leanformers.distributed import predict_dataset

    texts = make_texts(40, seed=2)
    data = ray_local.data.from_items([{"text": t} for t in texts])
    rows = predict_dataset(data, classifier_dir, batch_size=16, task_kwargs={"top_k": None}).take_all()
    assert sorted(row["id"] for row in rows) == list(range(len(texts)))
    expected = reference(texts, top_k=None)
    for row in rows:
        got = json.loads(row["labels"])  # named as the local engine names it
        assert [entry["label"] for entry in got] == [entry["label"] for entry in expected[row["id"]]]
        assert max(abs(a["score"] - b["score"]) for a, b in zip(got, expected[row["id"]])) <= 1e-6


class KillOncePipeline:
    """The real pipeline, except that the worker's process dies (os._exit: no cleanup, like SIGKILL
    or the OOM killer) on its third batch, the first time only (a marker file remembers)."""

    def __init__(self, task, model, device, marker):
        from leanformers.pipelines import pipeline

        self.pipe = pipeline(task, model=model, device=device)
        self.task = self.pipe.task
        self.marker = marker
        self.calls = 0

    def input_length(self, item):
        return self.pipe.input_length(item)

    def run_batch(self, items, **kwargs):
        self.calls += 1
        if self.calls == 3 and not os.path.exists(self.marker):
            Path(self.marker).write_text(str(os.getpid()))
            os._exit(1)
        return self.pipe.run_batch(items, **kwargs)


@needs_ray
def test_killed_worker_is_retried(ray_local, classifier_dir, reference, tmp_path):
    from leanformers.distributed import predict_dataset

    texts = make_texts(800, seed=3)
    source = tmp_path / "reviews.jsonl"
    source.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    marker = str(tmp_path / "killed")

    def factory(task, model, device):
        return KillOncePipeline(task, model, device, marker)

    predictions = predict_dataset(
        source,
        classifier_dir,
        "text-classification",
        batch_size=50,
        concurrency=1,
        pipeline_factory=factory,
    )
    rows = predictions.take_all()
    assert os.path.exists(marker), "the worker was never killed"
    assert int(Path(marker).read_text()) != os.getpid()
    check_same(rows, texts, reference(texts))


@needs_ray
def test_run_cli_prediction(ray_local, classifier_dir, reference, tmp_path):
    from leanformers.batch import summary
    from leanformers.distributed import run_cli_prediction

    texts = make_texts(120, seed=4)
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    output = tmp_path / "out.csv"
    stats = run_cli_prediction(str(classifier_dir), str(source), str(output), batch_size=16, workers=2)
    assert stats.items == len(texts) and stats.seconds > 0
    assert "predicted 120 items" in summary(stats, str(output), " with 2 Ray worker(s)")
    with output.open() as handle:
        rows = [{"id": int(r["id"]), "label": r["label"], "score": float(r["score"])} for r in csv.DictReader(handle)]
    check_same(rows, texts, reference(texts))


def test_bad_arguments(ray_local, classifier_dir, tmp_path):
    from leanformers.distributed import predict_dataset, write_predictions

    with pytest.raises(InputError, match="format"):
        predict_dataset(str(tmp_path / "inputs.xlsx"), classifier_dir)
    with pytest.raises(InputError, match="does not exist"):
        predict_dataset(str(tmp_path / "missing.jsonl"), classifier_dir)
    data = ray_local.data.from_items([{"title": "a", "body": "b"}])
    with pytest.raises(InputError, match="column"):
        predict_dataset(data, classifier_dir)
    with pytest.raises(InputError, match="no column 'text_body'"):
        predict_dataset(data, classifier_dir, column="text_body")
    with pytest.raises(InputError, match="concurrency"):
        predict_dataset(data, classifier_dir, column="body", concurrency=0)
    with pytest.raises(InputError, match="format"):
        write_predictions(data, tmp_path / "out.xlsx")


def test_missing_extra_gives_install_hint(monkeypatch, tmp_path):
    from leanformers import distributed

    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setitem(sys.modules, "ray.data", None)
    with pytest.raises(LeanformersError, match=r"pip install \"leanformers\[ray\]\"") as info:
        distributed.predict_dataset(str(tmp_path / "in.jsonl"), "some/model")
    assert isinstance(info.value, ImportError) and isinstance(info.value, InputError)
    with pytest.raises(distributed.RayNotInstalledError):
        distributed.run_cli_prediction("m", "in.jsonl", "out.jsonl")


def test_import_is_light():
    """Importing the module pulls in neither ray nor torch."""
    import subprocess

    code = "import sys, leanformers.distributed; print('ray' in sys.modules, 'torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


@needs_ray
def test_cli_engine_ray_matches_local_engine(ray_local, classifier_dir, tmp_path):
    texts = make_texts(60, seed=5)
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    env = dict(os.environ, HF_HUB_OFFLINE="1")

    def predict(output, *engine):
        cmd = [sys.executable, "-m", "leanformers", "predict", str(classifier_dir), "--input", str(source),
               "--output", str(output), "--batch-size", "8", "-q", *engine]
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        assert done.returncode == 0, done.stderr
        return [json.loads(line) for line in output.read_text().splitlines()]

    local = predict(tmp_path / "local.jsonl")
    distributed = predict(tmp_path / "ray.jsonl", "--engine", "ray", "--address", "auto", "--workers", "2")
    assert [r["id"] for r in distributed] == list(range(len(texts)))
    for a, b in zip(distributed, local):
        assert a["label"] == b["label"]
        assert abs(a["score"] - b["score"]) <= 1e-6


@needs_ray
def test_sentence_embeddings_with_ray(ray_local, minilm_dir, tmp_path):
    """The embed task on Ray workers: sentence-transformers' vectors, every row once, like the local engine."""
    import numpy as np
    import pyarrow.parquet as pq

    import leanformers
    from leanformers.distributed import run_cli_prediction

    texts = make_texts(40, seed=6)
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    output = tmp_path / "out.parquet"
    run_cli_prediction(str(minilm_dir), str(source), str(output), task="sentence-embedding", batch_size=8, workers=2)
    rows = sorted(pq.read_table(output).to_pylist(), key=lambda row: row["id"])
    assert [row["id"] for row in rows] == list(range(len(texts)))
    got = np.array([row["embedding"] for row in rows], dtype=np.float32)
    np.testing.assert_allclose(got, leanformers.encode(texts, str(minilm_dir)), atol=1e-5)
