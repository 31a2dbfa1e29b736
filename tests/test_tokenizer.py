"""The tokenizer against the reference library (transformers 5.23) on a corpus of 500+ texts.

Both libraries load the same folders (the real all-MiniLM-L6-v2 checkpoint, and vocab.txt-only
copies of it with different options) and must return the same keys, values, value types and
Rust encodings for every option combination tried.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from conftest_tokenizer import (  # noqa: F401 - fixtures are used by name
    VARIANTS,
    assert_same_encoding,
    call_both,
    corpus,
    minilm_path,
    real_checkpoint,
    tokenizer_pairs,
    variant_dirs,
)
from leanformers.errors import CheckpointNotFoundError, ConfigError, InputError, LeanformersError, TokenizerError
from leanformers.processing.tokenizer import BatchEncoding, PreTrainedTokenizer, load_tokenizer

pytest.importorskip("transformers")

SEED_TEXT = "In a hole in the ground there lived a hobbit."
SEED_IDS = [101, 1999, 1037, 4920, 1999, 1996, 2598, 2045, 2973, 1037, 7570, 10322, 4183, 1012, 102]

CORPUS = corpus.CORPUS
PAIRS = corpus.ALL_PAIRS
SPLIT = corpus.SPLIT_WORDS

CALL_OPTIONS = [
    {},
    {"padding": True},
    {"padding": "longest", "pad_to_multiple_of": 8},
    {"padding": "max_length", "max_length": 48, "truncation": True},
    {"padding": "max_length", "max_length": 40},
    {"padding": "max_length"},
    {"padding": "do_not_pad", "truncation": "do_not_truncate"},
    {"truncation": True, "max_length": 16},
    {"max_length": 12},
    {"max_length": 12, "truncation": False},
    {"truncation": True},
    {"truncation": "longest_first", "max_length": 20, "padding": True},
    {"truncation": "only_first", "max_length": 20},
    {"truncation": "only_second", "max_length": 24},
    {"padding": True, "truncation": True, "max_length": 24, "pad_to_multiple_of": 8},
    {"padding": True, "padding_side": "left"},
    {"padding": "max_length", "max_length": 32, "truncation": True, "padding_side": "left"},
    {"truncation": True, "max_length": 16, "stride": 4, "return_overflowing_tokens": True},
    {"truncation": True, "max_length": 16, "stride": 4, "return_overflowing_tokens": True, "padding": True},
    {"return_offsets_mapping": True, "return_special_tokens_mask": True, "return_length": True},
    {"return_offsets_mapping": True, "return_special_tokens_mask": True, "return_length": True, "padding": True},
    {"add_special_tokens": False},
    {"add_special_tokens": False, "padding": True, "return_special_tokens_mask": True},
    {"return_token_type_ids": False, "return_attention_mask": False},
    {"return_token_type_ids": True, "padding": True},
    {
        "padding": True,
        "truncation": True,
        "max_length": 20,
        "stride": 2,
        "return_overflowing_tokens": True,
        "return_offsets_mapping": True,
        "return_special_tokens_mask": True,
        "return_length": True,
        "padding_side": "left",
    },
]
TENSORS = [None, "np", "pt"]


def _option_id(options: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in options.items()) or "defaults"


# ------------------------------------------------------------------------------------------------
# The real checkpoint
# ------------------------------------------------------------------------------------------------


def test_seed_ids(minilm_path: Path) -> None:
    tokenizer = load_tokenizer(str(minilm_path))
    encoded = tokenizer(SEED_TEXT)
    assert isinstance(encoded, BatchEncoding)
    assert encoded["input_ids"] == SEED_IDS
    assert encoded.input_ids == SEED_IDS
    assert encoded["token_type_ids"] == [0] * len(SEED_IDS)
    assert encoded["attention_mask"] == [1] * len(SEED_IDS)
    assert repr(encoded) == str(dict(encoded))
    assert str(encoded).startswith("{'input_ids': [101, 1999")


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_repr_and_attributes_match_reference(tokenizer_pairs, variant: str) -> None:
    ours, ref = tokenizer_pairs(variant)
    assert repr(ours) == repr(ref)
    assert type(ours).__name__ == type(ref).__name__
    for name in ("vocab_size", "model_max_length", "padding_side", "truncation_side", "name_or_path", "is_fast",
                 "special_tokens_map", "all_special_tokens", "all_special_ids", "model_input_names",
                 "cls_token", "cls_token_id", "sep_token", "sep_token_id", "pad_token", "pad_token_id",
                 "unk_token", "unk_token_id", "mask_token", "mask_token_id", "bos_token", "bos_token_id",
                 "eos_token", "eos_token_id", "max_len_single_sentence", "max_len_sentences_pair",
                 "clean_up_tokenization_spaces", "pad_token_type_id"):
        assert getattr(ours, name) == getattr(ref, name), name
    assert len(ours) == len(ref)
    assert ours.get_vocab() == ref.get_vocab()
    assert ours.added_tokens_encoder == ref.added_tokens_encoder
    assert ours.num_special_tokens_to_add(pair=True) == ref.num_special_tokens_to_add(pair=True)
    assert ours.backend_tokenizer.normalizer.__getstate__() == ref.backend_tokenizer.normalizer.__getstate__()
    assert ours.backend_tokenizer.post_processor.__getstate__() == ref.backend_tokenizer.post_processor.__getstate__()


def test_pretrained_class_method_and_load_kwargs(minilm_path: Path) -> None:
    from transformers import AutoTokenizer

    ours = PreTrainedTokenizer.from_pretrained(minilm_path, model_max_length=32, padding_side="left", do_lower_case=False)
    ref = AutoTokenizer.from_pretrained(str(minilm_path), model_max_length=32, padding_side="left", do_lower_case=False)
    assert repr(ours).replace(str(minilm_path), "P") == repr(ref).replace(str(minilm_path), "P")
    texts = ["Hello World CAFÉ", "short"]
    assert_same_encoding(ours(texts, padding=True, truncation=True), ref(texts, padding=True, truncation=True))


# ------------------------------------------------------------------------------------------------
# Call parity over the corpus
# ------------------------------------------------------------------------------------------------


def _check_batches(ours, ref, options: dict, where: str, tensor_slice: int = 150) -> None:
    """The whole corpus (and all pairs) as lists; a slice of it as numpy arrays and torch tensors
    (the tensor path is the same code for any batch, and the reference is slow to build tensors)."""
    singles, firsts, seconds = CORPUS, [a for a, _ in PAIRS], [b for _, b in PAIRS]
    for tensors in TENSORS:
        if tensors is not None:
            singles, firsts, seconds = CORPUS[:tensor_slice], firsts[:40], seconds[:40]
        label = f"{where} {options} return_tensors={tensors}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mine, expected = call_both(ours, ref, singles, return_tensors=tensors, **options)
            if mine is not None:
                assert_same_encoding(mine, expected, label + " singles")
            mine, expected = call_both(ours, ref, firsts, seconds, return_tensors=tensors, **options)
            if mine is not None:
                assert_same_encoding(mine, expected, label + " pairs")


@pytest.mark.parametrize("options", CALL_OPTIONS, ids=_option_id)
def test_batch_parity(tokenizer_pairs, options: dict) -> None:
    ours, ref = tokenizer_pairs("tokenizer_json")
    _check_batches(ours, ref, options, "tokenizer.json")


# The vocab.txt variants differ from each other only in normalisation, which any call shows; the
# DistilBERT one also changes the model inputs and the padding/truncation sides, so it gets more.
NORMALISATION_OPTIONS = [CALL_OPTIONS[i] for i in (0, 20, 25)]
SIDE_OPTIONS = [CALL_OPTIONS[i] for i in (0, 1, 3, 7, 15, 18, 20, 25)]


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v != "tokenizer_json"])
def test_batch_parity_vocab_variants(tokenizer_pairs, variant: str) -> None:
    ours, ref = tokenizer_pairs(variant)
    for options in SIDE_OPTIONS if variant in ("vocab_only", "distilbert_left_padding") else NORMALISATION_OPTIONS:
        _check_batches(ours, ref, options, variant, tensor_slice=60)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"return_offsets_mapping": True, "return_length": True, "return_special_tokens_mask": True},
        {"truncation": True, "max_length": 8, "stride": 2, "return_overflowing_tokens": True},
        {"padding": "max_length", "max_length": 16, "truncation": True},
        {"padding": True, "pad_to_multiple_of": 16},
    ],
    ids=_option_id,
)
@pytest.mark.parametrize("variant", ["tokenizer_json", "vocab_cased", "distilbert_left_padding"])
def test_single_text_parity(tokenizer_pairs, variant: str, options: dict) -> None:
    ours, ref = tokenizer_pairs(variant)
    for index, text in enumerate(CORPUS[:200] + CORPUS[200::4]):
        for tensors in (None, "np") if index % 4 == 0 else (None,):
            mine, expected = call_both(ours, ref, text, return_tensors=tensors, **options)
            if mine is not None:
                assert_same_encoding(mine, expected, f"{variant} {text!r} {options} {tensors}")


@pytest.mark.parametrize("variant", ["tokenizer_json", "vocab_only"])
def test_single_pair_parity(tokenizer_pairs, variant: str) -> None:
    ours, ref = tokenizer_pairs(variant)
    for first, second in PAIRS:
        for options in ({}, {"truncation": "only_second", "max_length": 24}, {"truncation": True, "max_length": 16, "return_offsets_mapping": True}):
            mine, expected = call_both(ours, ref, first, second, **options)
            if mine is not None:
                assert_same_encoding(mine, expected, f"{variant} {first!r}/{second!r} {options}")


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"padding": True},
        {"padding": True, "truncation": True, "max_length": 10, "return_offsets_mapping": True},
        {"truncation": True, "max_length": 10, "stride": 2, "return_overflowing_tokens": True},
        {"add_special_tokens": False, "return_special_tokens_mask": True},
    ],
    ids=_option_id,
)
@pytest.mark.parametrize("variant", ["tokenizer_json", "vocab_cased"])
def test_split_into_words_parity(tokenizer_pairs, variant: str, options: dict) -> None:
    ours, ref = tokenizer_pairs(variant)
    for tensors in (None, "np", "pt"):
        mine, expected = call_both(ours, ref, SPLIT, is_split_into_words=True, return_tensors=tensors, **options)
        if mine is not None:
            assert_same_encoding(mine, expected, f"split batch {options} {tensors}")
    pairs_a, pairs_b = SPLIT[:50], SPLIT[50:100]
    mine, expected = call_both(ours, ref, pairs_a, pairs_b, is_split_into_words=True, **options)
    if mine is not None:
        assert_same_encoding(mine, expected, f"split pairs {options}")
    for words in SPLIT[:40] + [[]]:
        mine, expected = call_both(ours, ref, words, is_split_into_words=True, **options)
        if mine is not None:
            assert_same_encoding(mine, expected, f"split single {words} {options}")


def test_input_shapes_parity(tokenizer_pairs) -> None:
    ours, ref = tokenizer_pairs("tokenizer_json")
    cases = [
        ((("first", "second", "third"),), {}),
        (([("question one", "answer one"), ("question two", "answer two")],), {}),
        (("text", ""), {}),
        ((["a", "b"], ["", "c"]), {}),
        (("hello", None), {"return_length": True}),
        ((["hello world", "bye"],), {"padding": True, "return_tensors": "pt"}),
        ((["hello world", "bye"],), {"return_tensors": "np"}),
        ((["hello world", "bye"],), {"return_tensors": "pt"}),
        ((["hello world", "bye"],), {"return_tensors": "pt", "return_offsets_mapping": True}),
        ((["", ""],), {"add_special_tokens": False, "return_tensors": "np", "return_offsets_mapping": True}),
        ((["", "a"],), {"add_special_tokens": False, "return_tensors": "np", "return_offsets_mapping": True}),
        (("",), {"add_special_tokens": False, "return_tensors": "pt"}),
        (("hello",), {"return_tensors": "pt", "return_overflowing_tokens": True, "truncation": True, "max_length": 3}),
        (("hello there general kenobi",), {"return_overflowing_tokens": True, "truncation": True, "max_length": 4}),
        (("[CLS] [MASK] [PAD]",), {"split_special_tokens": True}),
        (("[CLS] [MASK] [PAD]",), {}),
        (("hello world",), {"is_split_into_words": True}),
        ((["x", "y"],), {"is_split_into_words": True, "return_tensors": "pt"}),
        (("a b c d e f",), {"max_length": 1}),
        (("a b c d e f",), {"truncation": True, "max_length": 6, "stride": 10, "return_overflowing_tokens": True}),
    ]
    for args, kwargs in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mine, expected = call_both(ours, ref, *args, **kwargs)
        if mine is not None:
            assert_same_encoding(mine, expected, f"{args} {kwargs}")


def test_warnings_match(tokenizer_pairs, caplog: pytest.LogCaptureFixture) -> None:
    ours, _ = tokenizer_pairs("tokenizer_json")
    with pytest.warns(UserWarning, match="max_length is ignored"):
        ours("hello", padding=True, max_length=4)
    fresh = load_tokenizer(str(real_checkpoint()))
    with caplog.at_level("WARNING", logger="leanformers.processing.tokenizer"):
        fresh("token " * 600)
        fresh("token " * 600)
    messages = [r.message for r in caplog.records if "longer than the specified maximum" in r.message]
    assert len(messages) == 1 and "(602 > 512)" in messages[0]


# ------------------------------------------------------------------------------------------------
# Encoding helpers, decoding, conversions
# ------------------------------------------------------------------------------------------------


def test_batch_encoding_methods_parity(tokenizer_pairs) -> None:
    ours, ref = tokenizer_pairs("tokenizer_json")
    texts = CORPUS[:120]
    for kwargs in ({}, {"padding": True, "return_tensors": "pt"}, {"padding": True, "padding_side": "left", "return_tensors": "np"}):
        mine, expected = ours(texts, **kwargs), ref(texts, **kwargs)
        for row, text in enumerate(texts):
            assert mine.tokens(row) == expected.tokens(row)
            assert mine.word_ids(row) == expected.word_ids(row)
            assert mine.sequence_ids(row) == expected.sequence_ids(row)
            for char in range(0, len(text), 3):
                assert mine.char_to_token(row, char) == expected.char_to_token(row, char)
                assert mine.char_to_word(row, char) == expected.char_to_word(row, char)
            for token in range(len(mine.tokens(row))):
                assert mine.token_to_chars(row, token) == expected.token_to_chars(row, token)
                assert mine.token_to_word(row, token) == expected.token_to_word(row, token)
                assert mine.token_to_sequence(row, token) == expected.token_to_sequence(row, token)
            words = {w for w in expected.word_ids(row) if w is not None}
            for word in words:
                assert mine.word_to_tokens(row, word) == expected.word_to_tokens(row, word)
                assert mine.word_to_chars(row, word) == expected.word_to_chars(row, word)
        assert mine.is_fast and mine.n_sequences == expected.n_sequences
    mine, expected = ours("Hello there, friend", "second part"), ref("Hello there, friend", "second part")
    assert mine.char_to_token(3) == expected.char_to_token(3)
    assert mine.char_to_token(0, 2, sequence_index=1) == expected.char_to_token(0, 2, sequence_index=1)
    assert mine.word_to_tokens(0, sequence_index=1) == expected.word_to_tokens(0, sequence_index=1)
    assert mine.token_to_chars(2) == expected.token_to_chars(2)
    assert mine.sequence_ids() == expected.sequence_ids()
    assert mine.n_sequences == expected.n_sequences == 2
    assert mine[0].ids == expected[0].ids
    assert mine[:] == [e for e in mine.encodings]


def test_batch_encoding_container_behaviour(tokenizer_pairs) -> None:
    import pickle

    ours, _ = tokenizer_pairs("tokenizer_json")
    encoded = ours(["a b", "c"], padding=True)
    assert isinstance(encoded, dict) and list(encoded) == ["input_ids", "token_type_ids", "attention_mask"]
    assert encoded.attention_mask == [[1, 1, 1, 1], [1, 1, 1, 0]]
    with pytest.raises(AttributeError):
        encoded.nope
    restored = pickle.loads(pickle.dumps(encoded))
    assert restored == encoded and restored.tokens(1) == encoded.tokens(1)
    plain = BatchEncoding({"input_ids": [[1, 2], [3, 4]]})
    assert not plain.is_fast and plain.encodings is None
    assert plain[:1] == {"input_ids": [[1, 2]]}
    with pytest.raises(InputError):
        plain.word_ids(0)
    arrays = BatchEncoding({"input_ids": [[1, 2], [3, 4]]}, tensor_type="np")
    assert arrays["input_ids"].shape == (2, 2)
    tensors = ours(["a b", "c"], padding=True, return_tensors="pt").to("cpu")
    assert tensors["input_ids"].device.type == "cpu"
    assert tensors.convert_to_tensors("pt") is tensors
    with pytest.raises(InputError):
        ours("a", return_tensors="tf")


def test_decode_parity(tokenizer_pairs) -> None:
    import numpy as np
    import torch

    for variant in ("tokenizer_json", "vocab_cased"):
        ours, ref = tokenizer_pairs(variant)
        ids = ours(CORPUS, padding=True)["input_ids"]
        for skip in (False, True):
            for clean in (None, True, False):
                assert ours.batch_decode(ids, skip_special_tokens=skip, clean_up_tokenization_spaces=clean) == ref.batch_decode(
                    ids, skip_special_tokens=skip, clean_up_tokenization_spaces=clean
                )
            assert ours.decode(ids, skip_special_tokens=skip) == ref.decode(ids, skip_special_tokens=skip)
            for row in ids[:60]:
                assert ours.decode(row, skip_special_tokens=skip) == ref.decode(row, skip_special_tokens=skip)
        sample = ids[:4]
        assert ours.decode(np.array(sample)) == ref.decode(np.array(sample))
        assert ours.decode(torch.tensor(sample[0])) == ref.decode(torch.tensor(sample[0]))
        assert ours.decode(101) == ref.decode(101)
        assert ours.decode([]) == ref.decode([])
        assert ours.batch_decode([]) == ref.batch_decode([])
        assert ours.batch_decode(sample[0]) == ref.batch_decode(sample[0])
        assert ours.decode(ours("a sentence , with spaces .")) == ref.decode(ref("a sentence , with spaces ."))
    with pytest.raises(InputError):
        ours.decode([-5])


def test_token_conversions_parity(tokenizer_pairs) -> None:
    ours, ref = tokenizer_pairs("tokenizer_json")
    for text in CORPUS[:200]:
        assert ours.tokenize(text) == ref.tokenize(text)
        assert ours.encode(text) == ref.encode(text)
        assert ours.encode(text, add_special_tokens=False) == ref.encode(text, add_special_tokens=False)
    assert ours.tokenize("Hello", "World", add_special_tokens=True) == ref.tokenize("Hello", "World", add_special_tokens=True)
    assert ours.encode("a b", "c d", max_length=4) == ref.encode("a b", "c d", max_length=4)
    assert (ours.encode("a b", return_tensors="pt") == ref.encode("a b", return_tensors="pt")).all()
    tokens = ["[CLS]", "hello", "##s", "not-a-token-xyz", "[SEP]"]
    assert ours.convert_tokens_to_ids(tokens) == ref.convert_tokens_to_ids(tokens)
    assert ours.convert_tokens_to_ids("hello") == ref.convert_tokens_to_ids("hello")
    ids = [101, 7592, 2015, 100, 102, 0, 999999]
    for skip in (False, True):
        assert ours.convert_ids_to_tokens(ids, skip_special_tokens=skip) == ref.convert_ids_to_tokens(ids, skip_special_tokens=skip)
    assert ours.convert_ids_to_tokens(7592) == ref.convert_ids_to_tokens(7592)
    assert ours.convert_tokens_to_string(["hello", "##s", "world"]) == ref.convert_tokens_to_string(["hello", "##s", "world"])
    assert ours.get_special_tokens_mask([101, 7592, 102], already_has_special_tokens=True) == ref.get_special_tokens_mask(
        [101, 7592, 102], already_has_special_tokens=True
    )


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"return_tensors": "pt"},
        {"padding": "max_length", "max_length": 12},
        {"pad_to_multiple_of": 8, "return_tensors": "np"},
        {"padding_side": "left"},
        {"return_attention_mask": False},
    ],
    ids=_option_id,
)
def test_pad_parity(tokenizer_pairs, options: dict) -> None:
    ours, ref = tokenizer_pairs("tokenizer_json")
    texts = CORPUS[:40]
    features = [dict(ours(text, return_special_tokens_mask=True)) for text in texts]
    assert_same_encoding(ours.pad([dict(f) for f in features], **options), ref.pad([dict(f) for f in features], **options), "", False)
    batch = dict(ours(texts, padding=True, return_tensors="np"))
    assert_same_encoding(ours.pad(dict(batch), **options), ref.pad(dict(batch), **options), "arrays", False)
    assert_same_encoding(ours.pad(dict(features[0]), **options), ref.pad(dict(features[0]), **options), "one", False)


def test_tokenizer_pickles(tokenizer_pairs) -> None:
    import copy
    import pickle

    ours, _ = tokenizer_pairs("vocab_cased")
    for clone in (pickle.loads(pickle.dumps(ours)), copy.deepcopy(ours)):
        assert repr(clone) == repr(ours)
        assert clone(CORPUS[:20], padding=True)["input_ids"] == ours(CORPUS[:20], padding=True)["input_ids"]


def test_added_tokens_parity(variant_dirs) -> None:
    from transformers import AutoTokenizer

    ours = load_tokenizer(str(variant_dirs["tokenizer_json"]))
    ref = AutoTokenizer.from_pretrained(str(variant_dirs["tokenizer_json"]))
    assert ours.add_tokens(["newword", "hello"]) == ref.add_tokens(["newword", "hello"])
    assert ours.add_special_tokens({"extra_special_tokens": ["<ent>"], "bos_token": "<s>"}) == ref.add_special_tokens(
        {"extra_special_tokens": ["<ent>"], "bos_token": "<s>"}
    )
    assert repr(ours) == repr(ref)
    assert ours.all_special_tokens == ref.all_special_tokens and ours.all_special_ids == ref.all_special_ids
    text = ["a newword <ent> and <s> hello", "x"]
    assert_same_encoding(ours(text, padding=True), ref(text, padding=True))
    assert ours.decode(ours(text[0])["input_ids"], skip_special_tokens=True) == ref.decode(
        ref(text[0])["input_ids"], skip_special_tokens=True
    )
    ours.pad_token_id = 103
    assert ours.pad_token == "[MASK]"
    assert ours(["a", "b c"], padding=True)["input_ids"][0][-1] == 103


# ------------------------------------------------------------------------------------------------
# Saving and loading
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["tokenizer_json", "vocab_cased_strip_accents", "distilbert_left_padding"])
def test_save_round_trips_with_reference(tokenizer_pairs, variant: str, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    ours, ref = tokenizer_pairs(variant)
    ours("warm up the backend state", padding="max_length", max_length=20, truncation=True)
    written = ours.save_pretrained(tmp_path / "ours")
    assert sorted(Path(p).name for p in written) == ["tokenizer.json", "tokenizer_config.json"]
    assert not [p for p in (tmp_path / "ours").iterdir() if p.name.startswith(".")]
    ref.save_pretrained(tmp_path / "ref")
    ours_config = json.loads((tmp_path / "ours" / "tokenizer_config.json").read_text())
    ref_config = json.loads((tmp_path / "ref" / "tokenizer_config.json").read_text())
    assert ours_config == ref_config

    # The reference saves whatever padding/truncation its last call left on the Rust tokenizer, and
    # loading takes padding_side from it, so each side is compared with the reference's own reload.
    reloaded_ref = AutoTokenizer.from_pretrained(str(tmp_path / "ours"))
    reloaded_ours = load_tokenizer(str(tmp_path / "ref"))
    ref_reloading_itself = AutoTokenizer.from_pretrained(str(tmp_path / "ref"))
    texts = CORPUS[:200]
    for options in ({}, {"padding": True, "truncation": True, "max_length": 24}):
        assert_same_encoding(reloaded_ref(texts, **options), ref(texts, **options), "reference loading ours")
        assert_same_encoding(ours(texts, **options), ref(texts, **options), "ours after saving")
        assert_same_encoding(
            reloaded_ours(texts, **options), ref_reloading_itself(texts, **options), "ours loading reference's"
        )
    assert repr(reloaded_ref).replace(str(tmp_path / "ours"), "P") == repr(ref).replace(ref.name_or_path, "P")
    assert repr(reloaded_ours).replace(str(tmp_path / "ref"), "P") == repr(ref_reloading_itself).replace(
        str(tmp_path / "ref"), "P"
    )


def test_hub_cache_layout(minilm_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--someorg--minilm"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "config.json"):
        shutil.copy(minilm_path / name, snapshot / name)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tokenizer = load_tokenizer("someorg/minilm")
    assert tokenizer(SEED_TEXT)["input_ids"] == SEED_IDS
    assert tokenizer.name_or_path == "someorg/minilm"
    via_class = PreTrainedTokenizer.from_pretrained("someorg/minilm", revision=commit)
    assert via_class(CORPUS[:50])["input_ids"] == load_tokenizer(str(minilm_path))(CORPUS[:50])["input_ids"]
    with pytest.raises(CheckpointNotFoundError):
        load_tokenizer("someorg/absent")


def test_class_from_config_json_when_tokenizer_config_has_none(minilm_path: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    folder = tmp_path / "no_class"
    folder.mkdir()
    shutil.copy(minilm_path / "vocab.txt", folder / "vocab.txt")
    shutil.copy(minilm_path / "config.json", folder / "config.json")
    ours, ref = load_tokenizer(str(folder)), AutoTokenizer.from_pretrained(str(folder))
    assert repr(ours) == repr(ref)
    assert_same_encoding(ours(CORPUS[:100], padding=True), ref(CORPUS[:100], padding=True))


def test_saved_added_tokens_decoder_parity(minilm_path: Path, tmp_path: Path) -> None:
    """Checkpoints saved by transformers v4 list their added tokens in tokenizer_config.json."""
    from transformers import AutoTokenizer

    folder = tmp_path / "v4_style"
    folder.mkdir()
    shutil.copy(minilm_path / "tokenizer.json", folder / "tokenizer.json")
    config = json.loads((minilm_path / "tokenizer_config.json").read_text())
    flags = {"lstrip": False, "rstrip": False, "single_word": False}
    config["added_tokens_decoder"] = {
        str(index): {"content": content, "normalized": False, "special": True, **flags}
        for index, content in ((0, "[PAD]"), (100, "[UNK]"), (101, "[CLS]"), (102, "[SEP]"), (103, "[MASK]"))
    }
    config["added_tokens_decoder"]["30522"] = {"content": "<new>", "normalized": True, "special": False, **flags}
    config["added_tokens_decoder"]["30523"] = {"content": "<ENT>", "normalized": False, "special": True, **flags}
    config["clean_up_tokenization_spaces"] = True
    config["mask_token"] = {"__type": "AddedToken", "content": "[MASK]", "lstrip": True, "normalized": False,
                            "rstrip": False, "single_word": False, "special": True}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    ours, ref = load_tokenizer(str(folder)), AutoTokenizer.from_pretrained(str(folder))
    assert repr(ours) == repr(ref)
    texts = ["a <new> token, and <ENT> here .", "<NEW> lowercase? [MASK] masked", *CORPUS[:80]]
    for options in ({}, {"padding": True, "return_offsets_mapping": True}):
        assert_same_encoding(ours(texts, **options), ref(texts, **options))
    ids = ours(texts, padding=True)["input_ids"]
    for skip in (False, True):
        assert ours.batch_decode(ids, skip_special_tokens=skip) == ref.batch_decode(ids, skip_special_tokens=skip)
    ours.save_pretrained(tmp_path / "saved")
    again = AutoTokenizer.from_pretrained(str(tmp_path / "saved"))
    assert_same_encoding(again(texts), ref(texts))


def test_light_import_and_no_torch(minilm_path: Path) -> None:
    code = f"""
