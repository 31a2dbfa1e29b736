"""The seq2seq text pipelines (text2text-generation, summarization, translation) on tiny random T5 and
BART checkpoints: the reference dropped these pipelines in version 5, so each output is compared
with what the reference's tokenizer, generate and decode give for the same text and settings
(the version-4 pipelines' recipe), including task_specific_params, prefixes and batches."""

from __future__ import annotations

import json
import os


import pytest
from parity import build_reference, load_reference, transformers
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from leanformers import pipeline
from leanformers.errors import ConfigError, InputError, UnsupportedModelError

WORDS = ["<pad>", "</s>", "<unk>"] + [w for w in (
    "summarize translate english to german : the a cat dog sat on mat house is big small red blue ran "
    "fast slow he she it was were and or but in of for with at by from up down out over under again then "
    "once here there when where why how all any both each few more most other some such no nor not only"
).split()]


def _tokenizer(path) -> None:
    """A word-level tokenizer.json with T5's framing (</s> appended), saved through the reference."""
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                       special_tokens=[("</s>", 1)])
    transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    ).save_pretrained(path)


T5_SETTINGS = {
    "summarization": {"num_beams": 3, "no_repeat_ngram_size": 2, "length_penalty": 1.5, "max_length": 12,
                      "min_length": 4, "early_stopping": True, "prefix": "summarize : "},
    "translation_en_to_de": {"num_beams": 2, "max_length": 10, "prefix": "translate english to german : "},
}


@pytest.fixture(scope="session")
def t5(tmp_path_factory):
    path = tmp_path_factory.mktemp("t5-pipe")
    config = transformers.T5Config(
        vocab_size=len(WORDS), d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4, initializer_factor=3.0,
        pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, task_specific_params=T5_SETTINGS,
    )
    build_reference("T5ForConditionalGeneration", config).save_pretrained(path)
    _tokenizer(path)
    return path, load_reference("T5ForConditionalGeneration", path), transformers.AutoTokenizer.from_pretrained(path)


TEXTS = ["the cat sat on the mat", "a dog ran fast", "she was here and then out again over the house", "red"]


def reference_outputs(ref, tok, texts, prefix="", **settings):
    batch = tok([prefix + t for t in texts], return_tensors="pt", padding=True)
    out = ref.generate(**batch, **settings)
    per = out.shape[0] // len(texts)
    return [[tok.decode(ids, skip_special_tokens=True) for ids in out[i * per:(i + 1) * per]] for i in range(len(texts))]


def test_text2text_equals_generate_and_decode(t5):
    path, ref, tok = t5
    pipe = pipeline("text2text-generation", model=path)
    expected = reference_outputs(ref, tok, TEXTS, max_new_tokens=8)
    for text, want in zip(TEXTS, expected):
        assert pipe(text, max_new_tokens=8) == [{"generated_text": want[0]}]
    # A list gives one dict per text, in input order, whatever the batching.
    assert pipe(TEXTS, max_new_tokens=8, batch_size=3) == [{"generated_text": w[0]} for w in expected]
    ids = pipe(TEXTS[0], max_new_tokens=8, return_tensors=True)[0]["generated_token_ids"]
    assert tok.decode(ids, skip_special_tokens=True) == expected[0][0]


def test_summarization_applies_the_task_settings(t5):
    path, ref, tok = t5
    settings = dict(T5_SETTINGS["summarization"])
    prefix = settings.pop("prefix")
    expected = reference_outputs(ref, tok, TEXTS, prefix=prefix, **settings)
    pipe = pipeline("summarization", model=path, batch_size=2)
    assert pipe(TEXTS) == [{"summary_text": w[0]} for w in expected]
    # Call settings win over the task's; several sequences per text give a list per text.
    expected = reference_outputs(ref, tok, TEXTS[:2], prefix=prefix, **{**settings, "num_return_sequences": 2})
    assert pipe(TEXTS[:2], num_return_sequences=2) == [[{"summary_text": s} for s in w] for w in expected]


def test_translation_task_names_pick_the_languages(t5):
    path, ref, tok = t5
    settings = dict(T5_SETTINGS["translation_en_to_de"])
    prefix = settings.pop("prefix")
    expected = reference_outputs(ref, tok, TEXTS, prefix=prefix, **settings)
    by_name = pipeline("translation_en_to_de", model=path)
    assert by_name(TEXTS) == [{"translation_text": w[0]} for w in expected]
    by_options = pipeline("translation", model=path)
    assert by_options(TEXTS[0], src_lang="en", tgt_lang="de") == [{"translation_text": expected[0][0]}]
    # Without languages no task settings apply: plain generation with the model's defaults.
    plain = reference_outputs(ref, tok, TEXTS[:1], max_new_tokens=6)
    assert by_options(TEXTS[0], max_new_tokens=6) == [{"translation_text": plain[0][0]}]


def test_bad_calls(t5, tmp_path):
    path, _, _ = t5
    pipe = pipeline("summarization", model=path)
    with pytest.raises(InputError, match="unknown argument"):
        pipe("the cat", frobnicate=1)
    with pytest.raises(ConfigError, match="num_beams"):
        pipe("the cat", num_beams=0)
    with pytest.raises(InputError, match="string"):
        pipe([3])
    with pytest.raises(InputError, match="empty"):
        pipe([])
    with pytest.raises(Exception, match="translation"):
        pipeline("translation_en_de", model=path)
    # A decoder-only model cannot serve these tasks.
    llama = tmp_path / "llama"
    build_reference("LlamaForCausalLM", transformers.LlamaConfig(
        vocab_size=len(WORDS), hidden_size=16, intermediate_size=24, num_hidden_layers=1, num_attention_heads=2,
    )).save_pretrained(llama)
    (llama / "tokenizer.json").write_text((path / "tokenizer.json").read_text())
    with pytest.raises(UnsupportedModelError, match="seq2seq-lm"):
        pipeline("summarization", model=llama)
    from leanformers import AutoModelForCausalLM, AutoTokenizer

    with pytest.raises(UnsupportedModelError, match="encoder-decoder"):
        pipeline("summarization", model=AutoModelForCausalLM.from_pretrained(llama),
                 tokenizer=AutoTokenizer.from_pretrained(path))


def test_predict_command_summarises_a_file(t5, tmp_path):
    import subprocess
    import sys

    path, ref, tok = t5
    rows = tmp_path / "in.jsonl"
    rows.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(TEXTS)))
    out = tmp_path / "out.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "leanformers", "predict", str(path), "--task", "summarization", "-i", str(rows),
         "-o", str(out), "--batch-size", "2"],
        capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr
    settings = dict(T5_SETTINGS["summarization"])
    prefix = settings.pop("prefix")
    expected = reference_outputs(ref, tok, TEXTS, prefix=prefix, **settings)
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["summary_text"] for row in got] == [w[0] for w in expected]
    assert [row["text"] for row in got] == TEXTS
