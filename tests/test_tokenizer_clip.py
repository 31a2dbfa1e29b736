"""CLIP's tokenizer against the reference's ``CLIPTokenizer`` (transformers 5.23).

No real CLIP tokenizer ships with the test packages, so a CLIP-style byte-level BPE (``</w>`` word
ends, CLIP's clean-up and split) is trained once per session with the ``tokenizers`` library and
saved through the reference's own class; the same vocabulary is also written as vocab.json +
merges.txt, and a third folder changes the options a checkpoint may set (pad token, lengths, sides).
Both libraries load each folder and must agree exactly on the 2,000-text corpus (ids, masks,
offsets, overflow), on pairs, padding and truncation, on decoding and on saving.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest_tokenizer import assert_same_encoding, call_both
from corpus import texts

from leanformers import registry
from leanformers.errors import TokenizerError

pytest.importorskip("transformers")

CORPUS = texts(2000, seed=7)
FIRSTS, SECONDS = CORPUS[:1000], CORPUS[1000:]
SPECIALS = ["<|startoftext|>", "<|endoftext|>"]
# CLIP's own split, used only to train the test vocabulary.
_SPLIT = r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"
# The registry lines this tokenizer needs (added by the registry's owner; the class tests add them
# for their own duration when they are not there yet).
REGISTRY_LINES = {"CLIPTokenizer": "leanformers.processing.bpe:build_bpe_tokenizer"}


@pytest.fixture(scope="module", autouse=True)
def clip_registered() -> Iterator[bool]:
    """Whether the registry itself knows the class; the class tests run either way."""
    known = "CLIPTokenizer" in registry.TOKENIZERS
    with pytest.MonkeyPatch.context() as patch:
        for name, builder in REGISTRY_LINES.items():
            if name not in registry.TOKENIZERS:
                patch.setitem(registry.TOKENIZERS, name, builder)
        yield known


def _train() -> tuple[dict[str, int], list[tuple[str, str]]]:
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(end_of_word_suffix="</w>", continuing_subword_prefix=""))
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_SPLIT), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    # The byte alphabet without its "</w>" forms: rare last characters of words become the unknown token.
    trainer = trainers.BpeTrainer(
        vocab_size=1200, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        end_of_word_suffix="</w>", show_progress=False,
    )
    tokenizer.train_from_iterator(texts(1500, seed=11), trainer)
    model = json.loads(tokenizer.to_str())["model"]
    merges = [tuple(merge) if isinstance(merge, list) else tuple(merge.split(" ")) for merge in model["merges"]]
    return model["vocab"], merges


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from transformers import CLIPTokenizer as RefCLIPTokenizer

    root = tmp_path_factory.mktemp("clip_tokenizers")
    vocab, merges = _train()
    RefCLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77).save_pretrained(root / "json")
    files = root / "vocab_files"
    files.mkdir()
    (files / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (files / "merges.txt").write_text(
        "#version: 0.2\n" + "".join(f"{left} {right}\n" for left, right in merges), encoding="utf-8"
    )
    # As openai/clip-vit-base-patch32 has it.
    config = {"tokenizer_class": "CLIPTokenizerFast", "model_max_length": 77, "do_lower_case": True,
              "errors": "replace", "unk_token": "<|endoftext|>", "bos_token": "<|startoftext|>",
              "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>"}
    (files / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    RefCLIPTokenizer(
        vocab=vocab, merges=merges, model_max_length=20, pad_token="!", padding_side="left", truncation_side="left",
    ).save_pretrained(root / "options")
    return {"json": root / "json", "vocab_files": root / "vocab_files", "options": root / "options"}


class Pairs:
    def __init__(self, folders: dict[str, Path]) -> None:
        self.folders = folders
        self.cache: dict[str, tuple[Any, Any]] = {}

    def __call__(self, variant: str) -> tuple[Any, Any]:
        from transformers import CLIPTokenizer as RefCLIPTokenizer

        from leanformers.processing.bpe import CLIPTokenizer

        if variant not in self.cache:
            path = self.folders[variant]
            self.cache[variant] = (CLIPTokenizer.from_pretrained(path), RefCLIPTokenizer.from_pretrained(path))
        return self.cache[variant]


@pytest.fixture(scope="module")
def pairs(folders: dict[str, Path]) -> Pairs:
    return Pairs(folders)


VARIANTS = ["json", "vocab_files", "options"]


def _same(ours: Any, ref: Any, *args: Any, where: str, **options: Any) -> None:
    got, expected = call_both(ours, ref, *args, **options)
    if got is not None:
        assert_same_encoding(got, expected, where)


@pytest.mark.parametrize("variant", VARIANTS)
def test_class_and_settings_match_reference(pairs: Pairs, variant: str) -> None:
    ours, ref = pairs(variant)
    assert type(ours).__name__ == "CLIPTokenizer" and ours._backend.model.end_of_word_suffix == "</w>"
    for name in ("model_max_length", "padding_side", "truncation_side", "special_tokens_map", "all_special_tokens",
                 "all_special_ids", "bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id", "vocab_size",
                 "model_input_names"):
        assert getattr(ours, name) == getattr(ref, name), name
    assert len(ours) == len(ref) and ours.get_vocab() == ref.get_vocab()
    for which in ("normalizer", "pre_tokenizer", "post_processor", "decoder"):
        assert repr(getattr(ours.backend_tokenizer, which)) == repr(getattr(ref.backend_tokenizer, which)), which


# Every call pattern on the tokenizer.json folder; the two that matter most on the others. Padding
# to the longest text is checked on truncated calls: a few corpus texts are thousands of tokens.
CALLS = [
    {},
    {"padding": "max_length", "truncation": True},
    {"padding": True, "truncation": True},
    {"padding": "max_length", "max_length": 64, "truncation": True},
    {"truncation": True, "max_length": 9, "return_overflowing_tokens": True, "stride": 2},
    {"add_special_tokens": False, "return_offsets_mapping": True, "return_special_tokens_mask": True},
    {"padding": "longest", "truncation": True, "pad_to_multiple_of": 8, "return_length": True},
]
CASES = [("json", options) for options in CALLS] + [
    (variant, options) for variant in ("vocab_files", "options") for options in CALLS[:3]
]


@pytest.mark.parametrize(("variant", "options"), CASES, ids=[f"{v}-{i}" for i, (v, _) in enumerate(CASES)])
def test_corpus_parity(pairs: Pairs, variant: str, options: dict) -> None:
    ours, ref = pairs(variant)
    _same(ours, ref, CORPUS, where=f"{variant} {options}", **options)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("options", [{}, {"padding": "max_length", "truncation": True},
                                     {"truncation": "only_second", "max_length": 30},
                                     {"truncation": "longest_first", "max_length": 25, "padding": True}])
def test_pairs_parity(pairs: Pairs, variant: str, options: dict) -> None:
    ours, ref = pairs(variant)
    _same(ours, ref, FIRSTS, SECONDS, where=f"{variant} pairs {options}", **options)


@pytest.mark.parametrize("variant", ["json", "options"])
def test_single_texts_tensors_and_helpers(pairs: Pairs, variant: str) -> None:
    ours, ref = pairs(variant)
    for text in CORPUS[:200]:
        assert ours.encode(text) == ref.encode(text)
        assert ours.tokenize(text) == ref.tokenize(text)
    got = ours(CORPUS[:50], padding="max_length", truncation=True, return_tensors="pt")
    expected = ref(CORPUS[:50], padding="max_length", truncation=True, return_tensors="pt")
    for key in expected:
        assert got[key].tolist() == expected[key].tolist() and got[key].dtype == expected[key].dtype, key
    ids = ref("a photo of a cat")["input_ids"]
    assert ours.get_special_tokens_mask(ids, already_has_special_tokens=True) == ref.get_special_tokens_mask(
        ids, already_has_special_tokens=True
    )
    assert [ours.num_special_tokens_to_add(pair) for pair in (False, True)] == [2, 4]
    assert ours.num_special_tokens_to_add(True) == ref.num_special_tokens_to_add(True)


def test_clean_up_lower_case_and_framing(pairs: Pairs) -> None:
    """What makes the pipeline CLIP's: lower case, NFC, whitespace dropped between words, the
    ``</w>`` ends, the bos/eos frame and the unknown token for what the vocabulary lacks."""
    ours, ref = pairs("json")
    encoded = ours("A  Photo\tof\u00a0e\u0301  CATS!")
    tokens = ours.convert_ids_to_tokens(encoded["input_ids"])
    assert tokens[0] == "<|startoftext|>" and tokens[-1] == "<|endoftext|>"
    assert "".join(tokens[1:-1]).replace("</w>", " ").split() == ["a", "photo", "of", "Ã©", "cats", "!"]
    assert encoded["input_ids"] == ref("A  Photo\tof\u00a0e\u0301  CATS!")["input_ids"]
    assert ours("A photo")["input_ids"] == ours("a    PHOTO")["input_ids"]
    unknown = [text for text in CORPUS if ours.unk_token_id in ours(text, add_special_tokens=False)["input_ids"]]
    assert unknown, "the corpus should reach the unknown token"


@pytest.mark.parametrize("variant", VARIANTS)
def test_decode_matches_reference(pairs: Pairs, variant: str) -> None:
    ours, ref = pairs(variant)
    ids = ref(CORPUS)["input_ids"]
    pair_ids = ref(FIRSTS[:300], SECONDS[:300], padding=True, truncation=True)["input_ids"]
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
        assert ours.convert_tokens_to_string(ours.convert_ids_to_tokens(row)) == ref.convert_tokens_to_string(
            ref.convert_ids_to_tokens(row)
        )
    assert ours.decode(ref("A Photo, of cats")["input_ids"], skip_special_tokens=True) == "a photo , of cats"


def test_forced_clean_up_after_word_ends(pairs: Pairs) -> None:
    """The end-of-word marks become spaces before the (forced) clean-up, as in the reference."""
    from transformers import CLIPTokenizer as RefCLIPTokenizer

    from leanformers.processing.bpe import CLIPTokenizer

    path = pairs.folders["json"]
    option = {"clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output": True}
    ours, ref = CLIPTokenizer.from_pretrained(path, **option), RefCLIPTokenizer.from_pretrained(path, **option)
    ids = ref("it's a cat . isn't it ?")["input_ids"]
    expected = ref.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=True)
    assert ours.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=True) == expected
    assert expected == "it's a cat. isn 't it?"  # the clean-up ran (" ." and " ?" joined)


def test_vocab_files_give_the_tokenizer_json_ids(pairs: Pairs) -> None:
    from_json, _ = pairs("json")
    from_files, _ = pairs("vocab_files")
    assert from_files(CORPUS)["input_ids"] == from_json(CORPUS)["input_ids"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_save_reloads_in_both_libraries(pairs: Pairs, variant: str, tmp_path: Path) -> None:
    from transformers import CLIPTokenizer as RefCLIPTokenizer

    from leanformers.processing.bpe import CLIPTokenizer

    path = pairs.folders[variant]
    ours, ref = CLIPTokenizer.from_pretrained(path), RefCLIPTokenizer.from_pretrained(path)
    ours.save_pretrained(tmp_path / "ours")
    ref.save_pretrained(tmp_path / "ref")
    assert sorted(p.name for p in (tmp_path / "ours").iterdir()) == sorted(p.name for p in (tmp_path / "ref").iterdir())
    for name in ("tokenizer_config.json", "tokenizer.json"):
        assert json.loads((tmp_path / "ours" / name).read_text()) == json.loads((tmp_path / "ref" / name).read_text())
    reloaded, ref_reloaded = CLIPTokenizer.from_pretrained(tmp_path / "ours"), RefCLIPTokenizer.from_pretrained(
        tmp_path / "ours"
    )
    _same(reloaded, ref_reloaded, FIRSTS[:300], SECONDS[:300], where=f"{variant} reloaded", padding=True)
    assert reloaded(CORPUS)["input_ids"] == ours(CORPUS)["input_ids"]


def test_bad_files_raise_tokenizer_error(folders: dict[str, Path], tmp_path: Path) -> None:
    from leanformers.processing.bpe import CLIPTokenizer

    source = folders["vocab_files"]
    vocab = json.loads((source / "vocab.json").read_text())
    merges = (source / "merges.txt").read_text()
    config = (source / "tokenizer_config.json").read_text()

    def folder(name: str, files: dict[str, str]) -> Path:
        target = tmp_path / name
        target.mkdir()
        for file, text in {"tokenizer_config.json": config, **files}.items():
            (target / file).write_text(text, encoding="utf-8")
        return target

    cases = {
        "no_files": ({}, "neither"),
        "no_merges": ({"vocab.json": json.dumps(vocab)}, "merges.txt"),
        "bad_json": ({"vocab.json": "{not json", "merges.txt": merges}, "vocab.json"),
        "bad_ids": ({"vocab.json": json.dumps({"a": "zero"}), "merges.txt": merges}, "integer ids"),
        "bad_merge_line": ({"vocab.json": json.dumps(vocab), "merges.txt": "a b c\n"}, "line 1"),
        "foreign_merge": ({"vocab.json": json.dumps(vocab), "merges.txt": "zz\u2603 q\n"}, "not in the vocabulary"),
        "unigram_json": ({"tokenizer.json": json.dumps({"model": {"type": "Unigram", "vocab": [["a", 0.0]]}})},
                         "BPE model"),
    }
    for name, (files, message) in cases.items():
        with pytest.raises(TokenizerError, match=message):
            CLIPTokenizer.from_pretrained(folder(name, files))


def test_auto_tokenizer_picks_clip(clip_registered: bool, folders: dict[str, Path]) -> None:
    if not clip_registered:
        pytest.skip("registry.TOKENIZERS has no CLIPTokenizer entry yet")
    from transformers import AutoTokenizer as RefAutoTokenizer

    from leanformers import AutoTokenizer

    for variant in VARIANTS:
        ours, ref = AutoTokenizer.from_pretrained(folders[variant]), RefAutoTokenizer.from_pretrained(folders[variant])
        assert type(ours).__name__ == type(ref).__name__ == "CLIPTokenizer"
        assert ours(CORPUS[:200], padding="max_length", truncation=True)["input_ids"] == ref(
            CORPUS[:200], padding="max_length", truncation=True
        )["input_ids"]
