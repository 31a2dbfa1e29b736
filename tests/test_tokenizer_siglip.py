"""SigLIP's tokenizer against the reference's ``SiglipTokenizer`` (transformers 5.23), which runs the
``sentencepiece`` package in Python.

No real SigLIP tokenizer ships with the test packages, so a small SentencePiece Unigram model with
SigLIP's id layout (<pad> 0, </s> 1, <unk> 2, no <s>) is trained once per session and saved through
the reference's own class; two more folders hold the bare spiece.model and changed options. Both
libraries load each folder and must agree exactly on the 2,000-text corpus (ids, masks, pairs,
padding and truncation), on decoding and on saving. The reference gives no Rust encodings, so only
the returned values are compared.
"""

from __future__ import annotations

import io
import json
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest_tokenizer import assert_same_encoding, call_both
from corpus import texts

from leanformers import registry
from leanformers.errors import InputError, TokenizerError

pytest.importorskip("transformers")
spm = pytest.importorskip("sentencepiece")

CORPUS = texts(2000, seed=7)
FIRSTS, SECONDS = CORPUS[:1000], CORPUS[1000:]
BUILDER = "leanformers.processing.sentencepiece:build_sentencepiece_tokenizer"


@pytest.fixture(scope="module", autouse=True)
def siglip_registered() -> Iterator[bool]:
    """Whether the registry itself knows the class (its owner adds the line); the class tests add
    it for this module's duration when it is not there yet."""
    known = "SiglipTokenizer" in registry.TOKENIZERS
    with pytest.MonkeyPatch.context() as patch:
        if not known:
            patch.setitem(registry.TOKENIZERS, "SiglipTokenizer", BUILDER)
        yield known


def _train(**options: Any) -> bytes:
    lines = [line for text in texts(1500, seed=11) for line in text.splitlines() if line.strip()]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, vocab_size=700, hard_vocab_limit=False, minloglevel=2,
        model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1, **options,
    )
    return model.getvalue()


# Models whose SentencePiece normaliser differs from the usual (nmt_nfkc, spaces collapsed).
NORMALIZER_VARIANTS = {
    "identity": {"normalization_rule_name": "identity"},
    "spaces_kept": {"remove_extra_whitespaces": False},
    "no_dummy_prefix": {"add_dummy_prefix": False},
}


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from transformers import SiglipTokenizer as RefSiglipTokenizer

    root = tmp_path_factory.mktemp("siglip_tokenizers")
    model_file = root / "spiece.model"
    model_file.write_bytes(_train())
    RefSiglipTokenizer(vocab_file=str(model_file)).save_pretrained(root / "saved")
    bare = root / "bare"
    bare.mkdir()
    (bare / "spiece.model").write_bytes(model_file.read_bytes())
    (bare / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "SiglipTokenizer"}))
    RefSiglipTokenizer(
        vocab_file=str(model_file), do_lower_case=False, model_max_length=16, padding_side="left",
    ).save_pretrained(root / "options")
    folders = {"saved": root / "saved", "bare": bare, "options": root / "options"}
    for name, options in NORMALIZER_VARIANTS.items():
        folders[name] = root / name
        folders[name].mkdir()
        (folders[name] / "spiece.model").write_bytes(_train(**options))
        (folders[name] / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "SiglipTokenizer"}))
    return folders


class Pairs:
    def __init__(self, folders: dict[str, Path]) -> None:
        self.folders = folders
        self.cache: dict[str, tuple[Any, Any]] = {}

    def __call__(self, variant: str) -> tuple[Any, Any]:
        from transformers import SiglipTokenizer as RefSiglipTokenizer

        from leanformers.processing.sentencepiece import SiglipTokenizer

        if variant not in self.cache:
            path = self.folders[variant]
            self.cache[variant] = (SiglipTokenizer.from_pretrained(path), RefSiglipTokenizer.from_pretrained(path))
        return self.cache[variant]


@pytest.fixture(scope="module")
def pairs(folders: dict[str, Path]) -> Pairs:
    return Pairs(folders)


VARIANTS = ["saved", "bare", "options"]


