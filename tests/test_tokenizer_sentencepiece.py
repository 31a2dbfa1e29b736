"""XLM-RoBERTa, CamemBERT and DeBERTa-v2/v3 tokenizers against the reference (transformers 5.23).

Both libraries load the same folders: a real XLM-R Unigram tokenizer.json (multilingual-e5-small's),
SentencePiece models trained here (Unigram and BPE) as the only tokenizer file, and tokenizer.json
folders the reference saved from those. Ids must be exactly equal on the shared 2,000-text corpus;
offsets, word ids, pairs, truncation with stride and overflow, and decoding on a subset.
"""

from __future__ import annotations

import io
import json
import os
import random
from pathlib import Path
from typing import Any

import pytest

from conftest_tokenizer import assert_same_encoding, call_both
from corpus import texts
from leanformers import AutoTokenizer as LeanAutoTokenizer
from leanformers.errors import TokenizerError
from leanformers.processing.sentencepiece import read_sentencepiece_model
from leanformers.processing.tokenizer import load_tokenizer

transformers = pytest.importorskip("transformers")
spm = pytest.importorskip("sentencepiece")

TEXTS = texts(2000, 0)
SUBSET = TEXTS[::10]
# Pairs of short texts: with overflow, a pair's windows multiply (every window of one text with
# every window of the other).
SHORT = [text for text in SUBSET if len(text) < 1000]
PAIRS = list(zip(SHORT[::2], SHORT[1::2]))

E5_CONFIG = {
    "added_tokens_decoder": {
        str(index): {"content": token, "lstrip": token == "<mask>", "normalized": False, "rstrip": False,
                     "single_word": False, "special": True}
        for index, token in ((0, "<s>"), (1, "<pad>"), (2, "</s>"), (3, "<unk>"), (250001, "<mask>"))
    },
    "bos_token": "<s>", "clean_up_tokenization_spaces": True, "cls_token": "<s>", "eos_token": "</s>",
    "mask_token": "<mask>", "model_max_length": 512, "pad_token": "<pad>", "sep_token": "</s>",
    "tokenizer_class": "XLMRobertaTokenizer", "unk_token": "<unk>",
}
DEBERTA_IDS = dict(
    pad_id=0, bos_id=1, eos_id=2, unk_id=3, pad_piece="[PAD]", bos_piece="[CLS]", eos_piece="[SEP]", unk_piece="[UNK]"
)
XLMR, CAMEMBERT, DEBERTA = "XLMRobertaTokenizer", "CamembertTokenizer", "DebertaV2Tokenizer"
NOTUSED = ["<s>NOTUSED", "</s>NOTUSED", "<unk>NOTUSED"]  # camembert-base's saved extra tokens
# Folders with a SentencePiece model as their only tokenizer file:
# (model to train, file name, tokenizer_config.json or None, config.json or None).
SPM_VARIANTS: dict[str, tuple[str, str, dict | None, dict | None]] = {
    "xlmr_spm": ("unigram", "sentencepiece.bpe.model", {"tokenizer_class": XLMR, "model_max_length": 512}, None),
    "xlmr_spm_bpe_model_type": ("bpe", "sentencepiece.bpe.model", None, {"model_type": "xlm-roberta"}),
    "xlmr_spm_no_prefix": (
        "unigram", "sentencepiece.bpe.model", {"tokenizer_class": XLMR, "add_prefix_space": False}, None
    ),
    "camembert_spm": (
        "unigram", "sentencepiece.bpe.model", {"tokenizer_class": CAMEMBERT, "additional_special_tokens": NOTUSED}, None
    ),
    "camembert_spm_model_type": ("unigram", "sentencepiece.bpe.model", None, {"model_type": "camembert"}),
    "deberta_spm": (
        "deberta_unigram", "spm.model",
        {"tokenizer_class": DEBERTA, "do_lower_case": False, "split_by_punct": False, "vocab_type": "spm",
         "model_max_length": 512},
        None,
    ),
    "deberta_spm_lower_punct": (
        "deberta_bpe", "spm.model",
        {"tokenizer_class": DEBERTA, "do_lower_case": True, "split_by_punct": True, "add_prefix_space": False},
        None,
    ),
    "deberta_spm_model_type": ("deberta_unigram", "spm.model", None, {"model_type": "deberta-v2"}),
}
# tokenizer.json folders the reference saves from SentencePiece folders (optionally with padding and
# truncation baked into tokenizer.json).
SAVED_VARIANTS = {"camembert_json": ("camembert_spm", False), "deberta_json_baked": ("deberta_spm", True)}
VARIANTS = ["e5", "e5_model_type", *SPM_VARIANTS, *SAVED_VARIANTS]
DETAIL_VARIANTS = ["e5", "camembert_spm", "deberta_spm", "deberta_spm_lower_punct", "xlmr_spm_no_prefix"]

