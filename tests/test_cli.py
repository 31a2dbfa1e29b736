"""The ``leanformers`` command: inspect, predict (every input and output format), search,
download, and the error policy (one line on stderr; exit 2 for usage errors, 1 for others)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_batch import SRC, make_tiny_classifier, read_output, write_inputs

from leanformers import cli

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory, minilm_dir) -> Path:
    return make_tiny_classifier(tmp_path_factory.mktemp("cli-classifier"), minilm_dir)


def run_cli(*args: str, stdin: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", "leanformers", *map(str, args)], check=False, input=stdin, capture_output=True,
                          text=True, env=environment, timeout=300)


def one_line_error(result: subprocess.CompletedProcess, code: int, *words: str) -> str:
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


# --------------------------------------------------------------------------------------- inspect


def test_inspect_minilm_json(minilm_dir):
    result = run_cli("inspect", minilm_dir, "--format", "json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["config_class"] == "BertConfig" and info["model_type"] == "bert"
    assert info["architectures"] == ["BertModel"] and info["model_class"] == "BertModel"
    assert "feature-extraction" in info["tasks"] and "fill-mask" in info["tasks"]
    assert info["config"]["hidden_size"] == 384 and info["config"]["num_hidden_layers"] == 6
    assert info["parameters"] == 22_713_216 and info["dtype"] == "float32"
    assert info["preprocessing"]["tokenizer"]["vocab_size"] == 30522
    assert info["preprocessing"]["tokenizer"]["model_max_length"] == 512
    assert Path(info["files"]["model.safetensors"]) == (minilm_dir / "model.safetensors").resolve()


def test_inspect_tiny_classifier_table(tiny_classifier, capsys):
    import transformers

    assert cli.main(["inspect", str(tiny_classifier)]) == 0
    out = capsys.readouterr().out
    assert "BertForSequenceClassification" in out
    assert "NEGATIVE, POSITIVE" in out
    reference = transformers.BertForSequenceClassification.from_pretrained(tiny_classifier).num_parameters()
    assert f"{reference:,} (float32)" in out


ENCODER_FAMILIES = {
    "roberta": ("RobertaConfig", "RobertaForSequenceClassification", {}),
    "xlm-roberta": ("XLMRobertaConfig", "XLMRobertaForSequenceClassification", {}),
    "camembert": ("CamembertConfig", "CamembertForSequenceClassification", {}),
    "mpnet": ("MPNetConfig", "MPNetForSequenceClassification", {}),
    "electra": ("ElectraConfig", "ElectraForSequenceClassification", {"embedding_size": 16}),
    "deberta-v2": ("DebertaV2Config", "DebertaV2ForSequenceClassification", {}),
    "modernbert": ("ModernBertConfig", "ModernBertForSequenceClassification",
                   {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2, "cls_token_id": 1, "sep_token_id": 2}),
}


@pytest.mark.parametrize("model_type", sorted(ENCODER_FAMILIES))
def test_inspect_shows_every_encoder_family(model_type, tmp_path, capsys):
    """An NLI-labelled classifier of each family: its heads, the tasks they serve (sentence embeddings
    and zero-shot classification too) and the parameter count the reference gives."""
    import transformers

    config_name, class_name, extra = ENCODER_FAMILIES[model_type]
    labels = ["contradiction", "neutral", "entailment"]
    config = getattr(transformers, config_name)(
        vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
        id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)}, **extra,
    )
    reference = getattr(transformers, class_name)(config)
    reference.save_pretrained(tmp_path)
    assert cli.main(["inspect", str(tmp_path), "--format", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["model_type"] == model_type and info["model_class"] == class_name
    assert {"base", "sequence-classification", "token-classification", "question-answering", "masked-lm"} <= set(
        info["heads"]
    )
    for task in ("text-classification", "fill-mask", "sentence-embedding", "zero-shot-classification"):
        assert task in info["tasks"], task
    assert info["parameters"] == reference.num_parameters()
    assert info["config"]["labels"] == labels


# --------------------------------------------------------------------------------------- predict


def test_predict_command_line_inputs_json(tiny_classifier):
    import transformers

    texts = ["I love this", "This is terrible and long, very long indeed"]
    result = run_cli("predict", tiny_classifier, *texts)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    reference = transformers.pipeline("text-classification", model=str(tiny_classifier))(texts)
    assert [r["text"] for r in rows] == texts
    assert [r["label"] for r in rows] == [r["label"] for r in reference]
    assert [r["score"] for r in rows] == pytest.approx([r["score"] for r in reference], abs=1e-5)


def test_predict_table_and_top_k(tiny_classifier, capsys):
    assert cli.main(["predict", str(tiny_classifier), "good", "bad", "--top-k", "2", "--format", "table"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["text", "labels"] and len(out) == 4
    assert "POSITIVE" in out[2] and "NEGATIVE" in out[2]


def test_predict_stdin(tiny_classifier):
    result = run_cli("predict", tiny_classifier, stdin="first\n\nsecond\n")
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["text"] for line in result.stdout.splitlines()] == ["first", "second"]


@pytest.mark.parametrize("source", ["txt", "jsonl", "csv"])
@pytest.mark.parametrize("target", ["txt", "jsonl", "csv"])
def test_predict_file_formats(tiny_classifier, tmp_path, capsys, source, target):
    texts = ["a short one", "quite a bit longer text, with a comma", 'and "quotes"', "ünïcode ✓"]
    inputs = write_inputs(tmp_path, texts)
    out = tmp_path / f"out.{target}"
    code = cli.main(["predict", str(tiny_classifier), "--input", str(inputs[source]), "--output", str(out),
                     "--batch-size", "3"])
    assert code == 0
    assert capsys.readouterr().err.startswith("predicted 4 items in ")
    rows = read_output(out)
    assert len(rows) == 4
    assert all(row["label"] in ("NEGATIVE", "POSITIVE") and 0 < float(row["score"]) <= 1 for row in rows)
    if target != "txt":  # txt output holds the predictions only, a JSON object per line
        assert [row["text"] for row in rows] == texts
        if source != "txt":
            assert [str(row["id"]) for row in rows] == ["0", "1", "2", "3"]


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is None, reason="pyarrow is not installed (optional)")
def test_predict_parquet(tiny_classifier, tmp_path):  # pragma: no cover - runs only with pyarrow
    import pyarrow as pa
    import pyarrow.parquet as pq

    source, out = tmp_path / "in.parquet", tmp_path / "out.parquet"
    pq.write_table(pa.table({"text": ["one", "two", "three"]}), source)
    assert cli.main(["predict", str(tiny_classifier), "-i", str(source), "-o", str(out)]) == 0
    table = pq.read_table(out)
    assert table.column("text").to_pylist() == ["one", "two", "three"] and "label" in table.column_names


def test_predict_jsonl_column(tiny_classifier, tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    source.write_text('{"body": "x"}\n{"body": "y"}\n')
    assert cli.main(["predict", str(tiny_classifier), "-i", str(source), "--column", "body"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["body"] for r in rows] == ["x", "y"] and all("label" in r for r in rows)


def test_predict_sentence_embeddings(minilm_dir, tmp_path, capsys):
    """The README demo: mean-pooled, normalised MiniLM sentence embeddings."""
    import transformers

    texts = ["A man is eating food.", "A cat sleeps."]
    out = tmp_path / "emb.jsonl"
    source = tmp_path / "in.txt"
    source.write_text("\n".join(texts) + "\n")
    assert cli.main(["predict", str(minilm_dir), "--task", "feature-extraction", "--pooling", "mean", "--normalize",
                     "-i", str(source), "-o", str(out)]) == 0
    rows = read_output(out)
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_dir)
    model = transformers.AutoModel.from_pretrained(minilm_dir).eval()
    for text, row in zip(texts, rows):
        enc = tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**enc).last_hidden_state[0]
        expected = torch.nn.functional.normalize(hidden.mean(0), dim=-1)
        torch.testing.assert_close(torch.tensor(row["embedding"]), expected, atol=1e-5, rtol=1e-4)


def test_search_example_corpus(minilm_dir):
    result = run_cli("search", minilm_dir, "Will it snow this week?", "--corpus", EXAMPLES / "corpus.txt",
                     "--top-k", "3", "--format", "json")
    assert result.returncode == 0, result.stderr
    hits = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(hits) == 3 and hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"]
    assert "snow" in hits[0]["text"]


# ---------------------------------------------------------------------------------------- errors


def test_missing_model(tmp_path):
    one_line_error(run_cli("predict", tmp_path / "no-such-model", "hello"), 1, "no-such-model")
    one_line_error(run_cli("inspect", "nobody/no-such-model"), 1, "HF_HUB_OFFLINE")


def test_missing_and_unreadable_input(tiny_classifier, tmp_path):
    one_line_error(run_cli("predict", tiny_classifier, "--input", tmp_path / "nope.txt"), 2, "does not exist")
    one_line_error(run_cli("predict", tiny_classifier, "--input", tmp_path), 2, "not a file")
    odd = tmp_path / "in.docx"
    odd.write_text("x")
    one_line_error(run_cli("predict", tiny_classifier, "--input", odd), 2, ".jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\nnot json\n')
    one_line_error(run_cli("predict", tiny_classifier, "--input", bad), 1, "line 2")


def test_unknown_task_and_bad_arguments(tiny_classifier, tmp_path):
    one_line_error(run_cli("predict", tiny_classifier, "hi", "--task", "image-to-text"), 2, "unknown task")
    one_line_error(run_cli("predict", tiny_classifier, "hi", "--task", "summarization"), 1, "seq2seq-lm")
    one_line_error(run_cli("predict", tiny_classifier, "hi", "--format", "xml"), 2, "invalid choice")
    one_line_error(run_cli("predict", tiny_classifier, "hi", "--batch-size", "0"), 2, "--batch-size")
    one_line_error(run_cli("frobnicate"), 2, "invalid choice")
    one_line_error(run_cli("predict", tiny_classifier, "hi", "--resume"), 2, "--output")


def test_partial_output_needs_resume(tiny_classifier, tmp_path):
    out = tmp_path / "out.jsonl"
    Path(str(out) + ".partial").write_text("")
    one_line_error(run_cli("predict", tiny_classifier, "hi", "-o", out), 2, "--resume")


def test_debug_shows_traceback(tmp_path):
    result = run_cli("--debug", "predict", tmp_path / "missing", "hi")
    assert result.returncode == 1 and "Traceback" in result.stderr
    result = run_cli("predict", tmp_path / "missing", "hi", "--debug")
    assert result.returncode == 1 and "Traceback" in result.stderr


def test_download_offline_is_one_line():
    one_line_error(run_cli("download", "sentence-transformers/all-MiniLM-L6-v2"), 1, "HF_HUB_OFFLINE")


def test_download_local_folder_is_usage_error(minilm_dir):
    one_line_error(run_cli("download", minilm_dir), 2, "local folder")


def test_help_and_version():
    result = run_cli("--help")
    assert result.returncode == 0 and "predict" in result.stdout and "Exit codes" in result.stdout
    assert run_cli("--version").stdout.startswith("leanformers ")


# ------------------------------------------------------------------------------ other tasks


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory) -> Path:
    import numpy as np
    import transformers
    from PIL import Image

    folder = tmp_path_factory.mktemp("tiny-vit")
    torch.manual_seed(0)
    config = transformers.ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                                    num_attention_heads=2, intermediate_size=37, num_labels=3,
                                    architectures=["ViTForImageClassification"])
    transformers.ViTForImageClassification(config).save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "ViTImageProcessor", "do_resize": True, "size": {"height": 32, "width": 32},
        "do_normalize": True, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "resample": 2,
    }))
    images = folder / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray((rng.random((40, 50, 3)) * 255).astype("uint8")).save(images / f"{i}.png")
    return folder


def test_inspect_and_predict_images(tiny_vit, tmp_path, capsys):
    assert cli.main(["inspect", str(tiny_vit), "--format", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["model_class"] == "ViTForImageClassification" and "image-classification" in info["tasks"]
    assert info["preprocessing"]["image_processor"]["size"] == {"height": 32, "width": 32}

    listing = tmp_path / "images.csv"  # paths relative to the input file are found
    os.symlink(tiny_vit / "images", tmp_path / "images")
    listing.write_text("image,id\n" + "".join(f"images/{i}.png,{i}\n" for i in range(3)))
    out = tmp_path / "out.jsonl"
    assert cli.main(["predict", str(tiny_vit), "-i", str(listing), "-o", str(out), "--top-k", "3"]) == 0
    rows = read_output(out)
    assert [r["id"] for r in rows] == ["0", "1", "2"]
    for row in rows:
        assert sorted(d["label"] for d in row["labels"]) == ["LABEL_0", "LABEL_1", "LABEL_2"]
        assert sum(d["score"] for d in row["labels"]) == pytest.approx(1, abs=1e-5)


def test_question_answering(tiny_classifier, tmp_path, capsys):
    code = cli.main(["predict", str(tiny_classifier), "--task", "question-answering", "Who went home?",
                     "--context", "Ann went home after work."])
    assert code == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["question"] == "Who went home?" and {"answer", "score", "start", "end"} <= set(row)
    source = tmp_path / "qa.jsonl"
    source.write_text(json.dumps({"question": "Where?", "context": "In Paris, in spring."}) + "\n")
    assert cli.main(["predict", str(tiny_classifier), "--task", "question-answering", "-i", str(source)]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["answer"] in "In Paris, in spring."


def test_resume_of_a_complete_output_is_a_no_op(tiny_classifier, tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    assert cli.main(["predict", str(tiny_classifier), "one", "two", "-o", str(out)]) == 0
    before = out.read_bytes()
    assert cli.main(["predict", str(tiny_classifier), "one", "two", "-o", str(out), "--resume"]) == 0
    assert "already complete" in capsys.readouterr().err and out.read_bytes() == before


def test_cli_never_imports_transformers(tiny_classifier):
    code = ("import sys; from leanformers.cli import main; "
            f"assert main(['predict', {str(tiny_classifier)!r}, 'hi', '--format', 'json']) == 0; "
            "assert main(['inspect', " + repr(str(tiny_classifier)) + "]) == 0; "
            "assert not [m for m in sys.modules if m.split('.')[0] == 'transformers'], 'transformers imported'")
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=SRC)
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr


def test_no_command_is_a_usage_error():
    one_line_error(run_cli(), 2, "required")
