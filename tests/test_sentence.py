"""Sentence embeddings against sentence-transformers itself (a test-only dependency), zero-shot
classification and cross-encoder scoring against the reference's pipelines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from parity import transformers

import leanformers
from leanformers.errors import ConfigError, InputError, UnsupportedModelError

st = pytest.importorskip("sentence_transformers")

TEXTS = [
    "A man is eating food.",
    "  leading and trailing spaces  ",
    "x",
    "Ünïcödé: café, naïve, 한국어 문장입니다, 日本語の文, emoji 🙂🚀",
    "def f(x):\n\treturn x ** 2  # code",
    "The quick brown fox jumps over the lazy dog. " * 60,  # longer than the truncation length
    "Short.",
    "A fairly ordinary sentence about the weather, which was rainy and cold.",
]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


def assert_same_embeddings(ours: np.ndarray, theirs: np.ndarray) -> None:
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    assert cosines(ours, theirs).min() >= 1 - 1e-5
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(theirs).max())))


def test_minilm_equals_sentence_transformers(minilm_dir):
    theirs = st.SentenceTransformer(str(minilm_dir), device="cpu").encode(TEXTS, batch_size=3)
    ours = leanformers.encode(TEXTS, str(minilm_dir), batch_size=3)
    assert_same_embeddings(ours, theirs)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=-1), 1, rtol=1e-6)  # its Normalize module
    one = leanformers.encode(TEXTS[0], str(minilm_dir))
    assert one.shape == (384,) and np.allclose(one, ours[0], atol=1e-6)  # a result never depends on its batch
    tensor = leanformers.encode(TEXTS[:2], str(minilm_dir), convert_to_tensor=True)
    assert isinstance(tensor, torch.Tensor) and tensor.shape == (2, 384)


def test_all_mpnet_base_v2_equals_sentence_transformers(mpnet_dir):
    theirs = st.SentenceTransformer(str(mpnet_dir), device="cpu").encode(TEXTS, batch_size=4)
    ours = leanformers.encode(TEXTS, str(mpnet_dir), batch_size=4)
    assert ours.shape == (len(TEXTS), 768)
    assert_same_embeddings(ours, theirs)


# -- every module kind, on tiny models saved by sentence-transformers ----------------------------------


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory, minilm_dir) -> Path:
    """A tiny random BERT with the real bert-base-uncased vocabulary (so real texts tokenize)."""
    folder = tmp_path_factory.mktemp("tiny_bert")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(minilm_dir))
    config = transformers.BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=4, intermediate_size=37, max_position_embeddings=64)
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def sentence_model(base: Path, folder: Path, pooling, dense: str | None = None, normalize: bool = False,
                   max_seq_length: int = 40, prompts: dict | None = None) -> Path:
    """``base`` (a model with its tokenizer) as a sentence-transformers folder, saved by sentence-transformers."""
    from sentence_transformers.base.modules import Dense, Normalize, Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling

    torch.manual_seed(1)
    modules = [Transformer(str(base), max_seq_length=max_seq_length), Pooling(32, pooling_mode=pooling)]
    width = 32 * (1 if isinstance(pooling, str) else len(pooling))
    if dense:
        modules.append(Dense(width, 16, activation_function=getattr(torch.nn, dense)()))
    if normalize:
        modules.append(Normalize())
    model = st.SentenceTransformer(modules=modules, device="cpu", prompts=prompts)
    model.save(str(folder))
    return folder


VARIANTS = {
    "cls": dict(pooling="cls"),
    "max": dict(pooling="max"),
    "mean_sqrt": dict(pooling="mean_sqrt_len_tokens"),
    "weightedmean": dict(pooling="weightedmean"),
    "lasttoken": dict(pooling="lasttoken"),
    "several": dict(pooling=["cls", "mean", "max"]),
    "dense_tanh_normalize": dict(pooling="mean", dense="Tanh", normalize=True),
    "dense_identity": dict(pooling="cls", dense="Identity"),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_module_variants_equal_sentence_transformers(variant, tiny_bert, tmp_path):
    folder = sentence_model(tiny_bert, tmp_path / variant, **VARIANTS[variant])
    theirs = st.SentenceTransformer(str(folder), device="cpu").encode(TEXTS, batch_size=3)
    ours = leanformers.encode(TEXTS, str(folder), batch_size=3)
    assert_same_embeddings(ours, theirs)


def test_prompts_and_normalize_option(tiny_bert, tmp_path):
    folder = sentence_model(tiny_bert, tmp_path / "prompts", "mean", prompts={"query": "query: ", "doc": "passage: "})
    theirs_model = st.SentenceTransformer(str(folder), device="cpu")
    for kwargs in ({"prompt_name": "query"}, {"prompt": "search: "}, {"normalize_embeddings": True}):
        theirs = theirs_model.encode(TEXTS, **kwargs)
        ours = leanformers.encode(TEXTS, str(folder), **kwargs)
        assert_same_embeddings(ours, theirs)
    with pytest.raises(InputError, match="prompt_name='nope' is not one of this model's prompts.*'query'"):
        leanformers.encode(TEXTS, str(folder), prompt_name="nope")


def test_xlm_roberta_with_real_unigram_tokenizer(e5_tokenizer_file, tmp_path):
    """multilingual-e5-small's real tokenizer.json on a tiny random XLM-R, mean-pooled and normalised
    as the e5 models are: the tokenizer, the model family and the modules together."""
    import shutil

    base = tmp_path / "base"
    base.mkdir()
    shutil.copy(e5_tokenizer_file, base / "tokenizer.json")
    (base / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "XLMRobertaTokenizer",
                                                            "model_max_length": 512}))
    config = transformers.XLMRobertaConfig(vocab_size=250037, hidden_size=32, num_hidden_layers=2,
                                           num_attention_heads=4, intermediate_size=37, max_position_embeddings=64)
    torch.manual_seed(2)
    transformers.XLMRobertaModel(config, add_pooling_layer=False).save_pretrained(base)
    folder = sentence_model(base, tmp_path / "e5", "mean", normalize=True)
    texts = ["query: how much protein should a female eat", "passage: 한국어 문장입니다. 日本語の文 🙂", *TEXTS]
    theirs = st.SentenceTransformer(str(folder), device="cpu").encode(texts, batch_size=4)
    assert_same_embeddings(leanformers.encode(texts, str(folder), batch_size=4), theirs)


def test_transformer_in_a_module_folder(tiny_bert, tmp_path):
    """Older sentence-transformers folders keep the model and tokenizer in 0_Transformer/."""
    folder = sentence_model(tiny_bert, tmp_path / "old", "mean", normalize=True)
    inner = folder / "0_Transformer"
    inner.mkdir()
    for path in list(folder.iterdir()):
        if path.is_file() and path.name not in ("modules.json", "config_sentence_transformers.json", "README.md"):
            path.rename(inner / path.name)
    modules = json.loads((folder / "modules.json").read_text())
    modules[0]["path"] = "0_Transformer"
    (folder / "modules.json").write_text(json.dumps(modules))
    theirs = st.SentenceTransformer(str(folder), device="cpu").encode(TEXTS)
    assert_same_embeddings(leanformers.encode(TEXTS, str(folder)), theirs)


def test_plain_checkpoint_mean_pools(tiny_bert):
    theirs = st.SentenceTransformer(str(tiny_bert), device="cpu").encode(TEXTS)
    assert_same_embeddings(leanformers.encode(TEXTS, str(tiny_bert)), theirs)


def test_feature_extraction_pipeline_keeps_the_reference_output(tiny_bert):
    ref = transformers.pipeline("feature-extraction", model=str(tiny_bert))
    ours = leanformers.pipeline("feature-extraction", model=str(tiny_bert))
    for text in TEXTS[:4]:
        np.testing.assert_allclose(np.array(ours(text)), np.array(ref(text)), rtol=1e-5, atol=1e-5)


def test_bad_module_files(tiny_bert, tmp_path):
    folder = sentence_model(tiny_bert, tmp_path / "bad", "mean", dense="Tanh")
    modules = json.loads((folder / "modules.json").read_text())
    (folder / "modules.json").write_text(json.dumps([*modules, {"idx": 9, "path": "", "type": "evil.module.Run"}]))
    with pytest.raises(UnsupportedModelError, match="evil.module.Run"):
        leanformers.encode(["a"], str(folder))
    (folder / "modules.json").write_text(json.dumps(modules))
    dense_config = next(folder.glob("*_Dense")) / "config.json"
    config = json.loads(dense_config.read_text())
    dense_config.write_text(json.dumps({**config, "activation_function": "os.system"}))
    with pytest.raises(UnsupportedModelError, match="'system'"):
        leanformers.encode(["a"], str(folder))
    dense_config.write_text(json.dumps(config))
    pooling_config = next(folder.glob("*_Pooling")) / "config.json"
    pooling_config.write_text(json.dumps({"pooling_mode": "median"}))
    with pytest.raises(ConfigError, match="median"):
        leanformers.encode(["a"], str(folder))
    with pytest.raises(InputError, match="non-empty list"):
        leanformers.encode([], str(tiny_bert))


def test_embed_command_writes_vectors(minilm_dir, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(TEXTS)))
    output = tmp_path / "out.parquet"
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "leanformers", "embed", str(minilm_dir), "-i", str(source), "-o", str(output), "-q",
           "--batch-size", "3"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    import pyarrow.parquet as pq

    table = pq.read_table(output).to_pylist()
    assert [row["id"] for row in table] == list(range(len(TEXTS))) and table[3]["text"] == TEXTS[3]
    theirs = st.SentenceTransformer(str(minilm_dir), device="cpu").encode(TEXTS)
    assert_same_embeddings(np.array([row["embedding"] for row in table], dtype=np.float32), theirs)


# -- zero-shot classification and cross-encoders ----------------------------------------------------


@pytest.fixture(scope="module")
def nli_dir(tmp_path_factory, minilm_dir) -> Path:
    folder = tmp_path_factory.mktemp("nli")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(minilm_dir))
    labels = ["contradiction", "neutral", "entailment"]
    config = transformers.BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=37, max_position_embeddings=512, id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    torch.manual_seed(3)
    model = transformers.BertForSequenceClassification(config)
    with torch.no_grad():  # scores far enough apart that their order is not a rounding accident
        model.classifier.weight.mul_(40)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


ZERO_SHOT_CASES = [
    (TEXTS[0], {"candidate_labels": ["food", "sport", "politics"]}),
    (TEXTS[7], {"candidate_labels": "weather, sport,  travel", "multi_label": True}),
    (TEXTS[4], {"candidate_labels": ["code"]}),  # one label: entailment against contradiction
    (TEXTS[5], {"candidate_labels": ["animals", "sport"], "hypothesis_template": "The topic is {}."}),  # truncated
    ([TEXTS[1], TEXTS[3]], {"candidate_labels": ["a", "b", "c", "d"]}),
]


@pytest.mark.parametrize("case", range(len(ZERO_SHOT_CASES)))
def test_zero_shot_equals_reference(case, nli_dir):
    inputs, kwargs = ZERO_SHOT_CASES[case]
    ref = transformers.pipeline("zero-shot-classification", model=str(nli_dir))(inputs, **kwargs)
    ours = leanformers.pipeline("zero-shot-classification", model=str(nli_dir), batch_size=3)(inputs, **kwargs)
    for a, b in zip(ours if isinstance(ours, list) else [ours], ref if isinstance(ref, list) else [ref]):
        assert a["sequence"] == b["sequence"] and a["labels"] == b["labels"]
        np.testing.assert_allclose(a["scores"], b["scores"], rtol=1e-5, atol=1e-6)


def test_zero_shot_positional_labels_and_errors(nli_dir, tiny_bert):
    pipe = leanformers.pipeline("zero-shot-classification", model=str(nli_dir))
    assert pipe("I love it", ["good", "bad"])["labels"][0] in ("good", "bad")
    with pytest.raises(InputError, match="candidate_labels"):
        pipe("I love it")
    with pytest.raises(InputError, match="candidate_labels"):
        pipe("I love it", candidate_labels=[])
    with pytest.raises(InputError, match="hypothesis_template"):
        pipe("I love it", candidate_labels=["a"], hypothesis_template="no slot")
    with pytest.raises(InputError, match="entailment"):
        leanformers.pipeline("zero-shot-classification", model=str(tiny_bert), model_kwargs={})


def test_zero_shot_command(nli_dir):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "leanformers", "predict", str(nli_dir), TEXTS[0], "--task", "zero-shot-classification",
           "--labels", "food,sport", "--format", "json"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    row = json.loads(done.stdout)
    ref = transformers.pipeline("zero-shot-classification", model=str(nli_dir))(TEXTS[0], candidate_labels=["food", "sport"])
    assert row["labels"] == ref["labels"] and np.allclose(row["scores"], ref["scores"], atol=1e-6)


def test_cross_encoder_scores_pairs(nli_dir):
    pairs = [{"text": TEXTS[0], "text_pair": "Someone eats."}, {"text": TEXTS[7], "text_pair": TEXTS[3]}]
    ref = transformers.pipeline("text-classification", model=str(nli_dir))(pairs, top_k=None)
    ours = leanformers.pipeline("text-classification", model=str(nli_dir))(pairs, top_k=None)
    for a, b in zip(ours, ref):
        assert [x["label"] for x in a] == [x["label"] for x in b]
        np.testing.assert_allclose([x["score"] for x in a], [x["score"] for x in b], rtol=1e-5, atol=1e-6)
