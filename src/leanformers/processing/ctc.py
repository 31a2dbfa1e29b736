"""The character-level CTC tokenizer: the reference's ``Wav2Vec2CTCTokenizer``.

Text is split into characters (spaces become the word delimiter ``|``); decoding reads a CTC
output: runs of the same id collapse into one (``group_tokens``), the pad token is the CTC blank
and is dropped, and the delimiter turns back into a space. ``vocab.json`` holds the characters;
``tokenizer_config.json`` the options. Ids, decoded text, offsets, the printed form and the
saved files follow the reference (transformers v5), including its handling of added tokens: every
multi-character vocabulary entry (``<pad>``, ``<s>``...) is an added token that is never split and
eats the whitespace around it.

It is pure Python (as the reference's is): a per-character vocabulary gains nothing from the
Rust library. Deliberate differences, each where the reference is evidently wrong:

* a ``word_delimiter_token`` other than ``|`` in tokenizer_config.json is used (the reference
  loads it as a special token but keeps splitting words with ``|``);
* ``is_split_into_words=True`` puts the delimiter before every word (the reference's v5 code
  path loses it, gluing the words together);
* ``decode`` of a single id decodes that one token, and ``decode`` of a batch returns a list (the
  reference iterates the characters of the token's string, and fails on a batch);
* a nested multi-lingual vocabulary without ``target_lang`` is refused with a clear error;
* ``save_pretrained`` returns only the files it wrote (the reference also lists an
  ``added_tokens.json`` it did not write).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any, ClassVar

from tokenizers import AddedToken

from ..errors import ConfigError, InputError, TokenizerError
from ..hub import Source, atomic_write
from ..modeling.outputs import ModelOutput
from .tokenizer import (
    LARGE_INTEGER,
    SPECIAL_TOKENS_ATTRIBUTES,
    VERY_LARGE_INTEGER,
    BatchEncoding,
    _added_tokens_to_json,
    _as_token,
    _read_json,
    _to_python,
    clean_up_tokenization,
)

logger = logging.getLogger(__name__)

CLASS_NAME = "Wav2Vec2CTCTokenizer"
VOCAB_FILE = "vocab.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
ADDED_TOKENS_FILE = "added_tokens.json"
# Names of the files the vocabulary comes from; never saved in tokenizer_config.json.
_VOCAB_FILE_KEYS = ("vocab_file", "tokenizer_config_file")

_PADDING = ("longest", "max_length", "do_not_pad")
_TRUNCATION = ("longest_first", "only_first", "only_second", "do_not_truncate")
_NO_PAD, _NO_TRUNCATE = "do_not_pad", "do_not_truncate"


@dataclass(repr=True)
class CTCTokenizerOutput(ModelOutput):
    """``decode(..., output_char_offsets=True / output_word_offsets=True)``: the text and the
    offsets (in CTC frames) of each character and word (lists of them for ``batch_decode``)."""

    text: Any = None
    char_offsets: Any = None
    word_offsets: Any = None


def _strategies(
    tokenizer: CTCTokenizer, padding: Any, truncation: Any, max_length: Any, pad_to_multiple_of: Any, verbose: bool
):
    """(padding strategy, truncation strategy, max_length) with the reference's defaults."""
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 0):
        raise InputError(f"max_length must be a non-negative integer, got {max_length!r}.")
    if pad_to_multiple_of is not None and (
        isinstance(pad_to_multiple_of, bool) or not isinstance(pad_to_multiple_of, int) or pad_to_multiple_of <= 0
    ):
        raise InputError(f"pad_to_multiple_of must be a positive integer, got {pad_to_multiple_of!r}.")
    # As in the reference: max_length alone means "truncate to it".
    if max_length is not None and padding is False and truncation is None:
        truncation = "longest_first"
    if padding is True:
        if verbose and max_length is not None and truncation in (None, False, _NO_TRUNCATE):
            warnings.warn(
                "`max_length` is ignored when `padding`=`True` and there is no truncation strategy. "
                "To pad to max length, use `padding='max_length'`."
            )
        padding = "longest"
    elif padding is False or padding is None:
        padding = _NO_PAD
    else:
        padding = getattr(padding, "value", padding)
        if padding not in _PADDING:
            raise InputError(f"padding={padding!r} is not one of True, False, {', '.join(map(repr, _PADDING))}.")
    if truncation is True:
        truncation = "longest_first"
    elif truncation is False or truncation is None:
        truncation = _NO_TRUNCATE
    else:
        truncation = getattr(truncation, "value", truncation)
        if truncation not in _TRUNCATION:
            raise InputError(
                f"truncation={truncation!r} is not one of True, False, {', '.join(map(repr, _TRUNCATION))}."
            )
    if max_length is None:
        if padding == "max_length":
            if tokenizer.model_max_length > LARGE_INTEGER:
                padding = _NO_PAD
            else:
                max_length = tokenizer.model_max_length
        if truncation != _NO_TRUNCATE:
            if tokenizer.model_max_length > LARGE_INTEGER:
                truncation = _NO_TRUNCATE
            else:
                max_length = tokenizer.model_max_length
    if padding != _NO_PAD and tokenizer.pad_token_id is None:
        raise TokenizerError(
            "Padding was asked for but this tokenizer has no pad token in its vocabulary; set one, e.g. "
            "tokenizer.pad_token = '<pad>'."
        )
    if (
        truncation != _NO_TRUNCATE
        and padding != _NO_PAD
        and pad_to_multiple_of is not None
        and max_length is not None
        and max_length % pad_to_multiple_of != 0
    ):
        raise InputError(
            f"Truncation and padding are both on, but the truncation length ({max_length}) is not a multiple of "
            f"pad_to_multiple_of ({pad_to_multiple_of})."
        )
    return padding, truncation, max_length