def _same(ours: Any, ref: Any, *args: Any, where: str, **options: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the reference warns about texts that already end with </s>
        got, expected = call_both(ours, ref, *args, **options)
    if got is not None:
        # The reference's Python path orders "length" before the mask; the values must agree.
        assert sorted(got.keys()) == sorted(expected.keys()), where
        assert_same_encoding(got, {key: expected[key] for key in got}, where, check_encodings=False)


@pytest.mark.parametrize("variant", VARIANTS)
def test_class_and_settings_match_reference(pairs: Pairs, variant: str) -> None:
    ours, ref = pairs(variant)
    assert type(ours).__name__ == "SiglipTokenizer"
    for name in ("model_max_length", "padding_side", "truncation_side", "special_tokens_map", "all_special_tokens",
                 "all_special_ids", "eos_token_id", "pad_token_id", "unk_token_id", "vocab_size", "do_lower_case"):
        assert getattr(ours, name) == getattr(ref, name), name
    assert len(ours) == len(ref) and ours.get_vocab() == ref.get_vocab()
    assert {i: str(t) for i, t in ours.added_tokens_decoder.items()} == {
        i: str(t) for i, t in ref.added_tokens_decoder.items()
    }


CALLS = [
    {},
    {"padding": "max_length", "truncation": True},
    {"padding": "max_length"},
    {"padding": True, "truncation": True, "max_length": 40},
    {"truncation": True, "max_length": 9},
    {"add_special_tokens": False},
    {"padding": "longest", "truncation": True, "pad_to_multiple_of": 8, "return_length": True},
]
CASES = [("saved", options) for options in CALLS] + [
    (variant, options) for variant in ("bare", "options") for options in CALLS[:2]
]


@pytest.mark.parametrize(("variant", "options"), CASES, ids=[f"{v}-{i}" for i, (v, _) in enumerate(CASES)])
def test_corpus_parity(pairs: Pairs, variant: str, options: dict) -> None:
    ours, ref = pairs(variant)
    _same(ours, ref, CORPUS, where=f"{variant} {options}", **options)


# Pairs are compared untruncated: the reference's Python truncation of pairs shares the tokens out
# differently from the Rust one used here (a known difference; SigLIP encodes single texts).
@pytest.mark.parametrize("variant", ["saved", "options"])
@pytest.mark.parametrize("options", [{}, {"padding": "max_length"}, {"padding": True, "pad_to_multiple_of": 4}])
def test_pairs_parity(pairs: Pairs, variant: str, options: dict) -> None:
    ours, ref = pairs(variant)
    _same(ours, ref, FIRSTS, SECONDS, where=f"{variant} pairs {options}", **options)


@pytest.mark.parametrize("variant", sorted(NORMALIZER_VARIANTS))
def test_other_sentencepiece_normalisers(pairs: Pairs, variant: str) -> None:
    """The model's own normaliser settings are followed. SentencePiece and the Rust Unigram model
    can break a tie between equally scored segmentations differently; in this corpus only a long
    run of one letter has one, so texts with such runs are left out (and counted)."""
    ours, ref = pairs(variant)
    runs = [text for text in CORPUS if any(char * 20 in text for char in set(text))]
    assert len(runs) <= 5
    plain = [text for text in CORPUS if text not in runs]
    _same(ours, ref, plain, where=variant)
    _same(ours, ref, plain, where=variant, padding="max_length", truncation=True)
    ids = ref(plain)["input_ids"]
    assert ours.batch_decode(ids) == ref.batch_decode(ids)
    assert ours.batch_decode(ids, skip_special_tokens=True) == ref.batch_decode(ids, skip_special_tokens=True)


def test_eos_is_not_doubled_and_texts_are_canonical(pairs: Pairs) -> None:
    """A text whose tokens already end with </s> gets no second one; punctuation and case go."""
    ours, ref = pairs("saved")
    eos = ours.eos_token_id
    cases = ["", "</s>", "hello </s>", "hello </s> !!! ", "hello</s><unk>", "a </s> b", "</s> </s>", "x\u2581y",
             "Hello, World!", "HELLO   world\t\n", "<pad> <s>", "\u2581", "!!!"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for text in cases:
            assert ours(text)["input_ids"] == ref(text)["input_ids"], text
            assert ours(text, "</s> b")["input_ids"] == ref(text, "</s> b")["input_ids"], text
        # Truncation that ends right after a </s> of the text adds none either.
        for max_length in range(1, 9):
            options = {"truncation": True, "max_length": max_length}
            text = "a photo </s> of </s>, a cat"
            assert ours(text, **options)["input_ids"] == ref(text, **options)["input_ids"], max_length
    assert ours("hello </s> !!!")["input_ids"].count(eos) == 1
    assert ours("Hello, World!")["input_ids"] == ours("hello world")["input_ids"]


@pytest.mark.parametrize("variant", ["saved", "options"])
def test_single_texts_tensors_and_tokens(pairs: Pairs, variant: str) -> None:
    ours, ref = pairs(variant)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for text in CORPUS[:300]:
            assert ours.encode(text) == ref.encode(text)
            ids = ours(text, add_special_tokens=False)["input_ids"]
            if ours.unk_token_id not in ids:  # the reference shows an unknown stretch as its text
                assert ours.tokenize(text) == ref.tokenize(text)
        got = ours(CORPUS[:50], padding="max_length", truncation=True, return_tensors="pt")
        expected = ref(CORPUS[:50], padding="max_length", truncation=True, return_tensors="pt")
    for key in expected:
        assert got[key].tolist() == expected[key].tolist() and got[key].dtype == expected[key].dtype, key


@pytest.mark.parametrize("variant", VARIANTS)
def test_decode_matches_reference(pairs: Pairs, variant: str) -> None:
    ours, ref = pairs(variant)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ids = ref(CORPUS)["input_ids"]
        pair_ids = ref(FIRSTS[:300], SECONDS[:300], padding=True, truncation=True)["input_ids"]
    for rows in (ids, pair_ids, [[0, 5, 0, 7], [2, 2, 9, 1, 1], [3, 3, 3]]):
        for skip in (False, True):
            for clean_up in (None, True):
                options = {"skip_special_tokens": skip, "clean_up_tokenization_spaces": clean_up}
                assert ours.batch_decode(rows, **options) == ref.batch_decode(rows, **options)
    for row in ids[:300]:
        assert ours.decode(row) == ref.decode(row)
        assert ours.convert_ids_to_tokens(row) == ref.convert_ids_to_tokens(row)
        tokens = ref.convert_ids_to_tokens(row)
        assert ours.convert_tokens_to_string(tokens) == ref.convert_tokens_to_string(tokens)
    with pytest.raises(InputError, match="not in the vocabulary"):
        ours.decode([5, len(ours) + 10])


@pytest.mark.parametrize("variant", VARIANTS)
def test_save_reloads_in_both_libraries(pairs: Pairs, variant: str, tmp_path: Path) -> None:
    from transformers import SiglipTokenizer as RefSiglipTokenizer

    from leanformers.processing.sentencepiece import SiglipTokenizer

    ours, ref = pairs(variant)
    ours.save_pretrained(tmp_path / "ours")
    ref.save_pretrained(tmp_path / "ref")
    assert sorted(p.name for p in (tmp_path / "ours").iterdir()) == sorted(p.name for p in (tmp_path / "ref").iterdir())
    assert (tmp_path / "ours" / "spiece.model").read_bytes() == (tmp_path / "ref" / "spiece.model").read_bytes()
    ours_config = json.loads((tmp_path / "ours" / "tokenizer_config.json").read_text())
    ref_config = json.loads((tmp_path / "ref" / "tokenizer_config.json").read_text())
    # Where the loading came from, and a null the reference adds when it saves a loaded tokenizer.
    for key in ("is_local", "local_files_only", "additional_special_tokens"):
        ours_config.pop(key, None), ref_config.pop(key, None)
    assert ours_config == ref_config
    reloaded = SiglipTokenizer.from_pretrained(tmp_path / "ours")
    ref_reloaded = RefSiglipTokenizer.from_pretrained(tmp_path / "ours")
    _same(reloaded, ref_reloaded, CORPUS, where=f"{variant} reloaded", padding="max_length", truncation=True)


def test_whitespace_class_is_pythons() -> None:
    from leanformers.processing import sentencepiece

    expected = "".join(char for char in map(chr, range(sys.maxunicode + 1)) if char.isspace())
    assert sentencepiece._PYTHON_WHITESPACE == expected


def test_bad_files_raise_tokenizer_error(folders: dict[str, Path], tmp_path: Path) -> None:
    from leanformers.processing.sentencepiece import SiglipTokenizer

    config = json.dumps({"tokenizer_class": "SiglipTokenizer"})
    model = (folders["bare"] / "spiece.model").read_bytes()
    cases = {
        "missing": ({}, "no spiece.model"),
        "truncated": ({"spiece.model": model[: len(model) // 2]}, "not a readable SentencePiece model"),
        "garbage": ({"spiece.model": b"\xff" * 64}, "not a readable SentencePiece model"),
    }
    for name, (files, message) in cases.items():
        folder = tmp_path / name
        folder.mkdir()
        (folder / "tokenizer_config.json").write_text(config)
        for file, data in files.items():
            (folder / file).write_bytes(data)
        with pytest.raises(TokenizerError, match=message):
            SiglipTokenizer.from_pretrained(folder)


def test_auto_tokenizer_picks_siglip(siglip_registered: bool, folders: dict[str, Path], tmp_path: Path) -> None:
    if not siglip_registered or registry.DEFAULT_TOKENIZER.get("siglip") != "SiglipTokenizer":
        pytest.skip("the registry has no SiglipTokenizer entries yet")
    from transformers import AutoTokenizer as RefAutoTokenizer

    from leanformers import AutoTokenizer

    # A checkpoint naming no class: its config.json model_type decides.
    (tmp_path / "spiece.model").write_bytes((folders["bare"] / "spiece.model").read_bytes())
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "siglip"}))
    for path in (folders["saved"], tmp_path):
        ours, ref = AutoTokenizer.from_pretrained(path), RefAutoTokenizer.from_pretrained(path)
        assert type(ours).__name__ == type(ref).__name__ == "SiglipTokenizer"
        _same(ours, ref, CORPUS[:300], where=str(path), padding="max_length", truncation=True)