CALL_OPTIONS = [
    {"return_offsets_mapping": True, "return_special_tokens_mask": True, "return_token_type_ids": True,
     "return_length": True},
    {"truncation": True, "max_length": 24, "stride": 6, "return_overflowing_tokens": True, "padding": True,
     "return_offsets_mapping": True, "return_special_tokens_mask": True},
    {"truncation": "only_second", "max_length": 40, "stride": 4, "return_overflowing_tokens": True},
    {"padding": "max_length", "max_length": 48, "truncation": True, "padding_side": "left",
     "return_token_type_ids": True},
    {"add_special_tokens": False, "padding": True, "return_offsets_mapping": True},
]


def _train(kind: str) -> bytes:
    """A small SentencePiece model trained on part of the corpus."""
    lines = [line for text in TEXTS[:1500] for line in text.splitlines() if line.strip()]
    options: dict[str, Any] = {"model_type": "bpe" if kind.endswith("bpe") else "unigram"}
    if kind.startswith("deberta"):
        options.update(DEBERTA_IDS)
        if kind == "deberta_unigram":
            options["user_defined_symbols"] = ["[MASK]"]  # as a user-defined piece, not a control one
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, vocab_size=700, hard_vocab_limit=False, minloglevel=2,
        **options,
    )
    return model.getvalue()


@pytest.fixture(scope="session")
def spm_models() -> dict[str, bytes]:
    return {kind: _train(kind) for kind in ("unigram", "bpe", "deberta_unigram", "deberta_bpe")}


def _write(folder: Path, files: dict[str, Any]) -> Path:
    folder.mkdir(parents=True)
    for name, content in files.items():
        if content is not None:
            target = folder / name
            target.write_bytes(content) if isinstance(content, bytes) else target.write_text(json.dumps(content))
    return folder


@pytest.fixture(scope="session")
def folders(
    tmp_path_factory: pytest.TempPathFactory, e5_tokenizer_file: Path, spm_models: dict[str, bytes]
) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sentencepiece")
    made = {}
    e5_configs = (
        ("e5", "tokenizer_config.json", E5_CONFIG), ("e5_model_type", "config.json", {"model_type": "xlm-roberta"})
    )
    for name, config_file, config in e5_configs:
        made[name] = _write(root / name, {config_file: config})
        (made[name] / "tokenizer.json").symlink_to(e5_tokenizer_file)
    for name, (kind, filename, tokenizer_config, config) in SPM_VARIANTS.items():
        files = {filename: spm_models[kind], "tokenizer_config.json": tokenizer_config, "config.json": config}
        made[name] = _write(root / name, files)
    for name, (origin, baked) in SAVED_VARIANTS.items():
        transformers.AutoTokenizer.from_pretrained(made[origin]).save_pretrained(root / name)
        made[name] = root / name
        if baked:
            path = made[name] / "tokenizer.json"
            data = json.loads(path.read_text())
            data["truncation"] = {"direction": "Left", "max_length": 20, "strategy": "OnlySecond", "stride": 3}
            data["padding"] = {"strategy": {"Fixed": 30}, "direction": "Left", "pad_to_multiple_of": None, "pad_id": 0,
                               "pad_type_id": 0, "pad_token": "[PAD]"}
            path.write_text(json.dumps(data))
    return made


_loaded: dict[str, tuple[Any, Any]] = {}


