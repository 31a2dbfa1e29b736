"""The character-level CTC tokenizer (the reference's ``Wav2Vec2CTCTokenizer``) on the shared engine.

Text becomes characters (spaces become the word delimiter ``|``), cut here in Python because the
reference upper-cases only the text between added tokens; the characters then go through the base
class as pre-split words over a ``WordLevel`` vocabulary. Decoding reads a CTC output: repeats
collapse, the pad token is the blank, the delimiter becomes a space. Deliberate differences, where
the reference is evidently wrong: a custom ``word_delimiter_token`` is used for splitting;
``is_split_into_words=True`` keeps a delimiter before every word; ``decode`` of one id gives that
token and of a batch a list; a multi-lingual vocabulary without ``target_lang`` is refused;
``save_pretrained`` returns only the files it wrote.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from tokenizers import AddedToken, Tokenizer, processors
from tokenizers.models import WordLevel

from ..errors import ConfigError, InputError, TokenizerError
from ..hub import Source, read_json
from ..modeling.outputs import ModelOutput
from .tokenizer import (
    TOKENIZER_CONFIG_FILE,
    BatchEncoding,
    PreTrainedTokenizer,
    _as_token,
    _to_python,
    _valid_text,
    json_text,
)

CLASS_NAME = "Wav2Vec2CTCTokenizer"
VOCAB_FILE = "vocab.json"
ADDED_TOKENS_FILE = "added_tokens.json"


@dataclass(repr=True)
class CTCTokenizerOutput(ModelOutput):
    """``decode(..., output_char_offsets=True / output_word_offsets=True)``: the text and the
    offsets (in CTC frames) of each character and word (lists of them for ``batch_decode``)."""

    text: Any = None
    char_offsets: Any = None
    word_offsets: Any = None


def _with(token: AddedToken, **changes: Any) -> AddedToken:
    return AddedToken(**{**token.__getstate__(), **changes})


class CTCTokenizer(PreTrainedTokenizer):
    """A character vocabulary for CTC models (wav2vec2, HuBERT), behaving like the reference's
    ``Wav2Vec2CTCTokenizer``. Built by :func:`load_tokenizer` / ``AutoTokenizer``, or from a
    vocabulary: ``CTCTokenizer({"<pad>": 0, ..., "|": 4, "A": 5, ...})`` or ``CTCTokenizer("vocab.json")``.
    """

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
        self._where = "the vocabulary given"
        if isinstance(vocab, (str, os.PathLike)):
            self._where = repr(os.fspath(vocab))
            vocab = read_json(os.fspath(vocab), VOCAB_FILE, TokenizerError, object_only=False)
        if not isinstance(vocab, Mapping):
            kind = type(vocab).__name__
            raise TokenizerError(f"{self._where} must be a JSON object mapping characters to ids, got {kind}.")
        self._raw_vocab = dict(vocab)
        self.do_lower_case = do_lower_case
        self.replace_word_delimiter_char = replace_word_delimiter_char
        self.target_lang = target_lang
        self._processor_class = kwargs.pop("processor_class", None)
        kwargs.pop("special_tokens_pattern", None)
        # The loader moves word_delimiter_token into model_specific_special_tokens; that one is in force.
        specific = kwargs.get("model_specific_special_tokens") or {}
        word_delimiter_token = specific.get("word_delimiter_token", word_delimiter_token)
        kwargs.setdefault("backend", "custom")
        delimiter = None if word_delimiter_token is None else str(word_delimiter_token)
        options = dict(
            unk_token=unk_token, bos_token=bos_token, eos_token=eos_token, pad_token=pad_token,
            do_lower_case=do_lower_case, word_delimiter_token=delimiter,
            replace_word_delimiter_char=replace_word_delimiter_char, target_lang=target_lang,
        )
        self._select_language(target_lang)
        backend = self._new_backend(str(unk_token) if unk_token is not None else None)
        super().__init__(backend, class_name=class_name, **{**options, **kwargs})
        self._special_tokens_map.setdefault("word_delimiter_token", None)

    # -- vocabulary and added tokens ----------------------------------------------------------

    def _select_language(self, target_lang: str | None) -> None:
        """Set the vocabulary in force: the whole one, or one language of a multi-lingual one."""
        vocab = self._raw_vocab
        nested = bool(vocab) and all(isinstance(value, Mapping) for value in vocab.values())
        if target_lang is not None:
            if not nested or target_lang not in vocab:
                choices = ", ".join(sorted(vocab)) if nested else "none: the vocabulary is not multi-lingual"
                raise TokenizerError(f"target_lang={target_lang!r} is not in {self._where} (languages: {choices}).")
            encoder = vocab[target_lang]
        elif nested:
            langs = sorted(vocab)
            raise TokenizerError(
                f"{self._where} is a multi-lingual vocabulary ({len(langs)} languages: {', '.join(langs[:8])}"
                f"{', ...' if len(langs) > 8 else ''}); pass target_lang=... to pick one."
            )
        else:
            encoder = vocab
        for token, index in encoder.items():
            if isinstance(index, bool) or not isinstance(index, int):
                raise TokenizerError(f"{self._where} must map characters to integer ids; found {token!r}: {index!r}.")
        self._encoder = dict(encoder)
        self._id_tokens = {index: token for token, index in encoder.items()}

    def _new_backend(self, unk_token: str | None) -> Tokenizer:
        backend = Tokenizer(WordLevel(self._encoder, unk_token=unk_token or "<unk>"))
        # CTC sequences get no special tokens, and a pair is one sequence (type id 0 throughout).
        backend.post_processor = processors.TemplateProcessing(single="$A:0", pair="$A:0 $B:0", special_tokens=[])
        return backend

    def _register_added_tokens(self, added_tokens_decoder: Mapping[Any, Any]) -> None:
        # As the reference: saved added tokens, special tokens, then every multi-character vocabulary
        # entry as a token never split that eats the spaces around it. Flags live here, ids in Rust.
        self._added: dict[int, AddedToken] = {}
        for index, token in added_tokens_decoder.items():
            token = _as_token(token, f"added_tokens_decoder[{index}]")
            self._added[int(index)] = token if isinstance(token, AddedToken) else AddedToken(token)
        self._backend.add_tokens([self._added[index] for index in sorted(self._added)])
        self.add_tokens([t for t in self.all_special_tokens if t not in self._added_encoder], special_tokens=True)
        self._mark_multichar_tokens()

    def _mark_multichar_tokens(self) -> None:
        multichar = [token for token in self._encoder if len(token) > 1]
        self.add_tokens([AddedToken(token, rstrip=True, lstrip=True, normalized=False) for token in multichar])

    @property
    def _added_encoder(self) -> dict[str, int]:
        return {token.content: index for index, token in self._added.items()}

    def add_tokens(self, new_tokens: Any, special_tokens: bool = False) -> int:
        """Add tokens (kept whole when tokenizing); returns how many were new to the vocabulary."""
        if not new_tokens:
            return 0
        added = 0
        for token in new_tokens if isinstance(new_tokens, (list, tuple)) else [new_tokens]:
            if not isinstance(token, (str, AddedToken)):
                raise InputError(f"Tokens to add must be str or tokenizers.AddedToken, got {type(token).__name__}.")
            if str(token) == "":
                continue
            if isinstance(token, str):
                token = AddedToken(token, rstrip=False, lstrip=False, normalized=False)
            if special_tokens and not token.special:
                token = _with(token, special=True)
            if not token.special and token.normalized and self.do_lower_case:
                token = _with(token, content=token.content.lower())
            index = self._backend.token_to_id(token.content)
            if index is None:
                self._backend.add_tokens([token])
                index = self._backend.token_to_id(token.content)
                added += 1
            if token.special and str(token) not in self.all_special_tokens:
                self._extra_special_tokens.append(token)
            self._added[index] = token
        return added

    def set_target_lang(self, target_lang: str) -> None:
        """Switch a multi-lingual vocabulary (e.g. MMS) to another language."""
        if self._encoder == self._raw_vocab:
            raise TokenizerError("This vocabulary is not multi-lingual, so it has no target language to set.")
        self._select_language(target_lang)
        self.target_lang = self.init_kwargs["target_lang"] = target_lang
        # Vocabulary entries take precedence over added tokens that share their ids.
        self._added = {index: token for index, token in self._added.items() if index not in self._encoder.values()}
        self._backend = self._new_backend(self.unk_token)
        self._backend.add_tokens([self._added[index] for index in sorted(self._added)])
        self._forget_call_settings()
        self._mark_multichar_tokens()

    @property
    def vocab(self) -> dict[str, Any]:
        """The vocabulary as loaded (every language of a multi-lingual one)."""
        return self._raw_vocab

    @property
    def encoder(self) -> dict[str, int]:
        return self._encoder

    @property
    def decoder(self) -> dict[int, str]:  # type: ignore[override]
        return {index: token for token, index in self._encoder.items()}

    @property
    def is_fast(self) -> bool:
        return False

    @property
    def vocab_size(self) -> int:
        """Distinct ids of the base vocabulary, without added tokens."""
        return len(set(self._encoder.values()))

    def __len__(self) -> int:
        return len(self.get_vocab())

    @property
    def added_tokens_decoder(self) -> dict[int, AddedToken]:
        return dict(sorted(self._added.items()))

    def convert_ids_to_tokens(self, ids: Any, skip_special_tokens: bool = False) -> str | list[str] | None:
        """Tokens of ids: the vocabulary first, then added tokens, else the unknown token."""
        ids = _to_python(ids)
        if isinstance(ids, int):
            return self._id_to_token(ids)
        skip = set(self.all_special_ids) if skip_special_tokens else ()
        return [self._id_to_token(int(index)) for index in ids if int(index) not in skip]

    def _id_to_token(self, index: int) -> str | None:
        if index in self._id_tokens:
            return self._id_tokens[index]
        added = self._added.get(index)
        return added.content if added is not None else self.unk_token

    # -- encoding -------------------------------------------------------------------------------

    def _characters(self, text: str) -> list[str]:
        if self.do_lower_case:
            text = text.upper()
        delimiter = self.word_delimiter_token
        return list(text) if delimiter is None else [delimiter if char == " " else char for char in text]

    def _split_on_added_tokens(self, text: str) -> list[str]:
        """``text`` cut around every added token (leftmost, longest match first)."""
        candidates = sorted((token for token in self._added_encoder if token), key=len, reverse=True)
        if not candidates:
            return [text] if text else []
        return [piece for piece in re.split(f"({'|'.join(map(re.escape, candidates))})", text) if piece]

    def tokenize(self, text: str, **kwargs: Any) -> list[str]:
        """Characters of ``text`` (upper-cased if do_lower_case; spaces as the word delimiter),
        with added tokens such as ``<s>`` kept whole and the spaces they strip removed."""
        if not isinstance(text, str):
            raise InputError(f"tokenize() takes a str, got {type(text).__name__}.")
        split = kwargs.pop("split_special_tokens", None)
        if kwargs.pop("is_split_into_words", False):
            text = " " + text
        if kwargs:
            raise InputError(f"tokenize() got unexpected keyword arguments {sorted(kwargs)}.")
        if self.split_special_tokens if split is None else split:
            return self._characters(text)
        encoder = self._added_encoder
        pieces = self._split_on_added_tokens(text)
        for i, piece in enumerate(pieces):
            token = self._added.get(encoder.get(piece, -1))
            if token is None:
                continue
            if token.rstrip and i + 1 < len(pieces):
                pieces[i + 1] = pieces[i + 1].lstrip()
            if token.lstrip and i > 0:
                pieces[i - 1] = pieces[i - 1].rstrip()
            if token.single_word:
                if i > 0 and pieces[i - 1] and pieces[i - 1][-1] != " ":
                    pieces[i - 1], pieces[i] = pieces[i - 1] + piece, ""
                elif i + 1 < len(pieces) and pieces[i + 1] and pieces[i + 1][0] != " ":
                    pieces[i + 1], pieces[i] = piece + pieces[i + 1], ""
        special = set(self.all_special_tokens)
        tokens: list[str] = []
        for piece in pieces:
            if piece in encoder or piece in special:
                tokens.append(piece)
            elif piece:
                tokens.extend(self._characters(piece))
        return tokens

    def _tokens_of(self, text: Any, split_into_words: bool, split: bool | None) -> Any:
        """A text, a batch or pairs, with every text replaced by its tokens (pre-split words)."""
        if isinstance(text, str):
            return self.tokenize(text, split_special_tokens=split)
        if split_into_words and text and all(isinstance(word, str) for word in text):
            words = [self.tokenize(word, split_special_tokens=split, is_split_into_words=True) for word in text]
            return [token for word in words for token in word]
        return [
            tuple(self._tokens_of(part, split_into_words, split) for part in item)
            if isinstance(item, tuple) and len(item) == 2
            else self._tokens_of(item, split_into_words, split)
            for item in text
        ]

    def _strategies(self, padding: Any, *args: Any) -> tuple[str, str, int | None]:
        if padding not in (False, None, "do_not_pad") and self.pad_token_id is None:
            raise TokenizerError("Padding was asked for but this tokenizer has no pad token; set tokenizer.pad_token.")
        return super()._strategies(padding, *args)

    def __call__(
        self, text: Any = None, text_pair: Any = None, text_target: Any = None, text_pair_target: Any = None, *,
        is_split_into_words: bool = False, split_special_tokens: bool | None = None,
        max_target_length: int | None = None, **options: Any,
    ) -> BatchEncoding:
        """Encode text (or a batch) to ``input_ids`` and ``attention_mask``; ``text_target`` gives
        ``labels`` (for CTC training), alone or beside ``text``."""
        return_tensors = options.get("return_tensors")
        if options.get("return_overflowing_tokens") or options.get("return_offsets_mapping"):
            raise InputError(
                "return_overflowing_tokens and return_offsets_mapping are not available for the CTC character "
                "tokenizer (the reference has neither); each id is one character of the upper-cased text."
            )
        if text is None and text_target is None:
            raise InputError("Pass text (to encode inputs) and/or text_target (to encode labels).")

        def encode(first: Any, second: Any, max_length: Any) -> BatchEncoding:
            for name, value in (("text", first), ("text_pair", second)):
                if value is not None and not _valid_text(value):
                    kind = type(value).__name__
                    raise InputError(f"{name} must be a str, a list of str, or (text, pair) tuples; got {kind}.")
            pair = None if second is None else self._tokens_of(second, is_split_into_words, split_special_tokens)
            tokens = self._tokens_of(first, is_split_into_words, split_special_tokens)
            output = super(CTCTokenizer, self).__call__(
                tokens, pair, is_split_into_words=True, **{**options, "max_length": max_length}
            )
            batched = bool(tokens) and isinstance(tokens[0], (list, tuple))
            if "length" in output and batched:
                # The reference counts a batch row's length before padding (a single text's after).
                lengths = [sum(row.attention_mask) for row in output.encodings]
                output["length"] = BatchEncoding({"length": lengths}, tensor_type=return_tensors)["length"]
            elif isinstance(output.get("length"), list):
                output["length"] = output["length"][0]
            # ... and its keys come in this order, the mask added by padding.
            order = ["input_ids", "token_type_ids", "special_tokens_mask"]
            order += ["length", "attention_mask"] if batched else ["attention_mask", "length"]
            output.data = {key: output[key] for key in order if key in output}
            return output

        max_length = options.pop("max_length", None)
        encodings = None if text is None else encode(text, text_pair, max_length)
        if text_target is None:
            return encodings
        target_length = max_target_length if max_target_length is not None else max_length
        targets = encode(text_target, text_pair_target, target_length)
        if encodings is None:
            return targets
        encodings["labels"] = targets["input_ids"]
        return encodings

    # -- decoding -------------------------------------------------------------------------------

    def convert_tokens_to_string(
        self, tokens: list[str], group_tokens: bool = True, spaces_between_special_tokens: bool = False,
        output_char_offsets: bool = False, output_word_offsets: bool = False,
    ) -> dict[str, Any]:
        """CTC decoding of tokens: collapse repeats, drop the blank (pad), delimiter -> space."""
        if not tokens:
            return {"text": "", "char_offsets": [], "word_offsets": []}
        # Lazy runs, and offsets only when asked: an hours-long transcript has millions of frames.
        runs = ((token, sum(1 for _ in run)) for token, run in groupby(tokens)) if group_tokens else (
            (token, 1) for token in tokens
        )
        blank, delimiter, space = self.pad_token, self.word_delimiter_token, self.replace_word_delimiter_char
        with_offsets = output_char_offsets or output_word_offsets
        chars, char_offsets, end = [], [], 0
        for token, count in runs:
            start, end = end, end + count
            if token != blank:
                chars.append(space if token == delimiter else token)
                if with_offsets:
                    char_offsets.append({"char": chars[-1], "start_offset": start, "end_offset": end})
        text = (" " if spaces_between_special_tokens else "").join(chars).strip()
        if self.do_lower_case:
            text = text.lower()
        return {
            "text": text,
            "char_offsets": char_offsets if output_char_offsets else None,
            "word_offsets": _word_offsets(char_offsets, space) if output_word_offsets else None,
        }

    def decode(
        self, token_ids: Any, skip_special_tokens: bool = False, clean_up_tokenization_spaces: bool | None = None,
        output_char_offsets: bool = False, output_word_offsets: bool = False, group_tokens: bool = True,
        spaces_between_special_tokens: bool = False,
    ) -> Any:
        """Text of a CTC id sequence (e.g. the argmax of the logits). ``skip_special_tokens``
        removes special tokens (except the word delimiter) *before* repeats are collapsed."""
        token_ids = _to_python(token_ids)
        if isinstance(token_ids, (list, tuple)) and token_ids and isinstance(token_ids[0], (list, tuple)):
            options = (clean_up_tokenization_spaces, output_char_offsets, output_word_offsets, group_tokens)
            return [self.decode(row, skip_special_tokens, *options, spaces_between_special_tokens) for row in token_ids]
        tokens = self.convert_ids_to_tokens(token_ids if isinstance(token_ids, (list, tuple)) else [token_ids])
        if skip_special_tokens:
            special = set(self.all_special_tokens) - {self.word_delimiter_token}
            tokens = [token for token in tokens if token not in special]
        output = self.convert_tokens_to_string(
            tokens, group_tokens, spaces_between_special_tokens, output_char_offsets, output_word_offsets
        )
        text = self._clean_up(output["text"], clean_up_tokenization_spaces)
        if output_char_offsets or output_word_offsets:
            return CTCTokenizerOutput(text, output["char_offsets"], output["word_offsets"])
        return text

    def batch_decode(
        self, sequences: Any, skip_special_tokens: bool = False, clean_up_tokenization_spaces: bool | None = None,
        output_char_offsets: bool = False, output_word_offsets: bool = False, **kwargs: Any,
    ) -> Any:
        """Decode each row; with offsets, one :class:`CTCTokenizerOutput` holding lists."""
        options = (skip_special_tokens, clean_up_tokenization_spaces, output_char_offsets, output_word_offsets)
        decoded = [self.decode(row, *options, **kwargs) for row in sequences]
        if not (output_char_offsets or output_word_offsets):
            return decoded
        return CTCTokenizerOutput(
            text=[item.text for item in decoded],
            char_offsets=[item.char_offsets for item in decoded] if output_char_offsets else None,
            word_offsets=[item.word_offsets for item in decoded] if output_word_offsets else None,
        )

    # -- saving ---------------------------------------------------------------------------------

    def _config_to_save(self) -> dict[str, Any]:
        config = super()._config_to_save()
        for key in ("do_lower_case", "replace_word_delimiter_char", "target_lang", "word_delimiter_token"):
            if key in self.init_kwargs:
                config[key] = getattr(self, key)
        # Integer keys, so that the saved file lists them in numeric order as the reference's does.
        config["added_tokens_decoder"] = {index: token.__getstate__() for index, token in sorted(self._added.items())}
        if self._processor_class is not None:
            config["processor_class"] = self._processor_class
        return config

    def _files_to_save(self) -> dict[str, str]:
        files = {TOKENIZER_CONFIG_FILE: json_text(self._config_to_save()), VOCAB_FILE: json_text(self._raw_vocab)}
        beyond = {token.content: index for index, token in sorted(self._added.items()) if index >= self.vocab_size}
        if beyond:
            files[ADDED_TOKENS_FILE] = json_text(beyond)
        return files


def _word_offsets(char_offsets: list[dict[str, Any]], delimiter: str) -> list[dict[str, Any]]:
    """Words (runs of non-delimiter characters) with the offsets of their first and last character."""
    words: list[dict[str, Any]] = []
    for is_word, run in groupby(char_offsets, key=lambda offset: offset["char"] != delimiter):
        if is_word:
            run = list(run)
            word = "".join(offset["char"] for offset in run)
            words.append({"word": word, "start_offset": run[0]["start_offset"], "end_offset": run[-1]["end_offset"]})
    return words


def build_ctc_tokenizer(source: Source, class_name: str, init_kwargs: dict[str, Any]) -> CTCTokenizer:
    """The CTC tokenizer of a checkpoint from its vocab.json and the loader's settled options."""
    vocab_path = source.resolve(VOCAB_FILE, required=False)
    if vocab_path is None:
        raise TokenizerError(
            f"{source.describe()} names tokenizer class {class_name!r} but has no {VOCAB_FILE}, the character "
            f"vocabulary it is built from. Add the vocab.json saved with the model."
        )
    options = {key: value for key, value in init_kwargs.items() if key not in ("vocab_file", "tokenizer_config_file")}
    options["tokenizer_file"] = None  # as the reference records it, so saving drops it the same way
    try:
        return CTCTokenizer(vocab_path, class_name=class_name, **options)
    except TypeError as exc:
        raise ConfigError(f"The tokenizer options of {source.describe()} are invalid: {exc}") from exc


__all__ = ["CTCTokenizer", "CTCTokenizerOutput", "build_ctc_tokenizer"]