import sys
import leanformers.processing.tokenizer as module
assert 'torch' not in sys.modules and 'numpy' not in sys.modules, 'heavy import at module load'
tokenizer = module.load_tokenizer({str(minilm_path)!r})
tokenizer("hello world")
tokenizer(["hello world", "a longer second text"], padding=True)
assert 'numpy' not in sys.modules
arrays = tokenizer(["hello world", "a longer second text"], padding=True, return_tensors="np")
assert type(arrays["input_ids"]).__module__ == "numpy"
assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))
print("ok")
"""
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# ------------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------------


def test_missing_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFoundError):
        load_tokenizer(str(tmp_path / "does" / "not" / "exist"))
    with pytest.raises(CheckpointNotFoundError):
        PreTrainedTokenizer.from_pretrained("/definitely/not/here")


def test_empty_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(TokenizerError, match="no tokenizer_class"):
        load_tokenizer(str(tmp_path))


def test_malformed_json_names_the_file(minilm_path: Path, tmp_path: Path) -> None:
    folder = tmp_path / "bad_config"
    folder.mkdir()
    shutil.copy(minilm_path / "vocab.txt", folder / "vocab.txt")
    (folder / "tokenizer_config.json").write_text('{"tokenizer_class": "BertTokenizer",')
    with pytest.raises(ConfigError, match="tokenizer_config.json"):
        load_tokenizer(str(folder))
    (folder / "tokenizer_config.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="JSON object"):
        load_tokenizer(str(folder))
    (folder / "tokenizer_config.json").write_text('{"tokenizer_class": "BertTokenizer"}')
    (folder / "tokenizer.json").write_text("{not json")
    with pytest.raises(TokenizerError, match="tokenizer.json"):
        load_tokenizer(str(folder))
    (folder / "tokenizer.json").unlink()
    (folder / "special_tokens_map.json").write_text("{")
    with pytest.raises(ConfigError, match="special_tokens_map.json"):
        load_tokenizer(str(folder))


def test_unknown_class_without_tokenizer_json(minilm_path: Path, tmp_path: Path) -> None:
    folder = tmp_path / "unknown"
    folder.mkdir()
    shutil.copy(minilm_path / "vocab.txt", folder / "vocab.txt")
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "FancyTokenizer", "auto_map": {"AutoTokenizer": ["x.FancyTokenizer", None]}})
    )
    with pytest.raises(TokenizerError) as info:
        load_tokenizer(str(folder))
    message = str(info.value)
    assert "FancyTokenizer" in message and "BertTokenizer" in message and "never run" in message


def test_unknown_class_with_tokenizer_json_uses_it_as_is(minilm_path: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    folder = tmp_path / "generic"
    folder.mkdir()
    shutil.copy(minilm_path / "tokenizer.json", folder / "tokenizer.json")
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "FancyTokenizer", "model_max_length": 128}))
    ours, ref = load_tokenizer(str(folder)), AutoTokenizer.from_pretrained(str(folder))
    assert repr(ours) == repr(ref)
    assert_same_encoding(ours(CORPUS[:100], padding=True), ref(CORPUS[:100], padding=True))


def test_missing_vocabulary(tmp_path: Path) -> None:
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "BertTokenizer"}))
    with pytest.raises(TokenizerError, match="neither tokenizer.json nor vocab.txt"):
        load_tokenizer(str(tmp_path))


@pytest.mark.parametrize(
    "args, kwargs",
    [
        ((123,), {}),
        ((None,), {}),
        (([1, 2, 3],), {}),
        (({"text": "x"},), {}),
        ((["a", "b"], "pair"), {}),
        ((["a", "b"], ["only one"]), {}),
        (([],), {}),
        (("a", 5), {}),
        ((["fine", 42],), {}),
        (("a",), {"padding": "sideways"}),
        (("a",), {"truncation": "sometimes"}),
        (("a",), {"max_length": -1}),
        (("a",), {"max_length": "ten"}),
        (("a",), {"padding_side": "middle", "padding": True}),
        (("a",), {"return_tensors": "tf"}),
        (("a",), {"pad_to_multiple_of": 0, "padding": True}),
        (("a",), {"padding": True, "truncation": True, "max_length": 10, "pad_to_multiple_of": 4}),
        (("a",), {"not_an_option": True}),
        ((["a", "b c"],), {"return_tensors": "pt"}),
        (("a",), {"is_split_into_words": True}),
    ],
)
def test_bad_inputs_raise_input_error(tokenizer_pairs, args, kwargs) -> None:
    ours, _ = tokenizer_pairs("tokenizer_json")
    with pytest.raises(InputError):
        ours(*args, **kwargs)


def test_no_pad_token_and_bad_settings(minilm_path: Path) -> None:
    tokenizer = load_tokenizer(str(minilm_path))
    tokenizer.pad_token = None
    assert tokenizer.pad_token is None and tokenizer.pad_token_id is None
    with pytest.raises(InputError, match="no padding token"):
        tokenizer(["a", "b c"], padding=True)
    assert isinstance(InputError("x"), LeanformersError)
    with pytest.raises(InputError):
        tokenizer.padding_side = "up"
    with pytest.raises(InputError):
        load_tokenizer(str(minilm_path)).save_pretrained(str(minilm_path / "vocab.txt"))


@pytest.mark.parametrize("tokenizer_class", ["PreTrainedTokenizerFast", None, "SomeUnrebuiltTokenizer"])
def test_generic_tokenizer_json_class_matches_reference(tmp_path: Path, tokenizer_class: str | None) -> None:
    """A tokenizer.json of a class this library does not rebuild is used as it stands, under the
    reference's class (``TokenizersBackend``), with the same ids."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    import leanformers
    from parity import transformers

    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    corpus = ["the quick brown fox jumps over the lazy dog", "pack my box with five dozen liquor jugs"] * 20
    backend.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=80, special_tokens=["<unk>"]))
    backend.save(str(tmp_path / "tokenizer.json"))
    config = {} if tokenizer_class is None else {"tokenizer_class": tokenizer_class}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    ours = leanformers.AutoTokenizer.from_pretrained(tmp_path)
    ref = transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert type(ours).__name__ == type(ref).__name__ == "TokenizersBackend"
    assert repr(ours) == repr(ref)
    assert ours(corpus[:2])["input_ids"] == ref(corpus[:2])["input_ids"]