@pytest.fixture
def pair(folders: dict[str, Path], request: pytest.FixtureRequest) -> tuple[Any, Any]:
    """(ours, reference) for the variant the test is parametrized with, loaded once per session."""
    variant = request.node.callspec.params["variant"]
    if variant not in _loaded:
        folder = folders[variant]
        _loaded[variant] = (load_tokenizer(folder), transformers.AutoTokenizer.from_pretrained(folder))
    return _loaded[variant]


def _added(tokenizer: Any) -> dict[int, tuple]:
    return {index: (token.content, token.lstrip, token.rstrip, token.single_word, token.normalized, token.special)
            for index, token in tokenizer.added_tokens_decoder.items()}


@pytest.mark.parametrize("variant", VARIANTS)
def test_ids_match_reference(pair: tuple[Any, Any], variant: str) -> None:
    ours, ref = pair
    assert type(ours).__name__ == type(ref).__name__ == ours.class_name
    assert repr(ours) == repr(ref)
    attributes = (
        "vocab_size", "all_special_tokens", "all_special_ids", "extra_special_tokens", "model_input_names",
        "model_max_length", "padding_side", "truncation_side", "clean_up_tokenization_spaces",
    )
    for attribute in attributes:
        assert getattr(ours, attribute) == getattr(ref, attribute), attribute
    assert len(ours) == len(ref) and _added(ours) == _added(ref)
    expected = ref(TEXTS)
    got = ours(TEXTS)
    assert list(got.keys()) == list(expected.keys())
    mismatched = [i for i, (a, b) in enumerate(zip(got["input_ids"], expected["input_ids"])) if a != b]
    assert not mismatched, f"{len(mismatched)} texts differ, first {TEXTS[mismatched[0]][:80]!r}"
    assert dict(got) == dict(expected)


@pytest.mark.parametrize("options", CALL_OPTIONS, ids=lambda options: "-".join(f"{k}={v}" for k, v in options.items()))
@pytest.mark.parametrize("variant", DETAIL_VARIANTS)
def test_offsets_pairs_truncation_match_reference(pair: tuple[Any, Any], variant: str, options: dict) -> None:
    ours, ref = pair
    for inputs in ((SUBSET,), ([a for a, _ in PAIRS], [b for _, b in PAIRS]), PAIRS[3]):
        got, expected = call_both(ours, ref, *inputs, **options)
        if got is not None:  # else the reference refused (only_second without pairs) and so did ours
            assert_same_encoding(got, expected, f"{variant} {options}")


@pytest.mark.parametrize(
    "variant, frame, second_type",
    [("e5", ["<s>", "</s>", "</s>", "</s>"], 0), ("camembert_spm", ["<s>", "</s>", "</s>", "</s>"], 0),
     ("deberta_spm", ["[CLS]", "[SEP]", "[SEP]"], 1)],
)
def test_pair_framing(pair: tuple[Any, Any], variant: str, frame: list[str], second_type: int) -> None:
    """<s> A </s></s> B </s> with one token type for XLM-R and CamemBERT; [CLS] A [SEP] B [SEP] with
    the second sequence as type 1 for DeBERTa."""
    ours, _ = pair
    encoding = ours("hello world", "the data", return_token_type_ids=True, return_special_tokens_mask=True)
    tokens = encoding.tokens()
    special = [token for token, flag in zip(tokens, encoding["special_tokens_mask"]) if flag]
    assert special == frame and tokens[0] == frame[0] and tokens[-1] == frame[-1]
    second = encoding.sequence_ids().index(1)
    assert encoding["token_type_ids"] == [0] * second + [second_type] * (len(tokens) - second)


@pytest.mark.parametrize("variant", DETAIL_VARIANTS)
def test_words_and_tensors_match_reference(pair: tuple[Any, Any], variant: str) -> None:
    ours, ref = pair
    words = [text.split() for text in SUBSET[:50]]
    options = {"is_split_into_words": True, "return_offsets_mapping": True, "padding": True}
    assert_same_encoding(ours(words, **options), ref(words, **options), variant)
    got, expected = (tokenizer(SUBSET[:20], padding=True, return_tensors="pt") for tokenizer in (ours, ref))
    assert list(got.keys()) == list(expected.keys())
    assert all(got[key].tolist() == expected[key].tolist() and got[key].dtype == expected[key].dtype for key in got)


