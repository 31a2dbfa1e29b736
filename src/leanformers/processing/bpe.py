"""Byte-level BPE tokenizers (the reference's ``RobertaTokenizer``, ``GPT2Tokenizer``, ``Qwen2Tokenizer`` and
``CLIPTokenizer``) on the shared engine.

As the reference's v5 classes do, the pipeline is rebuilt from the class, not read from the
checkpoint: a tokenizer.json gives the vocabulary, the merges, the padding/truncation defaults and,
except for RoBERTa, the post-processor; its normalizer, pre-tokenizer, decoder and model options
(dropout, unknown token, ...) are replaced by the class's own. Without a tokenizer.json the
vocabulary and merges come from ``vocab.json`` and ``merges.txt``.
"""

from __future__ import annotations

from typing import Any

from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE

from ..errors import ConfigError, TokenizerError
from ..hub import Source, read_json
from .tokenizer import TOKENIZER_FILE, PreTrainedTokenizer, _json_post_processor, _json_settings

VOCAB_FILE = "vocab.json"
MERGES_FILE = "merges.txt"

Merges = list[tuple[str, str]]


class _ByteLevelTokenizer(PreTrainedTokenizer):
    """What the byte-level classes share: option defaults and the backend they are built on."""

    _defaults: dict[str, Any] = {"errors": "replace", "add_prefix_space": False}

    @classmethod
    def _build_backend(cls, vocab: dict[str, int], merges: Merges, options: dict[str, Any]) -> Tokenizer:
        """The pipeline of the class over ``vocab`` and ``merges``; ``options`` are the settled loading options."""
        # Every model option is the class's: a checkpoint's dropout or unknown token is not used.
        backend = Tokenizer(
            BPE(vocab=vocab, merges=merges, dropout=None, continuing_subword_prefix="", end_of_word_suffix="",
                fuse_unk=False)
        )
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=options["add_prefix_space"])
        backend.decoder = decoders.ByteLevel()
        return backend


class RobertaTokenizer(_ByteLevelTokenizer):
    """Byte-level BPE with the ``<s> A </s></s> B </s>`` template (RoBERTa and its descendants).

    A word is encoded differently at the start of a text (no space before it) than elsewhere;
    ``add_prefix_space=True`` (a loading option) treats the first word like the others.
    """

    _defaults = {
        **_ByteLevelTokenizer._defaults, "bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>",
        "cls_token": "<s>", "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>", "trim_offsets": True,
    }

    def _set_post_processor(self, from_json: Any, explicit_bos_eos: bool) -> None:
        # The checkpoint's own post-processor is replaced whatever it was.
        self._backend.post_processor = processors.RobertaProcessing(
            (str(self.sep_token), self.sep_token_id), (str(self.cls_token), self.cls_token_id),
            trim_offsets=self.trim_offsets, add_prefix_space=self.add_prefix_space,
        )


class GPT2Tokenizer(_ByteLevelTokenizer):
    """Byte-level BPE as GPT-2 has it: ``<|endoftext|>`` for the unknown, bos and eos tokens and no
    pad token. tokenizer.json's post-processor is kept; without one, ``add_bos_token`` /
    ``add_eos_token`` say which tokens frame a text."""

    _defaults = {
        **_ByteLevelTokenizer._defaults, "unk_token": "<|endoftext|>", "bos_token": "<|endoftext|>",
        "eos_token": "<|endoftext|>", "pad_token": None,
    }


# What Qwen2's pre-tokenizer splits off before the byte-level mapping: contractions, letter runs
# with one leading non-letter, single digits, punctuation runs, and whitespace.
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


class Qwen2Tokenizer(_ByteLevelTokenizer):
    """Byte-level BPE as Qwen2 / Qwen3 have it: NFC, Qwen's splitting pattern, ``<|endoftext|>`` for
    the unknown, eos and pad tokens and no bos token. tokenizer.json's post-processor is kept;
    without one, ``add_bos_token`` / ``add_eos_token`` say which tokens frame a text."""

    _defaults = {
        "unk_token": "<|endoftext|>", "bos_token": None, "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
        "add_prefix_space": None,
    }

    @classmethod
    def _build_backend(cls, vocab: dict[str, int], merges: Merges, options: dict[str, Any]) -> Tokenizer:
        backend = Tokenizer(
            BPE(vocab=vocab, merges=merges, dropout=None, unk_token=None, continuing_subword_prefix="",
                end_of_word_suffix="", fuse_unk=False, byte_fallback=False)
        )
        backend.normalizer = normalizers.NFC()
        backend.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(_QWEN2_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=bool(options["add_prefix_space"]), use_regex=False),
        ])
        backend.decoder = decoders.ByteLevel()
        return backend