class CTCTokenizer:
    """A character vocabulary for CTC models (wav2vec2, HuBERT), behaving like the reference's
    ``Wav2Vec2CTCTokenizer``. Build it with :func:`load_tokenizer` / ``AutoTokenizer``, or from a
    vocabulary: ``CTCTokenizer({"<pad>": 0, ..., "|": 4, "A": 5, ...})`` or ``CTCTokenizer("vocab.json")``.
    """

    vocab_files_names: ClassVar[dict[str, str]] = {
        "vocab_file": VOCAB_FILE,
        "tokenizer_config_file": TOKENIZER_CONFIG_FILE,
    }

    def __init__(
        self,
        vocab: Mapping[str, Any] | str | os.PathLike,
        *,
        class_name: str = CLASS_NAME,
        bos_token: str | AddedToken | None = "<s>",
        eos_token: str | AddedToken | None = "</s>",
        unk_token: str | AddedToken | None = "<unk>",
        pad_token: str | AddedToken | None = "<pad>",
        word_delimiter_token: str | AddedToken | None = "|",
        replace_word_delimiter_char: str = " ",
        do_lower_case: bool = False,
        target_lang: str | None = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(vocab, (str, os.PathLike)):
            path = os.fspath(vocab)
            vocab = _read_json(path, VOCAB_FILE, TokenizerError)
            where = repr(path)
        else:
            where = "the vocabulary given"
        if not isinstance(vocab, Mapping):
            raise TokenizerError(
                f"{where} must be a JSON object mapping characters to ids, got {type(vocab).__name__}."
            )
        object.__setattr__(self, "_special_tokens_map", {})
        self.class_name = class_name
        self.vocab = dict(vocab)
        self._where = where

        kwargs.pop("special_tokens_pattern", None)
        added_tokens_decoder = kwargs.pop("added_tokens_decoder", None) or {}
        model_specific = dict(kwargs.get("model_specific_special_tokens") or {})
        # The loader moves word_delimiter_token into model_specific_special_tokens; it is the one in force.
        if "word_delimiter_token" in model_specific:
            word_delimiter_token = model_specific["word_delimiter_token"]
        if "additional_special_tokens" in kwargs and "extra_special_tokens" not in kwargs:
            kwargs["extra_special_tokens"] = kwargs.pop("additional_special_tokens")
        kwargs.setdefault("backend", "custom")
        init_kwargs = {
            "unk_token": unk_token,
            "bos_token": bos_token,
            "eos_token": eos_token,
            "pad_token": pad_token,
            "do_lower_case": do_lower_case,
            "word_delimiter_token": str(word_delimiter_token) if word_delimiter_token is not None else None,
            "replace_word_delimiter_char": replace_word_delimiter_char,
            "target_lang": target_lang,
            **kwargs,
        }
        self.init_kwargs = copy.deepcopy(init_kwargs)

        self.do_lower_case = do_lower_case
        self.replace_word_delimiter_char = replace_word_delimiter_char
        self.target_lang = target_lang
        self.name_or_path = str(kwargs.pop("name_or_path", ""))
        self.verbose = bool(kwargs.pop("verbose", False))
        self._processor_class = kwargs.pop("processor_class", None)

        special: dict[str, str | AddedToken | None] = dict.fromkeys(SPECIAL_TOKENS_ATTRIBUTES)
        for name, value in (
            ("bos_token", bos_token),
            ("eos_token", eos_token),
            ("unk_token", unk_token),
            ("pad_token", pad_token),
        ):
            if value is not None:
                special[name] = _as_token(value, name)
        self._extra_special_tokens: list[str | AddedToken] = []
        # Named tokens beyond the standard ones, in the reference's order: a dict of
        # extra_special_tokens, then the word delimiter and other *_token options, then the
        # loader's model_specific_special_tokens.
        named: dict[str, Any] = {}
        automatic: dict[str, Any] = {"word_delimiter_token": word_delimiter_token}
        for key in list(kwargs):
            value = kwargs[key]
            if key in SPECIAL_TOKENS_ATTRIBUTES:
                kwargs.pop(key)
                if value is not None:
                    special[key] = _as_token(value, key)
            elif key == "extra_special_tokens":
                kwargs.pop(key)
                if isinstance(value, dict):
                    named.update(value)
                elif isinstance(value, (list, tuple)):
                    self._extra_special_tokens = [_as_token(token, key) for token in value]
                elif value is not None:
                    raise ConfigError(f"extra_special_tokens must be a list or a dict of named tokens, got {value!r}.")
            elif key.endswith("_token") and isinstance(value, (str, AddedToken)):
                automatic[key] = kwargs.pop(key)
        kwargs.pop("model_specific_special_tokens", None)
        named.update(automatic)
        named.update(model_specific)
        for key, value in named.items():
            if value is not None:
                special[key] = _as_token(value, key)
        self._special_tokens_map = special

        max_len = kwargs.pop("model_max_length", kwargs.pop("max_len", None))
        self.model_max_length = max_len if max_len is not None else VERY_LARGE_INTEGER
        self.padding_side = kwargs.pop("padding_side", "right")
        self.truncation_side = kwargs.pop("truncation_side", "right")
        for side in ("padding_side", "truncation_side"):
            if getattr(self, side) not in ("right", "left"):
                raise ConfigError(f"{side} must be 'right' or 'left', got {getattr(self, side)!r}.")
        self.model_input_names = list(kwargs.pop("model_input_names", ["input_ids", "attention_mask"]))
        self.clean_up_tokenization_spaces = bool(kwargs.pop("clean_up_tokenization_spaces", False))
        self.split_special_tokens = bool(kwargs.pop("split_special_tokens", False))
        self.chat_template = kwargs.pop("chat_template", None)
        self.backend = kwargs.pop("backend", "custom")
        self._warned_too_long = False

        self.encoder = self._language_vocab(target_lang)
        self.decoder = {index: token for token, index in self.encoder.items()}

        self._added_tokens_decoder: dict[int, AddedToken] = {}
        for index, token in dict(added_tokens_decoder).items():
            token = _as_token(token, f"added_tokens_decoder[{index}]")
            self._added_tokens_decoder[int(index)] = token if isinstance(token, AddedToken) else AddedToken(token)
        self._added_tokens_encoder = {token.content: index for index, token in self._added_tokens_decoder.items()}
        self._splitter: dict[str, list[str]] | None = None

        # As the reference: special tokens are added tokens; then every multi-character vocabulary
        # entry becomes a non-special added token that is never split and strips the spaces around it.
        self._add_tokens(
            [t for t in self.all_special_tokens if t not in self._added_tokens_encoder], special_tokens=True
        )
        self._mark_multichar_tokens()

    # -- construction helpers -----------------------------------------------------------------

    def _language_vocab(self, target_lang: str | None) -> dict[str, int]:
        nested = bool(self.vocab) and all(isinstance(value, Mapping) for value in self.vocab.values())
        if target_lang is not None:
            if not nested or target_lang not in self.vocab:
                choices = ", ".join(sorted(self.vocab)) if nested else "none: the vocabulary is not multi-lingual"
                raise TokenizerError(f"target_lang={target_lang!r} is not in {self._where} (languages: {choices}).")
            encoder = self.vocab[target_lang]
        elif nested:
            langs = sorted(self.vocab)
            raise TokenizerError(
                f"{self._where} is a multi-lingual vocabulary ({len(langs)} languages: {', '.join(langs[:8])}"
                f"{', ...' if len(langs) > 8 else ''}); pass target_lang=... to pick one."
            )
        else:
            encoder = self.vocab
        bad = [
            (token, index) for token, index in encoder.items() if isinstance(index, bool) or not isinstance(index, int)
        ]
        if bad:
            raise TokenizerError(
                f"{self._where} must map characters to integer ids; found {bad[0][0]!r}: {bad[0][1]!r}."
            )
        return dict(encoder)

    def _mark_multichar_tokens(self) -> None:
        multichar = [
            AddedToken(token, rstrip=True, lstrip=True, normalized=False) for token in self.encoder if len(token) > 1
        ]
        if multichar:
            self._add_tokens(multichar)

    def _add_tokens(self, new_tokens: Sequence[str | AddedToken], special_tokens: bool = False) -> int:
        added = 0
        vocab = self.get_vocab()
        next_index = len(vocab)
        for token in new_tokens:
            if not isinstance(token, (str, AddedToken)):
                raise InputError(f"Tokens to add must be str or tokenizers.AddedToken, got {type(token).__name__}.")
            if str(token) == "":
                continue
            if isinstance(token, str):
                token = AddedToken(token, rstrip=False, lstrip=False, normalized=False)
            if special_tokens and not token.special:
                token = AddedToken(
                    token.content,
                    single_word=token.single_word,
                    lstrip=token.lstrip,
                    rstrip=token.rstrip,
                    normalized=token.normalized,
                    special=True,
                )
            if not token.special and token.normalized and self.do_lower_case:
                token = AddedToken(
                    token.content.lower(),
                    single_word=token.single_word,
                    lstrip=token.lstrip,
                    rstrip=token.rstrip,
                    normalized=True,
                    special=False,
                )
            if token.content not in vocab:
                index = next_index + added
                vocab[token.content] = index
                added += 1
            else:
                index = vocab[token.content]
            if token.special and str(token) not in self.all_special_tokens:
                self._extra_special_tokens.append(token)
            self._added_tokens_decoder[index] = token
            self._added_tokens_encoder[token.content] = index
        self._splitter = None
        return added

    def add_tokens(
        self, new_tokens: str | AddedToken | Sequence[str | AddedToken], special_tokens: bool = False
    ) -> int:
        """Add tokens (kept whole when tokenizing); returns how many were new to the vocabulary."""
        if not new_tokens:
            return 0
        if not isinstance(new_tokens, (list, tuple)):
            new_tokens = [new_tokens]
        return self._add_tokens(new_tokens, special_tokens=special_tokens)

    def add_special_tokens(
        self, special_tokens_dict: Mapping[str, Any], replace_extra_special_tokens: bool = True
    ) -> int:
        """Set named special tokens (``{"pad_token": "<pad>"}``) or ``extra_special_tokens``."""
        if not special_tokens_dict:
            return 0
        tokens = dict(special_tokens_dict)
        if "additional_special_tokens" in tokens and not tokens.get("extra_special_tokens"):
            tokens["extra_special_tokens"] = tokens.pop("additional_special_tokens")
        allowed = set(SPECIAL_TOKENS_ATTRIBUTES) | {"extra_special_tokens"}
        to_add: list[AddedToken] = []
        for key, value in tokens.items():
            if key not in allowed:
                raise InputError(f"{key!r} is not a special token name; use one of {sorted(allowed)}.")
            if key == "extra_special_tokens":
                if not isinstance(value, (list, tuple)) or not all(isinstance(t, (str, AddedToken)) for t in value):
                    raise InputError("extra_special_tokens must be a list of str or tokenizers.AddedToken.")
                current = self.extra_special_tokens
                new = [
                    AddedToken(t, rstrip=False, lstrip=False, normalized=False, special=True)
                    if isinstance(t, str)
                    else t
                    for t in value
                    if replace_extra_special_tokens or str(t) not in current
                ]
                if replace_extra_special_tokens and new:
                    self._extra_special_tokens = list(new)
                else:
                    self._extra_special_tokens.extend(new)
                to_add.extend(new)
                continue
            if not isinstance(value, (str, AddedToken)):
                raise InputError(f"{key} must be a str or tokenizers.AddedToken, got {type(value).__name__}.")
            if isinstance(value, str):
                value = AddedToken(value, rstrip=False, lstrip=False, normalized=False, special=True)
            self._special_tokens_map[key] = value
            to_add.append(value)
        return self._add_tokens(to_add, special_tokens=True)

    def set_target_lang(self, target_lang: str) -> None:
        """Switch a multi-lingual vocabulary (e.g. MMS) to another language."""
        if self.encoder == self.vocab:
            raise TokenizerError("This vocabulary is not multi-lingual, so it has no target language to set.")
        self.encoder = self._language_vocab(target_lang)
        self.target_lang = target_lang
        self.init_kwargs["target_lang"] = target_lang
        self.decoder = {index: token for token, index in self.encoder.items()}
        # Vocabulary entries take precedence over added tokens that share their ids.
        for index in list(self._added_tokens_decoder):
            if index in self.decoder:
                self._added_tokens_encoder.pop(self._added_tokens_decoder.pop(index).content, None)
        self._splitter = None
        self._mark_multichar_tokens()

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, **kwargs: Any) -> CTCTokenizer:
        """Load a checkpoint's tokenizer (see :func:`leanformers.processing.tokenizer.load_tokenizer`)."""
        from .tokenizer import load_tokenizer

        tokenizer = load_tokenizer(name_or_path, **kwargs)
        if not isinstance(tokenizer, cls):
            raise TokenizerError(f"{name_or_path!r} holds a {type(tokenizer).__name__}, not a CTC character tokenizer.")
        return tokenizer

    # -- special tokens -------------------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        # Reached only for names not found normally: the special tokens and their ids.
        if name.startswith("_"):
            raise AttributeError(name)
        tokens = self.__dict__.get("_special_tokens_map", {})
        base = name.removesuffix("_id")
        if base in tokens:
            value = tokens[base]
            if value is None:
                return None
            return self.convert_tokens_to_ids(str(value)) if base != name else str(value)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        tokens = self.__dict__.get("_special_tokens_map")
        base = name.removesuffix("_id")
        if tokens is not None and (base in tokens or base in SPECIAL_TOKENS_ATTRIBUTES):
            if base != name and value is not None:
                value = self.convert_ids_to_tokens(value)
            if value is not None and not isinstance(value, (str, AddedToken)):
                raise InputError(f"{base} must be a str or tokenizers.AddedToken, got {type(value).__name__}.")
            tokens[base] = value
            return
        if name in ("padding_side", "truncation_side") and value not in ("right", "left"):
            raise InputError(f"{name} must be 'right' or 'left', got {value!r}.")
        object.__setattr__(self, name, value)

    @property
    def word_delimiter_token(self) -> str | None:
        value = self._special_tokens_map.get("word_delimiter_token")
        return None if value is None else str(value)

    @word_delimiter_token.setter
    def word_delimiter_token(self, value: str | AddedToken | None) -> None:
        self._special_tokens_map["word_delimiter_token"] = value

    @property
    def word_delimiter_token_id(self) -> int | None:
        token = self.word_delimiter_token
        return None if token is None else self.convert_tokens_to_ids(token)

    @property
    def extra_special_tokens(self) -> list[str]:
        return [str(token) for token in self._extra_special_tokens]

    @property
    def special_tokens_map(self) -> dict[str, str]:
        """The named special tokens that are set (word delimiter included), as strings."""
        return {name: str(value) for name, value in self._special_tokens_map.items() if value is not None}

    @property
    def all_special_tokens(self) -> list[str]:
        seen: dict[str, None] = {}
        for value in list(self._special_tokens_map.values()) + self._extra_special_tokens:
            if value is not None:
                seen.setdefault(str(value))
        return list(seen)

    @property
    def all_special_ids(self) -> list[int]:
        return self.convert_tokens_to_ids(self.all_special_tokens)

    @property
    def pad_token_type_id(self) -> int:
        return 0

    # -- vocabulary -----------------------------------------------------------------------------

    @property
    def is_fast(self) -> bool:
        return False

    @property
    def vocab_size(self) -> int:
        """Size of the base vocabulary (distinct ids), without added tokens."""
        return len(self.decoder)

    def __len__(self) -> int:
        return len(self.get_vocab())

    def __bool__(self) -> bool:
        return True

    def get_vocab(self) -> dict[str, int]:
        vocab = dict(self.encoder)
        vocab.update(self._added_tokens_encoder)
        return vocab

    @property
    def added_tokens_decoder(self) -> dict[int, AddedToken]:
        return dict(sorted(self._added_tokens_decoder.items()))

    @property
    def added_tokens_encoder(self) -> dict[str, int]:
        return {token.content: index for index, token in sorted(self._added_tokens_decoder.items())}

    def get_added_vocab(self) -> dict[str, int]:
        return dict(self._added_tokens_encoder)

    def convert_tokens_to_ids(self, tokens: str | Sequence[str] | None) -> int | list[int] | None:
        """Ids of tokens; a token outside the vocabulary gets the unknown token's id."""
        if tokens is None:
            return None
        if isinstance(tokens, str):
            return self._token_to_id(tokens)
        return [self._token_to_id(token) for token in tokens]

    def _token_to_id(self, token: str) -> int | None:
        if token in self._added_tokens_encoder:
            return self._added_tokens_encoder[token]
        if token in self.encoder:
            return self.encoder[token]
        unk = self._special_tokens_map.get("unk_token")
        return self.encoder.get(str(unk)) if unk is not None else None

    def _id_to_token(self, index: int) -> str | None:
        if index in self.decoder:
            return self.decoder[index]
        if index in self._added_tokens_decoder:
            return self._added_tokens_decoder[index].content
        return self.unk_token

    def convert_ids_to_tokens(self, ids: Any, skip_special_tokens: bool = False) -> str | list[str] | None:
        """Tokens of ids (the vocabulary first, then added tokens, else the unknown token)."""
        ids = _to_python(ids)
        if isinstance(ids, int):
            return self._id_to_token(ids)
        skip = set(self.all_special_ids) if skip_special_tokens else ()
        tokens = []
        for index in ids:
            index = _as_id(index)
            if index in skip:
                continue
            tokens.append(self._id_to_token(index))
        return tokens

    # -- encoding -------------------------------------------------------------------------------

    def _split_points(self) -> dict[str, list[str]]:
        """Added tokens by first character, longest first (for leftmost-longest matching)."""
        if self._splitter is None:
            table: dict[str, list[str]] = {}
            for content in self._added_tokens_encoder:
                if content:
                    table.setdefault(content[0], []).append(content)
            for candidates in table.values():
                candidates.sort(key=len, reverse=True)
            self._splitter = table
        return self._splitter

    def _split_on_added_tokens(self, text: str) -> list[str]:
        """``text`` cut around every added token (leftmost, longest match first); the pieces
        alternate between plain text and token contents, and may be empty."""
        table = self._split_points()
        pieces: list[str] = []
        start = position = 0
        while position < len(text):
            for candidate in table.get(text[position], ()):
                if text.startswith(candidate, position):
                    pieces.append(text[start:position])
                    pieces.append(candidate)
                    position += len(candidate)
                    start = position
                    break
            else:
                position += 1
        pieces.append(text[start:])
        return [piece for piece in pieces if piece]

    def _tokenize(self, text: str) -> list[str]:
        if self.do_lower_case:
            text = text.upper()
        delimiter = self.word_delimiter_token
        if delimiter is None:
            return list(text)
        return [delimiter if char == " " else char for char in text]

    def tokenize(self, text: str, **kwargs: Any) -> list[str]:
        """Characters of ``text`` (upper-cased if do_lower_case; spaces as the word delimiter),
        with added tokens such as ``<s>`` kept whole."""
        if not isinstance(text, str):
            raise InputError(f"tokenize() takes a str, got {type(text).__name__}.")
        split_special_tokens = kwargs.pop("split_special_tokens", None)
        if split_special_tokens is None:
            split_special_tokens = self.split_special_tokens
        if kwargs.pop("is_split_into_words", False):
            text = " " + text
        if kwargs:
            raise InputError(f"tokenize() got unexpected keyword arguments {sorted(kwargs)}.")
        if split_special_tokens:
            return self._tokenize(text)
        pieces = self._split_on_added_tokens(text)
        for i, piece in enumerate(pieces):
            index = self._added_tokens_encoder.get(piece)
            if index is None:
                continue
            token = self._added_tokens_decoder.get(index)
            if token is None:
                continue
            left = pieces[i - 1] if i > 0 else None
            right = pieces[i + 1] if i < len(pieces) - 1 else None
            if token.rstrip and right:
                pieces[i + 1] = right.lstrip()
            if token.lstrip and left:
                pieces[i - 1] = left.rstrip()
            if token.single_word:
                if left and left[-1] != " ":
                    pieces[i - 1] += piece
                    pieces[i] = ""
                elif right and right[0] != " ":
                    pieces[i + 1] = piece + pieces[i + 1]
                    pieces[i] = ""
        special = set(self.all_special_tokens)
        tokens: list[str] = []
        for piece in pieces:
            if not piece:
                continue
            if piece in self._added_tokens_encoder or piece in special:
                tokens.append(piece)
            else:
                tokens.extend(self._tokenize(piece))
        return tokens

    def _ids_of(self, text: Any, is_split_into_words: bool, split_special_tokens: bool, name: str) -> list[int]:
        if isinstance(text, str):
            return self.convert_tokens_to_ids(self.tokenize(text, split_special_tokens=split_special_tokens))
        if isinstance(text, (list, tuple)) and text:
            if all(isinstance(item, int) and not isinstance(item, bool) for item in text):
                return list(text)
            if all(isinstance(item, str) for item in text):
                if is_split_into_words:
                    return self.convert_tokens_to_ids(
                        [
                            token
                            for word in text
                            for token in self.tokenize(
                                word, split_special_tokens=split_special_tokens, is_split_into_words=True
                            )
                        ]
                    )
                return self.convert_tokens_to_ids(list(text))
        raise InputError(
            f"{name} must be a str, a list of str (a batch, or pre-split words with is_split_into_words=True) or a "
            f"list of ids; got {_describe(text)}."
        )

    def build_inputs_with_special_tokens(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None
    ) -> list[int]:
        """CTC tokenizers add no special tokens around a sequence."""
        return list(token_ids_0) + (list(token_ids_1) if token_ids_1 else [])

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return 0

    def get_special_tokens_mask(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None, already_has_special_tokens: bool = False
    ) -> list[int]:
        if already_has_special_tokens:
            if token_ids_1 is not None:
                raise InputError("Pass a single already formatted sequence (token_ids_1 must be None).")
            special = set(self.all_special_ids)
            return [1 if int(index) in special else 0 for index in token_ids_0]
        return [0] * (len(token_ids_0) + (len(token_ids_1) if token_ids_1 else 0))

    def _truncate(
        self, ids: list[int], pair_ids: list[int] | None, remove: int, strategy: str
    ) -> tuple[list[int], list[int] | None]:
        if remove <= 0:
            return ids, pair_ids
        right = self.truncation_side == "right"
        if strategy == "only_first" or (strategy == "longest_first" and pair_ids is None):
            ids = ids[:-remove] if right else ids[remove:]
        elif strategy == "longest_first":
            first_remove = min(abs(len(pair_ids) - len(ids)), remove)
            second_remove = remove - first_remove
            if len(ids) > len(pair_ids):
                from_ids = first_remove + second_remove // 2
                from_pair = second_remove - second_remove // 2
            else:
                from_ids = second_remove // 2
                from_pair = first_remove + second_remove - second_remove // 2
            if right:
                ids = ids[:-from_ids] if from_ids > 0 else ids
                pair_ids = pair_ids[:-from_pair] if pair_ids and from_pair > 0 else pair_ids
            else:
                ids = ids[from_ids:]
                pair_ids = pair_ids[from_pair:] if pair_ids else pair_ids
        elif strategy == "only_second" and pair_ids:
            pair_ids = pair_ids[:-remove] if right else pair_ids[remove:]
        return ids, pair_ids

    def _pad_one(
        self,
        encoded: dict[str, Any],
        max_length: int | None,
        strategy: str,
        pad_to_multiple_of: int | None,
        padding_side: str | None,
        return_attention_mask: bool | None,
    ) -> dict[str, Any]:
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names
        main = self.model_input_names[0]
        ids = encoded[main]
        if strategy == "longest":
            max_length = len(ids)
        if max_length is not None and pad_to_multiple_of is not None and max_length % pad_to_multiple_of:
            max_length = (max_length // pad_to_multiple_of + 1) * pad_to_multiple_of
        if return_attention_mask and "attention_mask" not in encoded:
            encoded["attention_mask"] = [1] * len(ids)
        if strategy != _NO_PAD and max_length is not None and len(ids) < max_length:
            missing = max_length - len(ids)
            side = padding_side if padding_side is not None else self.padding_side
            if side not in ("right", "left"):
                raise InputError(f"padding_side must be 'right' or 'left', got {side!r}.")

            def extend(values: list, fill: Any) -> list:
                return values + [fill] * missing if side == "right" else [fill] * missing + values

            if return_attention_mask:
                encoded["attention_mask"] = extend(list(encoded["attention_mask"]), 0)
            if "token_type_ids" in encoded:
                encoded["token_type_ids"] = extend(list(encoded["token_type_ids"]), self.pad_token_type_id)
            if "special_tokens_mask" in encoded:
                encoded["special_tokens_mask"] = extend(list(encoded["special_tokens_mask"]), 1)
            encoded[main] = extend(list(ids), self.pad_token_id)
        return encoded

    def _prepare(
        self,
        ids: list[int],
        pair_ids: list[int] | None,
        padding: str,
        truncation: str,
        max_length: int | None,
        pad_to_multiple_of: int | None,
        padding_side: str | None,
        return_token_type_ids: bool | None,
        return_attention_mask: bool | None,
        return_special_tokens_mask: bool,
        return_length: bool,
        verbose: bool,
    ) -> dict[str, Any]:
        if return_token_type_ids is None:
            return_token_type_ids = "token_type_ids" in self.model_input_names
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names
        total = len(ids) + len(pair_ids or [])
        if truncation != _NO_TRUNCATE and max_length and total > max_length:
            ids, pair_ids = self._truncate(ids, pair_ids, total - max_length, truncation)
        sequence = self.build_inputs_with_special_tokens(ids, pair_ids)
        encoded: dict[str, Any] = {"input_ids": sequence}
        if return_token_type_ids:
            encoded["token_type_ids"] = [0] * len(sequence)
        if return_special_tokens_mask:
            encoded["special_tokens_mask"] = self.get_special_tokens_mask(ids, pair_ids)
        if max_length is None and verbose and len(sequence) > self.model_max_length and not self._warned_too_long:
            logger.warning(
                "Token indices sequence length is longer than the specified maximum sequence length for this model "
                "(%d > %d). Running this sequence through the model will result in indexing errors",
                len(sequence),
                self.model_max_length,
            )
            self._warned_too_long = True
        if padding != _NO_PAD or return_attention_mask:
            encoded = self._pad_one(
                encoded, max_length, padding, pad_to_multiple_of, padding_side, return_attention_mask
            )
        if return_length:
            encoded["length"] = len(encoded["input_ids"])
        return encoded

    def _encode(
        self,
        text: Any,
        text_pair: Any,
        padding: str,
        truncation: str,
        max_length: int | None,
        is_split_into_words: bool,
        pad_to_multiple_of: int | None,
        padding_side: str | None,
        return_tensors: str | None,
        return_token_type_ids: bool | None,
        return_attention_mask: bool | None,
        return_special_tokens_mask: bool,
        return_length: bool,
        verbose: bool,
        split_special_tokens: bool,
    ) -> BatchEncoding:
        batched = isinstance(text, (list, tuple)) and (
            (not text and not is_split_into_words)
            or (bool(text) and is_split_into_words and isinstance(text[0], (list, tuple)))
            or (bool(text) and not is_split_into_words and isinstance(text[0], (str, list, tuple)))
        )
        options = {
            "return_token_type_ids": return_token_type_ids,
            "return_special_tokens_mask": return_special_tokens_mask,
            "return_length": return_length,
            "verbose": verbose,
        }
        if not batched:
            ids = self._ids_of(text, is_split_into_words, split_special_tokens, "text")
            pair_ids = (
                None
                if text_pair is None
                else self._ids_of(text_pair, is_split_into_words, split_special_tokens, "text_pair")
            )
            encoded = self._prepare(
                ids,
                pair_ids,
                padding,
                truncation,
                max_length,
                pad_to_multiple_of,
                padding_side,
                return_attention_mask=return_attention_mask,
                **options,
            )
            return BatchEncoding(encoded, tensor_type=return_tensors, prepend_batch_axis=True)

        if text_pair is not None and (not isinstance(text_pair, (list, tuple)) or len(text_pair) != len(text)):
            raise InputError("When text is a batch, text_pair must be a batch (list) of the same length.")
        pairs = text_pair if text_pair is not None else [None] * len(text)
        rows: dict[str, list] = {}
        for index, (item, pair) in enumerate(zip(text, pairs)):
            if isinstance(item, (list, tuple)) and item and not isinstance(item[0], int) and pair is None:
                is_pair = (
                    len(item) == 2
                    and (not is_split_into_words or isinstance(item, tuple))
                    and all(isinstance(part, (str, list, tuple)) for part in item)
                )
                if is_pair:
                    item, pair = item
                elif len(item) == 1:
                    item = item[0]
                elif not is_split_into_words:
                    raise InputError(
                        f"text[{index}] holds {len(item)} texts; a batch item is one text or a (text, pair) of two."
                    )
            ids = self._ids_of(item, is_split_into_words, split_special_tokens, f"text[{index}]")
            pair_ids = (
                None
                if pair is None
                else self._ids_of(pair, is_split_into_words, split_special_tokens, f"text_pair[{index}]")
            )
            encoded = self._prepare(
                ids, pair_ids, _NO_PAD, truncation, max_length, None, None, return_attention_mask=False, **options
            )
            for key, value in encoded.items():
                rows.setdefault(key, []).append(value)
        if not rows:
            rows = {"input_ids": []}
            if return_attention_mask or (return_attention_mask is None and "attention_mask" in self.model_input_names):
                rows["attention_mask"] = []
            return BatchEncoding(rows, tensor_type=return_tensors)
        padded = self.pad(
            rows,
            padding=padding,
            max_length=max_length,
            pad_to_multiple_of=pad_to_multiple_of,
            padding_side=padding_side,
            return_attention_mask=return_attention_mask,
        )
        return BatchEncoding(dict(padded), tensor_type=return_tensors)

    def __call__(
        self,
        text: Any = None,
        text_pair: Any = None,
        text_target: Any = None,
        text_pair_target: Any = None,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        stride: int = 0,
        is_split_into_words: bool = False,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_tensors: str | None = None,
        return_token_type_ids: bool | None = None,
        return_attention_mask: bool | None = None,
        return_overflowing_tokens: bool = False,
        return_special_tokens_mask: bool = False,
        return_offsets_mapping: bool = False,
        return_length: bool = False,
        verbose: bool = True,
        split_special_tokens: bool | None = None,
        **kwargs: Any,
    ) -> BatchEncoding:
        """Encode text (or a batch) to ``input_ids`` and ``attention_mask``; ``text_target`` gives
        ``labels`` (for CTC training), alone or beside ``text``."""
        max_target_length = kwargs.pop("max_target_length", None)
        if kwargs:
            raise InputError(f"{self.class_name}() got unexpected keyword arguments {sorted(kwargs)}.")
        if return_overflowing_tokens:
            raise InputError("return_overflowing_tokens is not supported by the CTC character tokenizer.")
        if return_offsets_mapping:
            raise InputError(
                "return_offsets_mapping is not available for the CTC character tokenizer (the reference's slow "
                "tokenizers have none either); each id is one character of the upper-cased text."
            )
        if text is None and text_target is None:
            raise InputError("Pass text (to encode inputs) and/or text_target (to encode labels).")
        if return_tensors is not None and getattr(return_tensors, "value", return_tensors) not in ("pt", "np"):
            raise InputError(f"return_tensors={return_tensors!r} is not supported: use 'pt', 'np' or None.")
        padding, truncation, max_length = _strategies(
            self, padding, truncation, max_length, pad_to_multiple_of, verbose
        )
        if split_special_tokens is None:
            split_special_tokens = self.split_special_tokens
        options = {
            "padding": padding,
            "truncation": truncation,
            "is_split_into_words": is_split_into_words,
            "pad_to_multiple_of": pad_to_multiple_of,
            "padding_side": padding_side,
            "return_tensors": return_tensors,
            "return_token_type_ids": return_token_type_ids,
            "return_attention_mask": return_attention_mask,
            "return_special_tokens_mask": return_special_tokens_mask,
            "return_length": return_length,
            "verbose": verbose,
            "split_special_tokens": bool(split_special_tokens),
        }
        encodings = None
        if text is not None:
            encodings = self._encode(text, text_pair, max_length=max_length, **options)
        if text_target is None:
            return encodings
        targets = self._encode(
            text_target,
            text_pair_target,
            max_length=max_target_length if max_target_length is not None else max_length,
            **options,
        )
        if encodings is None:
            return targets
        encodings["labels"] = targets["input_ids"]
        return encodings

    def encode(
        self,
        text: Any,
        text_pair: Any = None,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        return_tensors: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """The ids of one text (``input_ids`` of the call)."""
        return self(
            text,
            text_pair=text_pair,
            add_special_tokens=add_special_tokens,
            padding=padding,
            truncation=truncation,
            max_length=max_length,
            return_tensors=return_tensors,
            **kwargs,
        )["input_ids"]

    def pad(
        self,
        encoded_inputs: Any,
        padding: bool | str = True,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_attention_mask: bool | None = None,
        return_tensors: str | None = None,
        verbose: bool = True,
    ) -> BatchEncoding:
        """Pad encoded inputs (a dict of rows, or a list of dicts as a data collator gets them)."""
        if isinstance(encoded_inputs, (list, tuple)) and encoded_inputs and isinstance(encoded_inputs[0], Mapping):
            encoded_inputs = {key: [example[key] for example in encoded_inputs] for key in encoded_inputs[0]}
        main = self.model_input_names[0]
        if not isinstance(encoded_inputs, Mapping) or main not in encoded_inputs:
            found = list(encoded_inputs.keys()) if isinstance(encoded_inputs, Mapping) else _describe(encoded_inputs)
            raise InputError(f"pad() needs a dict (or list of dicts) with {main!r}, got {found}.")
        encoded_inputs = dict(encoded_inputs)
        required = encoded_inputs[main]
        if required is None or len(required) == 0:
            if return_attention_mask:
                encoded_inputs["attention_mask"] = []
            return BatchEncoding(encoded_inputs)
        first = required[0]
        if isinstance(first, (list, tuple)):
            first = next((row[0] for row in required if len(row)), first)
        if not isinstance(first, (int, list, tuple)):
            if type(first).__module__.startswith("torch"):
                return_tensors = return_tensors or "pt"
            elif type(first).__module__ == "numpy":
                return_tensors = return_tensors or "np"
            encoded_inputs = {key: _to_python(value) for key, value in encoded_inputs.items()}
        padding, _, max_length = _strategies(self, padding, None, max_length, None, verbose)
        required = encoded_inputs[main]
        if required and not isinstance(required[0], (list, tuple)):
            return BatchEncoding(
                self._pad_one(
                    encoded_inputs, max_length, padding, pad_to_multiple_of, padding_side, return_attention_mask
                ),
                tensor_type=return_tensors,
            )
        size = len(required)
        if any(len(value) != size for value in encoded_inputs.values()):
            raise InputError("pad(): every key must hold one row per example (the batch sizes differ).")
        if padding == "longest":
            max_length = max(len(row) for row in required)
            padding = "max_length"
        batch: dict[str, list] = {}
        for index in range(size):
            row = {
                key: list(value[index]) if isinstance(value[index], (list, tuple)) else value[index]
                for key, value in encoded_inputs.items()
            }
            row = self._pad_one(row, max_length, padding, pad_to_multiple_of, padding_side, return_attention_mask)
            for key, value in row.items():
                batch.setdefault(key, []).append(value)
        return BatchEncoding(batch, tensor_type=return_tensors)

    # -- decoding -------------------------------------------------------------------------------

    def convert_tokens_to_string(
        self,
        tokens: list[str],
        group_tokens: bool = True,
        spaces_between_special_tokens: bool = False,
        output_char_offsets: bool = False,
        output_word_offsets: bool = False,
    ) -> dict[str, Any]:
        """CTC decoding of tokens: collapse repeats, drop the blank (pad), delimiter -> space."""
        if not tokens:
            return {"text": "", "char_offsets": [], "word_offsets": []}
        if group_tokens:
            chars, repeats = [], []
            for token, run in groupby(tokens):
                chars.append(token)
                repeats.append(sum(1 for _ in run))
        else:
            chars, repeats = list(tokens), [1] * len(tokens)
        blank = self.pad_token
        delimiter = self.word_delimiter_token
        kept = [char for char in chars if char != blank]
        kept = [self.replace_word_delimiter_char if char == delimiter else char for char in kept]

        char_offsets = word_offsets = None
        if output_char_offsets or output_word_offsets:
            char_offsets = []
            end = 0
            for char, count in zip(chars, repeats):
                start, end = end, end + count
                if char != blank:
                    char_offsets.append({"char": char, "start_offset": start, "end_offset": end})
            for offset, char in zip(char_offsets, kept):
                offset["char"] = char
            if output_word_offsets:
                word_offsets = _word_offsets(char_offsets, self.replace_word_delimiter_char)
            if not output_char_offsets:
                char_offsets = None

        text = (" " if spaces_between_special_tokens else "").join(kept).strip()
        if self.do_lower_case:
            text = text.lower()
        return {"text": text, "char_offsets": char_offsets, "word_offsets": word_offsets}

    def decode(
        self,
        token_ids: Any,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
        output_char_offsets: bool = False,
        output_word_offsets: bool = False,
        group_tokens: bool = True,
        spaces_between_special_tokens: bool = False,
    ) -> Any:
        """Text of a CTC id sequence (e.g. the argmax of the logits). ``skip_special_tokens``
        removes special tokens (except the word delimiter) *before* repeats are collapsed."""
        token_ids = _to_python(token_ids)
        if isinstance(token_ids, (list, tuple)) and token_ids and isinstance(token_ids[0], (list, tuple)):
            return [
                self.decode(
                    row,
                    skip_special_tokens=skip_special_tokens,
                    clean_up_tokenization_spaces=clean_up_tokenization_spaces,
                    output_char_offsets=output_char_offsets,
                    output_word_offsets=output_word_offsets,
                    group_tokens=group_tokens,
                    spaces_between_special_tokens=spaces_between_special_tokens,
                )
                for row in token_ids
            ]
        if not isinstance(token_ids, (list, tuple)):
            token_ids = [token_ids]
        tokens = self.convert_ids_to_tokens(token_ids)
        if skip_special_tokens:
            special = set(self.all_special_tokens)
            delimiter = self.word_delimiter_token
            tokens = [token for token in tokens if token not in special or token == delimiter]
        output = self.convert_tokens_to_string(
            tokens,
            group_tokens=group_tokens,
            spaces_between_special_tokens=spaces_between_special_tokens,
            output_char_offsets=output_char_offsets,
            output_word_offsets=output_word_offsets,
        )
        text = output["text"]
        clean = (
            self.clean_up_tokenization_spaces if clean_up_tokenization_spaces is None else clean_up_tokenization_spaces
        )
        if clean:
            text = clean_up_tokenization(text)
        if output_char_offsets or output_word_offsets:
            return CTCTokenizerOutput(
                text=text, char_offsets=output["char_offsets"], word_offsets=output["word_offsets"]
            )
        return text

    def batch_decode(
        self,
        sequences: Any,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
        output_char_offsets: bool = False,
        output_word_offsets: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Decode each row; with offsets, one :class:`CTCTokenizerOutput` holding lists."""
        decoded = [
            self.decode(
                row,
                skip_special_tokens=skip_special_tokens,
                clean_up_tokenization_spaces=clean_up_tokenization_spaces,
                output_char_offsets=output_char_offsets,
                output_word_offsets=output_word_offsets,
                **kwargs,
            )
            for row in sequences
        ]
        if output_char_offsets or output_word_offsets:
            return CTCTokenizerOutput(
                text=[item.text for item in decoded],
                char_offsets=[item.char_offsets for item in decoded] if output_char_offsets else None,
                word_offsets=[item.word_offsets for item in decoded] if output_word_offsets else None,
            )
        return decoded

    # -- saving and printing --------------------------------------------------------------------

    def _config_to_save(self) -> dict[str, Any]:
        config = copy.deepcopy(self.init_kwargs)
        for key in list(self.init_kwargs) + ["model_max_length"]:
            if key in ("model_specific_special_tokens", "name_or_path"):
                continue
            try:
                config[key] = getattr(self, key)
            except AttributeError:
                pass
        config.update(self.special_tokens_map)
        if self._extra_special_tokens:
            config["extra_special_tokens"] = self.extra_special_tokens
        for key in _VOCAB_FILE_KEYS:
            config.pop(key, None)
        config = _added_tokens_to_json(config)
        # Integer keys, so that the saved file lists them in numeric order as the reference's does.
        config["added_tokens_decoder"] = {
            index: token.__getstate__() for index, token in self.added_tokens_decoder.items()
        }
        config["tokenizer_class"] = self.class_name
        if self._processor_class is not None:
            config["processor_class"] = self._processor_class
        config.pop("files_loaded", None)
        if "name_or_path" in config:
            config.pop("name_or_path")
            config.pop("special_tokens_map_file", None)
            config.pop("tokenizer_file", None)
        config.pop("device_map", None)
        config.pop("slow_tokenizer_class", None)
        return config

    def save_pretrained(
        self, save_directory: str | os.PathLike, filename_prefix: str | None = None, **kwargs: Any
    ) -> tuple[str, ...]:
        """Write tokenizer_config.json, vocab.json (and added_tokens.json for tokens beyond the
        vocabulary), each atomically; returns the paths written."""
        if kwargs.pop("push_to_hub", False):
            raise InputError("leanformers does not upload to the hub; save locally and push with huggingface_hub.")
        if kwargs.get("legacy_format") is False:
            raise InputError(
                "The CTC character tokenizer has no tokenizer.json form; legacy_format=False cannot be honoured."
            )
        save_directory = os.fspath(save_directory)
        if os.path.isfile(save_directory):
            raise InputError(f"save_pretrained needs a directory, but {save_directory!r} is a file.")
        os.makedirs(save_directory, exist_ok=True)
        prefix = f"{filename_prefix}-" if filename_prefix else ""

        def dump(data: Any) -> str:
            return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

        config_path = os.path.join(save_directory, prefix + TOKENIZER_CONFIG_FILE)
        atomic_write(config_path, dump(self._config_to_save()))
        written = [config_path]
        vocab_path = os.path.join(save_directory, prefix + VOCAB_FILE)
        atomic_write(vocab_path, dump(self.vocab))
        written.append(vocab_path)
        beyond = {token: index for token, index in self.added_tokens_encoder.items() if index >= self.vocab_size}
        if beyond:
            added_path = os.path.join(save_directory, prefix + ADDED_TOKENS_FILE)
            atomic_write(added_path, dump(beyond))
            written.append(added_path)
        return tuple(written)

    def __repr__(self) -> str:
        added = "\n\t".join(f"{index}: {token!r}," for index, token in self.added_tokens_decoder.items())
        if added:
            added = f"\n\t{added}\n"
        return (
            f"{self.class_name}(name_or_path='{self.name_or_path}',"
            f" vocab_size={self.vocab_size}, model_max_length={self.model_max_length},"
            f" padding_side='{self.padding_side}', truncation_side='{self.truncation_side}',"
            f" special_tokens={self.special_tokens_map},"
            f" added_tokens_decoder={{{added}}})"
        )


def _word_offsets(char_offsets: list[dict[str, Any]], delimiter: str) -> list[dict[str, Any]]:
    """Words (runs of non-delimiter characters) with the offsets of their first and last character."""
    words: list[dict[str, Any]] = []
    word, start, end, in_word = "", 0, 0, False
    for offset in char_offsets:
        is_word = offset["char"] != delimiter
        if is_word and not in_word:
            word, start, end = offset["char"], offset["start_offset"], offset["end_offset"]
        elif is_word:
            word += offset["char"]
            end = offset["end_offset"]
        elif in_word:
            words.append({"word": word, "start_offset": start, "end_offset": end})
        in_word = is_word
    if in_word:
        words.append({"word": word, "start_offset": start, "end_offset": end})
    return words


def _as_id(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InputError(f"Token ids must be integers, got {value!r}.") from None


def _describe(value: Any) -> str:
    shape = getattr(value, "shape", None)
    return f"{type(value).__name__} of shape {tuple(shape)}" if shape is not None else type(value).__name__


def build_ctc_tokenizer(source: Source, class_name: str, init_kwargs: dict[str, Any]) -> CTCTokenizer:
    """The CTC tokenizer of a checkpoint from its vocab.json and the prepared options (the
    tokenizer loader's settled ``init_kwargs``)."""
    vocab_path = source.resolve(VOCAB_FILE, required=False)
    if vocab_path is None:
        raise TokenizerError(
            f"{source.describe()} names tokenizer class {class_name!r} but has no {VOCAB_FILE}, the character "
            f"vocabulary it is built from. Add the vocab.json saved with the model."
        )
    vocab = _read_json(vocab_path, VOCAB_FILE, TokenizerError)
    options = dict(init_kwargs)
    for key in ("tokenizer_file", "vocab_file", "tokenizer_config_file"):
        options.pop(key, None)
    options["tokenizer_file"] = None  # as the reference records it, so saving drops it the same way
    try:
        tokenizer = CTCTokenizer(vocab, class_name=class_name, **options)
    except TypeError as exc:
        raise ConfigError(f"The tokenizer options of {source.describe()} are invalid: {exc}") from exc
    tokenizer._where = repr(vocab_path)
    return tokenizer


__all__ = ["CTCTokenizer", "CTCTokenizerOutput", "build_ctc_tokenizer"]