@pytest.mark.parametrize("variant", DETAIL_VARIANTS)
def test_decode_and_tokens_match_reference(pair: tuple[Any, Any], variant: str) -> None:
    ours, ref = pair
    ids = ref(SUBSET)["input_ids"]
    for skip in (False, True):
        assert ours.batch_decode(ids, skip_special_tokens=skip) == ref.batch_decode(ids, skip_special_tokens=skip)
        assert [ours.decode(row, skip_special_tokens=skip) for row in ids[:20]] == [
            ref.decode(row, skip_special_tokens=skip) for row in ids[:20]
        ]
    assert [ours.convert_ids_to_tokens(row) for row in ids] == [ref.convert_ids_to_tokens(row) for row in ids]
    assert [ours.tokenize(text) for text in SUBSET] == [ref.tokenize(text) for text in SUBSET]
    tokens = ref.convert_ids_to_tokens(ids[5])
    assert ours.convert_tokens_to_ids(tokens) == ref.convert_tokens_to_ids(tokens)
    assert ours.convert_tokens_to_string(tokens) == ref.convert_tokens_to_string(tokens)


@pytest.mark.parametrize("variant", ["xlmr_spm", "camembert_spm", "deberta_spm", "deberta_json_baked"])
def test_saved_files_match_reference_and_reload(
    pair: tuple[Any, Any], folders: dict[str, Path], variant: str, tmp_path: Path
) -> None:
    ours, ref = pair
    ours.save_pretrained(tmp_path / "ours")
    ref.save_pretrained(tmp_path / "ref")
    assert json.loads((tmp_path / "ours" / "tokenizer_config.json").read_text()) == json.loads(
        (tmp_path / "ref" / "tokenizer_config.json").read_text()
    )
    saved, ref_saved = (json.loads((tmp_path / side / "tokenizer.json").read_text()) for side in ("ours", "ref"))
    # The padding and truncation written are those the checkpoint came with; the reference writes
    # whatever its last call left.
    loaded = json.loads((folders[variant] / "tokenizer.json").read_text()) if variant.endswith("json_baked") else {}
    for key in ("padding", "truncation"):
        assert saved.pop(key) == loaded.get(key)
        ref_saved.pop(key)
    assert saved == ref_saved
    expected = ref(SUBSET)
    for reloaded in (load_tokenizer(tmp_path / "ours"), transformers.AutoTokenizer.from_pretrained(tmp_path / "ours")):
        assert type(reloaded).__name__ == type(ref).__name__
        assert dict(reloaded(SUBSET)) == dict(expected)


@pytest.mark.parametrize("variant", ["deberta_json_baked"])
def test_baked_padding_and_truncation_are_defaults_only(pair: tuple[Any, Any], variant: str) -> None:
    """tokenizer.json's padding/truncation set the defaults (sides, max_length), as in the reference,
    and do not pad or truncate a plain call."""
    ours, ref = pair
    assert (ours.padding_side, ours.truncation_side) == (ref.padding_side, ref.truncation_side) == ("left", "left")
    assert ours.init_kwargs["max_length"] == ref.init_kwargs["max_length"] == 20
    assert len(ours(SUBSET[-1])["input_ids"]) == len(ref(SUBSET[-1])["input_ids"]) > 30


@pytest.mark.parametrize("kind", ["unigram", "bpe", "deberta_unigram", "deberta_bpe"])
def test_reader_matches_sentencepiece(spm_models: dict[str, bytes], kind: str, tmp_path: Path) -> None:
    from sentencepiece import sentencepiece_model_pb2

    path = tmp_path / "m.model"
    path.write_bytes(spm_models[kind])
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(spm_models[kind])
    model = read_sentencepiece_model(path)
    assert model.pieces == [(piece.piece, piece.score, piece.type) for piece in proto.pieces]
    assert model.unk_id == proto.trainer_spec.unk_id
    assert model.precompiled_charsmap == proto.normalizer_spec.precompiled_charsmap
    # Fields written in unusual forms (negative ids, no score, a long piece) read the same.
    proto.trainer_spec.unk_id = -1
    proto.pieces[5].ClearField("score")
    proto.pieces[6].piece = "▁" + "x" * 300
    proto.pieces[7].type = 5
    path.write_bytes(proto.SerializeToString())
    model = read_sentencepiece_model(path)
    assert model.unk_id == -1
    assert model.pieces == [(piece.piece, piece.score, piece.type) for piece in proto.pieces]