# CLIP's words: its two special tokens, English contractions, letter runs, single digits and
# punctuation runs; what lies between them (whitespace) is dropped.
_CLIP_SPLIT = r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"
# What marks the last piece of a word in CLIP's vocabulary; decoding turns it back into a space.
_END_OF_WORD = "</w>"


class CLIPTokenizer(_ByteLevelTokenizer):
    """Byte-level BPE as CLIP has it: NFC, whitespace runs collapsed, lower case; words (letter runs,
    single digits, punctuation runs, English contractions) whose last piece ends in ``</w>``; each
    text framed as ``<|startoftext|> A <|endoftext|>`` (a pair: ``... A <eos> <eos> B <eos>``), all
    type ids 0. ``<|endoftext|>`` is the unknown, eos and pad token. Decoding turns ``</w>`` into a
    space and strips the text's ends."""

    _defaults = {
        "unk_token": "<|endoftext|>", "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
    }

    @classmethod
    def _build_backend(cls, vocab: dict[str, int], merges: Merges, options: dict[str, Any]) -> Tokenizer:
        try:
            backend = Tokenizer(
                BPE(vocab=vocab, merges=merges, dropout=None, continuing_subword_prefix="",
                    end_of_word_suffix=_END_OF_WORD, fuse_unk=False, unk_token=str(options["unk_token"]))
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"The unknown token {options['unk_token']!r} cannot be used: {exc}") from exc
        backend.normalizer = normalizers.Sequence(
            [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
        )
        # The split keeps only the matches: whitespace between words is dropped, not merged into them.
        backend.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(_CLIP_SPLIT), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ])
        backend.decoder = decoders.ByteLevel()
        return backend

    def _set_post_processor(self, from_json: Any, explicit_bos_eos: bool) -> None:
        # As in the reference, the class's framing whatever the checkpoint or the loading options say.
        self._backend.post_processor = processors.RobertaProcessing(
            (str(self.eos_token), self.eos_token_id), (str(self.bos_token), self.bos_token_id),
            trim_offsets=False, add_prefix_space=False,
        )
        self._single_type_ids_zero = None

    def _finish_decoded(self, text: str) -> str:
        return text.replace(_END_OF_WORD, " ").strip()


_CLASSES: dict[str, type[_ByteLevelTokenizer]] = {
    cls.__name__: cls for cls in (RobertaTokenizer, GPT2Tokenizer, Qwen2Tokenizer, CLIPTokenizer)
}


def _check_vocab(vocab: Any, where: str) -> dict[str, int]:
    if not isinstance(vocab, dict) or not vocab:
        raise TokenizerError(f"{where} must be a non-empty JSON object mapping tokens to ids.")
    for token, index in vocab.items():
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < 2**32:
            raise TokenizerError(f"{where} must map tokens to non-negative integer ids; found {token!r}: {index!r}.")
    return vocab


def _check_merges(merges: list[Any], vocab: dict[str, int], where: str) -> Merges:
    """Merges as pairs, each joining two vocabulary tokens into a third (the Rust library panics
    otherwise). A merge is ``"left right"`` or ``["left", "right"]``."""
    pairs = []
    for number, merge in enumerate(merges, 1):
        pair = merge.split(" ") if type(merge) is str else merge
        if type(pair) not in (list, tuple) or len(pair) != 2 or type(pair[0]) is not str or type(pair[1]) is not str:
            raise TokenizerError(f"{where}: merge {number} is {merge!r}; a merge is 'left right' or ['left', 'right'].")
        left, right = pair
        if left not in vocab or right not in vocab or left + right not in vocab:
            unknown = next(token for token in (left, right, left + right) if token not in vocab)
            raise TokenizerError(
                f"{where}: merge {number} ({left!r} + {right!r}) uses {unknown!r}, which is not in the vocabulary. "
                f"The vocabulary and merges must come from the same tokenizer."
            )
        pairs.append((left, right))
    return pairs


def _json_model(data: dict[str, Any], path: str, class_name: str) -> tuple[dict[str, int], Merges]:
    """The vocabulary and merges of a tokenizer.json's BPE model."""
    model = data.get("model")
    if not isinstance(model, dict) or model.get("type", "BPE") != "BPE" or "merges" not in model:
        kind = model.get("type") if isinstance(model, dict) else None
        raise TokenizerError(
            f"{path!r} must hold a BPE model (vocab and merges) to build a {class_name} from; its model is "
            f"{kind or 'missing or without merges'}. Use the tokenizer.json saved with the model."
        )
    vocab = _check_vocab(model.get("vocab"), f"{path!r} (model.vocab)")
    merges = model["merges"]
    if not isinstance(merges, list):
        raise TokenizerError(f"{path!r}: model.merges must be a list of merges, got {type(merges).__name__}.")
    return vocab, _check_merges(merges, vocab, repr(path))


