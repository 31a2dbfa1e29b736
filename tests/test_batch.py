"""The streaming batch engine (leanformers.batch): readers and writers, length bucketing, input
order, partial outputs and resume -- against a fake pipeline, then a tiny real checkpoint."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from leanformers import batch, files

SRC = str(Path(__file__).resolve().parents[1] / "src")


class FakePipeline:
    """Only what the engine may use: ``task``, ``input_length``, ``run_batch``."""

    task = "text-classification"

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def input_length(self, item: str) -> int:
        return len(item.split()) + 2

    def run_batch(self, items: list[str], **kwargs) -> list[dict]:
        self.batches.append(list(items))
        return [{"label": "LONG" if len(t) > 20 else "SHORT", "score": len(t) / 100, **kwargs} for t in items]


def make_tiny_classifier(folder: Path, minilm_dir: Path) -> Path:
    """A tiny random BERT classifier saved by the reference, with the real MiniLM tokenizer."""
    import torch
    import transformers

    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
        max_position_embeddings=512, num_labels=2, id2label={0: "NEGATIVE", 1: "POSITIVE"},
        label2id={"NEGATIVE": 0, "POSITIVE": 1}, architectures=["BertForSequenceClassification"],
    )
    transformers.BertForSequenceClassification(config).eval().save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(minilm_dir / name, folder / name)
    return folder


@pytest.fixture(scope="session")
def tiny_classifier(tmp_path_factory, minilm_dir) -> Path:
    return make_tiny_classifier(tmp_path_factory.mktemp("tiny-classifier"), minilm_dir)


def mixed_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    words = ["the", "a", "cat", "dog", "sat", "on", "mat", "quickly", "under", "bright", "moon", "river", "stone",
             "blue", "green", "runs"]
    lengths = [rng.choice([1, 2, 3, 5, 8, 40, 90]) for _ in range(n)]
    return [" ".join(rng.choice(words) for _ in range(k)) for k in lengths]


# ------------------------------------------------------------------------------------- engine


def test_windows_keep_input_order_and_bucket_by_length():
    pipe = FakePipeline()
    texts = mixed_texts(100)
    stats = batch.Stats()
    out = [pair for window in batch.predict_windows(pipe, texts, batch_size=4, window_batches=5, stats=stats)
           for pair in window]
    assert [row for row, _ in out] == texts
    assert all(result["score"] == len(row) / 100 for row, result in out)
    assert stats.items == 100 and stats.batches == 25
    for items in pipe.batches:  # each batch comes from one window, sorted by length (longest first)
        lengths = [pipe.input_length(t) for t in items]
        assert lengths == sorted(lengths, reverse=True)


def test_windows_are_lazy():
    """Only one window of rows is read before its results come out (memory flat in rows)."""
    pulled = []

    def rows():
        for i in range(10_000):
            pulled.append(i)
            yield f"text {i}"

    windows = batch.predict_windows(FakePipeline(), rows(), batch_size=2, window_batches=3)
    first = next(windows)
    assert len(first) == 6 and len(pulled) == 6


def test_task_kwargs_reach_run_batch():
    pipe = FakePipeline()
    (window,) = list(batch.predict_windows(pipe, ["a", "b"], batch_size=2, top_k=3))
    assert all(result["top_k"] == 3 for _, result in window)


def test_bad_batch_size():
    with pytest.raises(batch.InputError):
        list(batch.predict_windows(FakePipeline(), ["a"], batch_size=0))


def test_bucketing_pads_far_less_and_matches_one_at_a_time(tiny_classifier):
    from leanformers.pipelines import pipeline

    pipe = pipeline("text-classification", model=str(tiny_classifier))
    texts = mixed_texts(256, seed=1)
    bucketed, naive = batch.Stats(), batch.Stats()
    got = [r for w in batch.predict_windows(pipe, texts, batch_size=16, stats=bucketed, top_k=None) for _, r in w]
    plain = [r for w in batch.predict_windows(pipe, texts, batch_size=16, stats=naive, bucket=False, top_k=None)
             for _, r in w]
    assert bucketed.real == naive.real
    # padding (batch_len * longest - real tokens, summed over batches) is a small fraction of naive batching's
    assert bucketed.padded < 0.1 * naive.padded, (bucketed.padded, naive.padded)
    for text, result, other in zip(texts, got, plain):
        (alone,) = pipe.run_batch([text], top_k=None)
        for mine, ref in ((result, alone), (other, alone)):
            assert [d["label"] for d in mine] == [d["label"] for d in ref]
            assert [d["score"] for d in mine] == pytest.approx([d["score"] for d in ref], abs=1e-5)


# --------------------------------------------------------------------------------- files


def write_inputs(folder: Path, texts: list[str]) -> dict[str, Path]:
    paths = {"txt": folder / "in.txt", "jsonl": folder / "in.jsonl", "csv": folder / "in.csv"}
    paths["txt"].write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    paths["jsonl"].write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)),
                              encoding="utf-8")
    with open(paths["csv"], "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text"])
        writer.writerows(enumerate(texts))
    return paths


def test_readers(tmp_path):
    texts = ["plain", 'with "quotes", commas', "ünïcode ✓", "multi\nline? no: one line"][:3]
    paths = write_inputs(tmp_path, texts)
    assert [r["text"] for r in files.read_rows(paths["txt"])] == texts
    assert [r["text"] for r in files.read_rows(paths["jsonl"])] == texts
    assert [r["text"] for r in files.read_rows(paths["csv"])] == texts
    assert [r["id"] for r in files.read_rows(paths["csv"])] == ["0", "1", "2"]
    assert all(files.count_rows(p) == 3 for p in paths.values())


def test_reader_errors(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{oops\n')
    with pytest.raises(batch.InputError, match="line 2"):
        list(files.read_rows(bad))
    with pytest.raises(batch.InputError, match="extension"):
        files.file_format(tmp_path / "x.docx")
    with pytest.raises(batch.InputError, match="--column"):
        batch.make_item({"body": "x"}, "text-classification", "text")


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "txt"])
def test_job_writes_partial_then_renames(tmp_path, fmt):
    texts = mixed_texts(50)
    paths = write_inputs(tmp_path, texts)
    out = tmp_path / f"out.{fmt}"
    job = batch.Job(pipe=FakePipeline(), rows=lambda: files.read_rows(paths["jsonl"]), column="text",
                    output=str(out), batch_size=4, window_batches=2)
    stats = batch.run(job)
    assert stats.items == 50 and out.exists() and not Path(str(out) + ".partial").exists()
    rows = read_output(out)
    assert len(rows) == 50
    if fmt == "txt":
        assert [r["label"] for r in rows] == ["LONG" if len(t) > 20 else "SHORT" for t in texts]
    else:
        assert [r["text"] for r in rows] == texts
        assert [str(r["id"]) for r in rows] == [str(i) for i in range(50)]


def read_output(path: Path) -> list[dict]:
    if path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_nested_results_are_json_in_csv(tmp_path):
    class Nested(FakePipeline):
        task = "token-classification"

        def run_batch(self, items, **kwargs):
            return [[{"entity": "X", "score": 0.5, "word": t}] for t in items]

    out = tmp_path / "out.csv"
    batch.run(batch.Job(pipe=Nested(), rows=lambda: iter([{"text": "a,b"}, {"text": 'q"x'}]), column="text",
                        output=str(out)))
    rows = read_output(out)
    assert [json.loads(r["entities"])[0]["word"] for r in rows] == ["a,b", 'q"x']


def test_complete_rows_cuts_torn_tails(tmp_path):
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text('{"a": 1}\n{"a": "x\u2028y"}\n{"a": 3, "b": [1, 2')
    assert batch.complete_rows(str(jsonl)) == 2
    assert jsonl.read_text() == '{"a": 1}\n{"a": "x\u2028y"}\n'


def test_csv_output_bytes(tmp_path):
    """CSV is staged as JSON lines and converted at the end: header = the first window's keys in
    order of appearance, nested values as JSON text, None as an empty cell, RFC 4180 quoting."""

    class Mixed(FakePipeline):
        def run_batch(self, items, **kwargs):
            return [{"label": t, "score": 0.5, "none": None, "nested": {"a": [1, 2.5]}} if "d" in t
                    else [{"word": t, "score": float("nan")}] for t in items]

    rows = [{"text": "d a,b", "id": 1}, {"text": 'q"x\nü', "extra": None}, {"text": "d", "big": 2**70}]
    out = tmp_path / "out.csv"
    batch.run(batch.Job(pipe=Mixed(), rows=lambda: iter(rows), column="text", output=str(out), batch_size=1,
                        window_batches=2))
    assert out.read_bytes() == (
        'text,id,label,score,none,nested,extra,labels\r\n"d a,b",1,"d a,b",0.5,,"{""a"": [1, 2.5]}",,\r\n'
        '"q""x\nü",,,,,,,"[{""word"": ""q\\""x\\nü"", ""score"": NaN}]"\r\nd,,d,0.5,,"{""a"": [1, 2.5]}",,\r\n'
    ).encode()


def test_resume_appends_without_redoing(tmp_path):
    texts = mixed_texts(40)
    paths = write_inputs(tmp_path, texts)
    out = tmp_path / "out.csv"
    full = tmp_path / "full.csv"
    batch.run(batch.Job(pipe=FakePipeline(), rows=lambda: files.read_rows(paths["csv"]), column="text",
                        output=str(full), batch_size=4, window_batches=1))

    class Dies(FakePipeline):
        calls = 0

        def run_batch(self, items, **kwargs):
            Dies.calls += 1
            if Dies.calls == 4:
                raise KeyboardInterrupt
            return super().run_batch(items, **kwargs)

    with pytest.raises(KeyboardInterrupt):
        batch.run(batch.Job(pipe=Dies(), rows=lambda: files.read_rows(paths["csv"]), column="text",
                            output=str(out), batch_size=4, window_batches=1))
    partial = Path(str(out) + ".partial")
    assert not out.exists() and batch.complete_rows(str(partial)) == 12
    with pytest.raises(batch.PartialOutputExists):
        batch.run(batch.Job(pipe=FakePipeline(), rows=lambda: files.read_rows(paths["csv"]), column="text",
                            output=str(out)))
    again = FakePipeline()
    stats = batch.run(batch.Job(pipe=again, rows=lambda: files.read_rows(paths["csv"]), column="text",
                                output=str(out), batch_size=4, window_batches=1, resume=True))
    assert stats.skipped == 12 and stats.items == 28
    assert sum(len(b) for b in again.batches) == 28  # finished rows are not redone
    assert out.read_bytes() == full.read_bytes()


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is None, reason="pyarrow is not installed: .parquet input/output is optional")
def test_parquet_round_trip(tmp_path):  # pragma: no cover - runs only with pyarrow
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = mixed_texts(30)
    source = tmp_path / "in.parquet"
    pq.write_table(pa.table({"text": texts}), source)
    out = tmp_path / "out.parquet"
    batch.run(batch.Job(pipe=FakePipeline(), rows=lambda: files.read_rows(source), column="text", output=str(out),
                        batch_size=4, window_batches=2))
    assert pq.read_table(out).column("text").to_pylist() == texts


# ------------------------------------------------------------------------ kill and resume


def _predict_cmd(model: Path, source: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "leanformers", "predict", str(model), "--input", str(source), "--output", str(out),
            "--batch-size", "2", "--window", "4", "--quiet", *extra]


def _env() -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env["OMP_NUM_THREADS"] = "1"  # same kernels in every process: byte-identical floats
    return env


def test_kill_and_resume(tmp_path, tiny_classifier):
    texts = [f"short text number {i} " + "word " * (i % 7) for i in range(4000)]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)))
    out = tmp_path / "out.jsonl"
    partial = Path(str(out) + ".partial")

    proc = subprocess.Popen(_predict_cmd(tiny_classifier, source, out), env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    try:
        while time.time() < deadline:
            if partial.exists() and partial.stat().st_size > 0 and partial.read_bytes().count(b"\n") >= 200:
                break
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL and not out.exists()
    data = partial.read_bytes()
    lines = data.splitlines(keepends=True)
    assert 200 <= len(lines) < 4000, "the run should be killed midway"
    assert data.endswith(b"\n")
    done = [json.loads(line) for line in lines]  # every row complete
    assert [row["id"] for row in done] == list(range(len(done)))

    resumed = subprocess.run(_predict_cmd(tiny_classifier, source, out, "--resume"), env=_env(), check=False,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert not partial.exists()
    full = tmp_path / "full.jsonl"
    uninterrupted = subprocess.run(_predict_cmd(tiny_classifier, source, full), env=_env(), check=False,
                                   capture_output=True, text=True, timeout=300)
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    assert out.read_bytes() == full.read_bytes()


def test_sigterm_keeps_finished_rows(tmp_path, tiny_classifier):
    texts = [f"text {i}" for i in range(4000)]
    source = tmp_path / "in.txt"
    source.write_text("\n".join(texts) + "\n")
    out = tmp_path / "out.csv"
    partial = Path(str(out) + ".partial")
    proc = subprocess.Popen(_predict_cmd(tiny_classifier, source, out), env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not (partial.exists() and partial.read_bytes().count(b"\n") >= 50):
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1].endswith("rerun with --resume to continue")
    assert batch.complete_rows(str(partial)) >= 50  # staged as JSON lines: a row per line
    assert list(json.loads(partial.read_text().splitlines()[0])) == ["text", "label", "score"]
    assert partial.read_text().endswith("\n")