def test_camembert_from_a_bpe_model(folders: dict[str, Path], spm_models: dict[str, bytes], tmp_path: Path) -> None:
    """The reference cannot build a CamemBERT tokenizer from a BPE-trained file; here it is the same
    Unigram over the pieces that XLM-R gets from that file, in CamemBERT's id layout."""
    files = {"sentencepiece.bpe.model": spm_models["bpe"], "config.json": {"model_type": "camembert"}}
    _write(tmp_path / "camembert", files)
    camembert = load_tokenizer(tmp_path / "camembert")
    xlmr = load_tokenizer(folders["xlmr_spm_bpe_model_type"])
    assert type(camembert).__name__ == "CamembertTokenizer"
    got, expected = camembert(SUBSET)["input_ids"], xlmr(SUBSET)["input_ids"]
    assert list(map(camembert.convert_ids_to_tokens, got)) == list(map(xlmr.convert_ids_to_tokens, expected))
    ordinary = [(a, b) for row_a, row_b in zip(got, expected) for a, b in zip(row_a, row_b) if b > 3]
    assert ordinary and all(a == b + 3 for a, b in ordinary)  # SentencePiece piece i: XLM-R id i + 1, CamemBERT i + 4


def test_auto_tokenizer_names_the_reference_class(folders: dict[str, Path]) -> None:
    for variant, name in (
        ("xlmr_spm_bpe_model_type", XLMR), ("camembert_spm_model_type", CAMEMBERT), ("deberta_spm_model_type", DEBERTA)
    ):
        assert type(LeanAutoTokenizer.from_pretrained(folders[variant])).__name__ == name


def _corrupt(model: bytes) -> dict[str, bytes]:
    noise = random.Random(0).randbytes(4000)
    return {
        "random": noise, "truncated": model[: len(model) // 2], "empty": b"", "json": b'{"model": {"type": "Unigram"}}',
        "bad_utf8": model.replace("▁".encode(), b"\xff\xfe\xfd", 1),
    }


@pytest.mark.parametrize("damage", ["random", "truncated", "empty", "json", "bad_utf8"])
@pytest.mark.parametrize("class_name, filename", [("XLMRobertaTokenizer", "sentencepiece.bpe.model"),
                                                   ("DebertaV2Tokenizer", "spm.model")])
def test_corrupt_model_file_names_the_file(
    spm_models: dict[str, bytes], tmp_path: Path, damage: str, class_name: str, filename: str
) -> None:
    folder = _write(tmp_path / "bad", {filename: _corrupt(spm_models["unigram"])[damage],
                                       "tokenizer_config.json": {"tokenizer_class": class_name}})
    with pytest.raises(TokenizerError, match=filename):
        load_tokenizer(folder)
    with pytest.raises(TokenizerError, match="not a readable SentencePiece model"):
        read_sentencepiece_model(folder / filename)


def test_missing_and_unusable_files(tmp_path: Path, e5_tokenizer_file: Path) -> None:
    folder = _write(tmp_path / "none", {"tokenizer_config.json": {"tokenizer_class": "CamembertTokenizer"}})
    with pytest.raises(TokenizerError, match="sentencepiece.bpe.model"):
        load_tokenizer(folder)
    bpe_json = {"version": "1.0", "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}
    folder = _write(tmp_path / "bpe", {"tokenizer.json": bpe_json, "config.json": {"model_type": "deberta-v2"}})
    with pytest.raises(TokenizerError, match="no Unigram vocabulary"):
        load_tokenizer(folder)
    with pytest.raises(TokenizerError, match="Cannot read"):
        read_sentencepiece_model(os.fspath(tmp_path / "missing.model"))