def _read_merges(path: str) -> Merges:
    """merges.txt as the Rust library reads it: ``left right`` per line, ``#version`` lines skipped."""
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            lines = handle.read().split("\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenizerError(f"Could not read the merges file {path!r}: {exc}") from exc
    if lines and lines[-1] == "":
        lines.pop()
    merges = []
    for number, line in enumerate(lines, 1):
        line = line.removesuffix("\r")
        if line.startswith("#version"):
            continue
        parts = line.split(" ")
        if len(parts) != 2:
            raise TokenizerError(
                f"The merges file {path!r} is malformed at line {number} ({line[:80]!r}): each line must be two "
                f"tokens separated by one space."
            )
        merges.append((parts[0], parts[1]))
    return merges


def _vocab_files(source: Source, class_name: str) -> tuple[dict[str, int], Merges]:
    """The vocabulary and merges of vocab.json and merges.txt."""
    vocab_path = source.resolve(VOCAB_FILE, required=False)
    if vocab_path is None:
        raise TokenizerError(
            f"{source.describe()} has neither {TOKENIZER_FILE} nor {VOCAB_FILE} + {MERGES_FILE}, so its {class_name} "
            f"cannot be built. Add the files saved with the model."
        )
    merges_path = source.resolve(MERGES_FILE, required=False)
    if merges_path is None:
        raise TokenizerError(
            f"{source.describe()} has {VOCAB_FILE} but no {MERGES_FILE} next to it; a {class_name} needs both. Add the "
            f"{MERGES_FILE} saved with the model (or its {TOKENIZER_FILE})."
        )
    vocab = _check_vocab(read_json(vocab_path, VOCAB_FILE, TokenizerError), repr(vocab_path))
    return vocab, _check_merges(_read_merges(merges_path), vocab, f"The merges file {merges_path!r}")


def build_bpe_tokenizer(
    source: Source, class_name: str, init_kwargs: dict[str, Any], tokenizer_json: dict[str, Any] | None = None
) -> _ByteLevelTokenizer:
    """The byte-level BPE tokenizer of a checkpoint, from tokenizer.json (``tokenizer_json``, when the
    loader has parsed it already) or vocab.json + merges.txt, with the loader's settled options."""
    tokenizer_class = _CLASSES[class_name]
    tokenizer_file = source.resolve(TOKENIZER_FILE, required=False)
    post_processor = None
    if tokenizer_file is not None:
        data = tokenizer_json
        if data is None:
            data = read_json(tokenizer_file, TOKENIZER_FILE, TokenizerError)
        vocab, merges = _json_model(data, tokenizer_file, class_name)
        init_kwargs["_json_truncation"], init_kwargs["_json_padding"] = _json_settings(data, tokenizer_file)
        post_processor = _json_post_processor(data, tokenizer_file)
    else:
        vocab, merges = _vocab_files(source, class_name)
    tokenizer_class._settle_options(init_kwargs)
    for key in ("add_prefix_space", "trim_offsets"):
        if not isinstance(init_kwargs.get(key, True), bool) and init_kwargs[key] is not None:
            raise ConfigError(f"{key} of {source.describe()} must be true or false, got {init_kwargs[key]!r}.")
    backend = tokenizer_class._build_backend(vocab, merges, init_kwargs)
    tokenizer = tokenizer_class(backend, class_name=tokenizer_class.__name__, **init_kwargs)
    # The reference's classes all hold this attribute; only those that take the option save it.
    tokenizer.add_prefix_space = init_kwargs.get("add_prefix_space", False)
    if "trim_offsets" in init_kwargs:
        tokenizer.trim_offsets = init_kwargs["trim_offsets"]
    explicit = "add_bos_token" in init_kwargs or "add_eos_token" in init_kwargs
    tokenizer._set_post_processor(post_processor, explicit)
    if tokenizer_class is Qwen2Tokenizer:
        # As the reference's Qwen2 class does last: every special token (re)added as a special added
        # token, which also resets the flags of those already there.
        backend.add_tokens([AddedToken(token, special=True) for token in tokenizer.all_special_tokens])
    return tokenizer


__all__ = ["CLIPTokenizer", "GPT2Tokenizer", "Qwen2Tokenizer", "RobertaTokenizer", "build_bpe_tokenizer"]
