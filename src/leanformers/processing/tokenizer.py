"""The tokenizer: one engine over ``tokenizers.Tokenizer`` (the Rust library) for every checkpoint.

A checkpoint's tokenizer class name selects settings (how to build the pipeline from a bare
vocabulary, which inputs to return), never a new code path. Outputs, special tokens, saving and the
printed form follow the reference's v5 tokenizers.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import inspect
import json
import logging
import operator
import os
import threading
import warnings
from collections.abc import Mapping
from itertools import chain
from typing import Any, NamedTuple, Sequence, Union

from tokenizers import AddedToken, Encoding, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece

from .. import registry, threads
from ..errors import ConfigError, InputError, TokenizerError
from ..hub import (
    IGNORED_LOAD_OPTIONS, SOURCE_OPTIONS, Source, atomic_write, is_offline, read_json, split_source_options,
)


logger = logging.getLogger(__name__)

# The reference's stand-ins for "no limit": a model_max_length above LARGE_INTEGER disables the
# implicit max_length of truncation=True / padding="max_length".
VERY_LARGE_INTEGER = int(1e30)
LARGE_INTEGER = int(1e20)

SPECIAL_TOKENS_ATTRIBUTES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")

TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"
ADDED_TOKENS_FILE = "added_tokens.json"
VOCAB_FILE = "vocab.txt"
CHAT_TEMPLATE_FILE = "chat_template.jinja"
# A SentencePiece model or a tiktoken ranks file: the generic class's source without a tokenizer.json.
MODEL_FILE = "tokenizer.model"

# The loading option by which ``SomeTokenizer.from_pretrained`` names its own class.
_FORCED_CLASS = "_tokenizer_class"

# The class shown (and saved) when a checkpoint's tokenizer.json is used as it stands because its
# class is not one this library knows how to rebuild; the reference uses the same name for it.
GENERIC_CLASS = "TokenizersBackend"


# The options a tokenizer.json's truncation / padding settings default (option: field).
_TRUNCATION_OPTIONS = {
    "max_length": "max_length", "truncation_side": "direction", "stride": "stride", "truncation_strategy": "strategy",
}
_PADDING_OPTIONS = {
    "pad_token": "pad_token", "pad_token_type_id": "pad_type_id", "padding_side": "direction", "max_length": "length",
    "pad_to_multiple_of": "pad_to_multiple_of",
}

_PADDING = ("longest", "max_length", "do_not_pad")
_TRUNCATION = ("longest_first", "only_first", "only_second", "do_not_truncate")
_NO_PAD = "do_not_pad"
_NO_TRUNCATE = "do_not_truncate"

# Loading options and file names the reference leaves out of a saved tokenizer_config.json.
_NOT_SAVED = (
    "add_bos_token", "add_eos_token", "added_tokens_decoder", "additional_special_tokens", "name_or_path",
    "special_tokens_map_file", "tokenizer_file", "vocab_file", "merges_file", "device_map", "slow_tokenizer_class",
    "files_loaded",
)

TextOrBatch = Union[str, Sequence[str], Sequence[Sequence[str]], Sequence[tuple]]

# The Rust pool keeps the size it starts with, so an explicit thread budget must be set before the
# first batch.
_pool_sized = False


class _Plan(NamedTuple):
    """What a call's options ask for, settled once per distinct set of options."""

    backend_state: tuple  # (truncation, padding) to configure on the Rust tokenizer
    pad_spec: dict | None  # the backend's enable_padding() arguments, when padding
    split: bool  # split_special_tokens
    tensor_type: str | None
    warn_if_long: bool


class CharSpan(NamedTuple):
    """A character span in the original string: ``start`` included, ``end`` excluded."""

    start: int
    end: int


class TokenSpan(NamedTuple):
    """A token span in an encoding: ``start`` included, ``end`` excluded."""

    start: int
    end: int


class BatchEncoding(dict):
    """The output of a tokenizer call: a dict of model inputs with the Rust encodings beside it.

    Keys read as attributes too (``enc.input_ids``); an integer index gives the
    ``tokenizers.Encoding`` of that batch row; ``word_ids`` / ``char_to_token`` and the like map
    between characters, words and tokens.
    """

    def __init__(
        self, data: Mapping[str, Any] | None = None, encoding: Encoding | Sequence[Encoding] | None = None,
        tensor_type: str | None = None, prepend_batch_axis: bool = False, n_sequences: int | None = None,
    ) -> None:
        super().__init__(data or {})
        self._encodings = [encoding] if isinstance(encoding, Encoding) else encoding
        self._n_sequences = n_sequences
        # Encoding.pad() arguments still owed to the encodings: tensors were padded in numpy, and
        # the Rust objects are only padded if someone looks at them.
        self._pending_pad: dict | None = None
        if tensor_type is not None:
            self.convert_to_tensors(tensor_type, prepend_batch_axis=prepend_batch_axis)

    def __getitem__(self, item: str | int | slice) -> Any:
        if isinstance(item, str):
            return dict.__getitem__(self, item)
        encodings = self.encodings
        if encodings is not None:
            return encodings[item]
        if isinstance(item, slice):
            return {key: value[item] for key, value in self.items()}
        raise KeyError(f"Use a key of {list(self.keys())}: this BatchEncoding has no Rust encodings to index.")

    def __getattr__(self, item: str) -> Any:
        if item.startswith("__"):
            raise AttributeError(item)
        try:
            return dict.__getitem__(self, item)
        except KeyError:
            raise AttributeError(f"'BatchEncoding' has no attribute or key {item!r}") from None

    @property
    def data(self) -> "BatchEncoding":
        """The contents (the reference keeps them in ``.data``; here the object is the dict)."""
        return self

    @data.setter
    def data(self, value: Mapping[str, Any]) -> None:
        dict.clear(self)
        dict.update(self, value)

    @property
    def encodings(self) -> list[Encoding] | None:
        """The ``tokenizers.Encoding`` of each row, or ``None`` when built from plain data."""
        pending = self.__dict__.get("_pending_pad")
        if pending is not None:
            for encoding in self._encodings:
                encoding.pad(**pending)
            self._pending_pad = None
        return self.__dict__.get("_encodings")

    @property
    def is_fast(self) -> bool:
        return self.__dict__.get("_encodings") is not None

    @property
    def n_sequences(self) -> int | None:
        """Sequences per row: 1 for single texts, 2 for pairs, ``None`` when unknown."""
        if self._n_sequences is None and self._encodings:
            self._n_sequences = self._encodings[0].n_sequences
        return self._n_sequences

    def _encoding(self, batch_index: int, what: str) -> Encoding:
        encodings = self.encodings
        if not encodings:
            raise InputError(f"{what}() needs Rust encodings; this BatchEncoding was built from plain data.")
        try:
            return encodings[batch_index]
        except IndexError:
            raise InputError(f"{what}(): batch index {batch_index} is out of range ({len(encodings)} rows).") from None

    def _lookup(self, what: str, batch_or_index: int, index: int | None, *sequence_index: int, span: Any = None) -> Any:
        """``Encoding.<what>`` of ``(index)`` in a batch of one, or of ``(batch_index, index)``."""
        batch_index, index = (0, batch_or_index) if index is None else (batch_or_index, index)
        encoding = self._encoding(batch_index, what)
        if index < 0 and what in ("token_to_sequence", "token_to_word"):
            index += len(encoding)  # as the reference: only these two count from the end
        result = getattr(encoding, what)(index, *sequence_index)
        return span(*result) if span is not None and result is not None else result

    def tokens(self, batch_index: int = 0) -> list[str]:
        return self._encoding(batch_index, "tokens").tokens

    def sequence_ids(self, batch_index: int = 0) -> list[int | None]:
        return self._encoding(batch_index, "sequence_ids").sequence_ids

    def word_ids(self, batch_index: int = 0) -> list[int | None]:
        return self._encoding(batch_index, "word_ids").word_ids

    def token_to_sequence(self, batch_or_token_index: int, token_index: int | None = None) -> int | None:
        return self._lookup("token_to_sequence", batch_or_token_index, token_index)

    def token_to_word(self, batch_or_token_index: int, token_index: int | None = None) -> int | None:
        return self._lookup("token_to_word", batch_or_token_index, token_index)

    def token_to_chars(self, batch_or_token_index: int, token_index: int | None = None) -> CharSpan | None:
        return self._lookup("token_to_chars", batch_or_token_index, token_index, span=CharSpan)

    def word_to_tokens(
        self, batch_or_word_index: int, word_index: int | None = None, sequence_index: int = 0
    ) -> TokenSpan | None:
        return self._lookup("word_to_tokens", batch_or_word_index, word_index, sequence_index, span=TokenSpan)

    def word_to_chars(
        self, batch_or_word_index: int, word_index: int | None = None, sequence_index: int = 0
    ) -> CharSpan | None:
        return self._lookup("word_to_chars", batch_or_word_index, word_index, sequence_index, span=CharSpan)

    def char_to_token(
        self, batch_or_char_index: int, char_index: int | None = None, sequence_index: int = 0
    ) -> int | None:
        return self._lookup("char_to_token", batch_or_char_index, char_index, sequence_index)

    def char_to_word(
        self, batch_or_char_index: int, char_index: int | None = None, sequence_index: int = 0
    ) -> int | None:
        return self._lookup("char_to_word", batch_or_char_index, char_index, sequence_index)

    def convert_to_tensors(self, tensor_type: str | None = None, prepend_batch_axis: bool = False) -> "BatchEncoding":
        """Turn every list value into a numpy array (``"np"``) or torch tensor (``"pt"``), in place."""
        if tensor_type is None:
            return self
        tensor_type = _check_tensor_type(tensor_type)
        for key, value in list(self.items()):
            dict.__setitem__(self, key, _as_tensor([value] if prepend_batch_axis else value, tensor_type, key))
        return self

    def to(self, device: Any, *, non_blocking: bool = False) -> "BatchEncoding":
        """Move every torch tensor to ``device`` (other values are left as they are)."""
        torch_device = type(device).__name__ == "device" and type(device).__module__.startswith("torch")
        if not (isinstance(device, (str, int)) or torch_device):
            logger.warning("BatchEncoding.to() takes a str, int or torch.device, got %r; nothing moved.", device)
            return self
        for key, value in list(self.items()):
            if callable(getattr(value, "to", None)):
                dict.__setitem__(self, key, value.to(device=device, non_blocking=non_blocking))
        return self


def _check_tensor_type(tensor_type: Any) -> str:
    value = getattr(tensor_type, "value", tensor_type)
    if value not in ("pt", "np"):
        raise InputError(
            f"return_tensors={tensor_type!r} is not supported: use 'pt' (torch tensors), 'np' (numpy arrays) "
            f"or None (Python lists)."
        )
    return value


def _as_tensor(value: Any, tensor_type: str, key: str) -> Any:
    """The reference's conversion rules: tensors of the asked kind stay, empty data is int64, ragged
    rows give numpy object arrays and are an error for torch."""
    import numpy as np

    rows = isinstance(value, (list, tuple)) and value and isinstance(value[0], (list, tuple, np.ndarray))
    try:
        if tensor_type == "np":
            if isinstance(value, np.ndarray):
                return value
            if rows and len({len(row) for row in value}) > 1:
                return np.asarray([np.asarray(row) for row in value], dtype=object)
            array = np.asarray(value)
            return array.astype(np.int64) if array.size == 0 else array
        import torch

        if isinstance(value, torch.Tensor):
            return value
        tensor = torch.from_numpy(np.array(value)) if rows and isinstance(value[0], np.ndarray) else torch.tensor(value)
        return tensor.long() if tensor.numel() == 0 else tensor
    except (ValueError, TypeError, RuntimeError) as exc:
        raise InputError(
            f"Cannot make a {tensor_type} tensor of {key!r} ({exc}). Pass padding=True (and truncation=True for "
            f"texts longer than the model allows) to get rows of one length, or return_tensors=None for lists."
        ) from exc


class PreTrainedTokenizer:
    """A tokenizer backed by a ``tokenizers.Tokenizer``, behaving like the reference's v5 tokenizers.

    Build one with :func:`load_tokenizer` / :meth:`from_pretrained`, or directly around a Rust
    tokenizer: ``PreTrainedTokenizer(tokenizer_object, cls_token="[CLS]", ...)``.
    """

    padding_side: str
    truncation_side: str
    # The inputs a call returns unless the checkpoint or the call says otherwise.
    model_input_names: Sequence[str] = ("input_ids", "attention_mask")
    # A class's option defaults, as its reference constructor has them (builders apply them).
    _defaults: Mapping[str, Any] = {}
    # The side a batch is padded on unless the checkpoint says (the reference's LLM classes pad left).
    _default_padding_side = "right"

    def __init__(self, tokenizer_object: Tokenizer, *, class_name: str = GENERIC_CLASS, **kwargs: Any) -> None:
        """Read the options as the reference's constructors do, so that ids, the printed form and the
        saved config all agree with it."""
        if not isinstance(tokenizer_object, Tokenizer):
            raise InputError(
                f"PreTrainedTokenizer wraps a tokenizers.Tokenizer, got {type(tokenizer_object).__name__}. "
                f"Use PreTrainedTokenizer.from_pretrained(path) to load a checkpoint."
            )
        object.__setattr__(self, "_backend", tokenizer_object)
        object.__setattr__(self, "_lock", threading.RLock())
        self.class_name = class_name
        self._settle_backend_defaults(kwargs)
        kwargs.setdefault("backend", "tokenizers")
        added_tokens_decoder = kwargs.get("added_tokens_decoder") or {}
        if "additional_special_tokens" in kwargs and "extra_special_tokens" not in kwargs:
            kwargs["extra_special_tokens"] = kwargs.pop("additional_special_tokens")
        self.init_kwargs = copy.deepcopy(kwargs)
        # Whether a text is framed by bos / eos when the post-processor is built from the flags; a
        # tokenizer.json's own post-processor is kept unless they are given when loading.
        self._add_bos_token = kwargs.pop("add_bos_token", False)
        self._add_eos_token = kwargs.pop("add_eos_token", False)
        self.name_or_path = str(kwargs.pop("name_or_path", ""))
        self.verbose = bool(kwargs.pop("verbose", False))
        self._read_special_tokens(kwargs)
        self._read_options(kwargs)
        self._register_added_tokens(added_tokens_decoder)

    def _settle_backend_defaults(self, kwargs: dict[str, Any]) -> None:
        """The padding/truncation a tokenizer.json holds become defaults of the options."""
        truncation = kwargs.pop("_json_truncation", None) or self._backend.truncation
        padding = kwargs.pop("_json_padding", None) or self._backend.padding
        for settings, options in ((truncation, _TRUNCATION_OPTIONS), (padding, _PADDING_OPTIONS)):
            for option, field in options.items() if settings else ():
                kwargs.setdefault(option, settings[field])
        # What the backend held on loading; saving writes it back, whatever calls did since.
        self._loaded_state = (truncation, padding)
        self._configure(self._loaded_state)

    def _read_special_tokens(self, kwargs: dict[str, Any]) -> None:
        """The named, extra and model-specific special tokens (taken out of ``kwargs``)."""
        self._special_tokens_map: dict[str, str | AddedToken | None] = dict.fromkeys(SPECIAL_TOKENS_ATTRIBUTES)
        self._extra_special_tokens: list[str | AddedToken] = []
        model_specific = kwargs.pop("model_specific_special_tokens", None) or {}
        if not isinstance(model_specific, dict):
            raise ConfigError("model_specific_special_tokens must map token names to tokens.")
        auto_specific: dict[str, Any] = {}
        for key in list(kwargs):
            value = kwargs[key]
            if key in SPECIAL_TOKENS_ATTRIBUTES:
                if kwargs.pop(key) is not None:
                    self._special_tokens_map[key] = _as_token(value, key)
            elif key == "extra_special_tokens":
                kwargs.pop(key)
                if isinstance(value, dict):
                    model_specific = {**value, **model_specific}
                elif isinstance(value, (list, tuple)):
                    self._extra_special_tokens = [_as_token(token, key) for token in value]
                elif value is not None:
                    raise ConfigError(f"extra_special_tokens must be a list or a dict of tokens, got {value!r}.")
            elif key.endswith("_token") and isinstance(value, (str, AddedToken)):
                auto_specific[key] = kwargs.pop(key)
        for key, value in {**auto_specific, **model_specific}.items():
            self._special_tokens_map[key] = _as_token(value, key)

    def _read_options(self, kwargs: dict[str, Any]) -> None:
        """Lengths, sides, input names and the other options, checked."""
        for side in ("padding_side", "truncation_side"):
            if kwargs.get(side, "right") not in ("right", "left"):
                raise ConfigError(f"{side} must be 'right' or 'left', got {kwargs[side]!r}.")
        max_len = kwargs.pop("model_max_length", kwargs.pop("max_len", None))
        if max_len is not None and (type(max_len) not in (int, float) or not max_len > 0):
            raise ConfigError(f"model_max_length must be a positive number of tokens, got {max_len!r}.")
        self.model_max_length = max_len if max_len is not None else VERY_LARGE_INTEGER
        self.padding_side = kwargs.pop("padding_side", self._default_padding_side)
        self.truncation_side = kwargs.pop("truncation_side", "right")
        input_names = kwargs.pop("model_input_names", type(self).model_input_names)
        if not isinstance(input_names, (list, tuple)) or not all(isinstance(name, str) for name in input_names):
            raise ConfigError(f"model_input_names must be a list of names such as ['input_ids'], got {input_names!r}.")
        self.model_input_names = list(input_names)
        self.clean_up_tokenization_spaces = kwargs.pop("clean_up_tokenization_spaces", False)
        # The reference's name for insisting on the WordPiece clean-up of BPE text.
        self.clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output = bool(
            kwargs.pop("clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output", False)
        )
        self.split_special_tokens = bool(kwargs.pop("split_special_tokens", False))
        self.chat_template = kwargs.pop("chat_template", None)
        if isinstance(self.chat_template, (list, tuple)):
            try:
                self.chat_template = {entry["name"]: entry["template"] for entry in self.chat_template}
            except (KeyError, TypeError) as exc:
                got = str(self.chat_template)[:200]
                raise ConfigError(f"chat_template as a list needs {{'name', 'template'}} entries, got {got}.") from exc
        elif self.chat_template is not None and not isinstance(self.chat_template, (str, dict)):
            raise ConfigError(f"chat_template must be a string, got {type(self.chat_template).__name__}.")
        self.backend = kwargs.pop("backend", "tokenizers")
        self._warned_too_long = False
        self._forget_call_settings()
        self._single_type_ids_zero: bool | None = None
        self._backend.encode_special_tokens = self.split_special_tokens
        self._backend_split = self.split_special_tokens

    def _register_added_tokens(self, added_tokens_decoder: Mapping[Any, Any]) -> None:
        """Make the saved added tokens and every special token added tokens of the backend, in the
        reference's order, so that new ones get the same ids."""
        saved = [token for _, token in sorted(added_tokens_decoder.items(), key=lambda item: int(item[0]))]
        by_content = {str(token): token for token in saved}  # of equal tokens, Rust keeps the last too
        for value in chain(self._special_tokens_map.values(), self._extra_special_tokens):
            if value is not None:
                by_content.setdefault(str(value), value)
        named = {str(value) for value in self._special_tokens_map.values() if value}
        tokens = [AddedToken(token, special=True) if isinstance(token, str) else token for token in by_content.values()]
        for token in tokens:
            token.special = token.special or str(token) in named
        self._backend.add_tokens(tokens)

    @classmethod
    def _settle_options(cls, init_kwargs: dict[str, Any]) -> None:
        """Fill the options a checkpoint leaves out with the class's defaults (so they are saved too)."""
        for key, default in cls._defaults.items():
            init_kwargs.setdefault(key, default)

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, **kwargs: Any) -> "PreTrainedTokenizer":
        """Load the tokenizer of a checkpoint folder or hub repository (see :func:`load_tokenizer`).

        On this base class the checkpoint says which class to build; on a class this library rebuilds
        (e.g. ``LlamaTokenizer``) that class is built over the checkpoint's files, as in the reference."""
        options, kwargs = split_source_options(kwargs)
        if cls.__name__ == GENERIC_CLASS or registry.tokenizer_builder(cls.__name__) is not None:
            kwargs[_FORCED_CLASS] = cls.__name__
        return load_tokenizer(Source.of(name_or_path, **options), **kwargs)

    # -- special tokens --------------------------------------------------------------------------

    def _set_special_token(self, name: str, value: str | AddedToken | None) -> None:
        if value is not None and not isinstance(value, (str, AddedToken)):
            raise InputError(f"{name} must be a str or tokenizers.AddedToken, got {type(value).__name__}.")
        self._special_tokens_map[name] = value
        # The pad token is part of the backend's padding settings.
        self._forget_call_settings()

    def __getattr__(self, name: str) -> Any:
        # Only reached for names not found normally: the special tokens (e.g. "pad_token",
        # "image_token") and their ids.
        if name.startswith("_"):
            raise AttributeError(name)
        tokens = self.__dict__.get("_special_tokens_map", {})
        base = name.removesuffix("_id")
        if base in tokens:
            value = tokens[base]
            return None if value is None else self.convert_tokens_to_ids(str(value)) if base != name else str(value)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    @property
    def extra_special_tokens(self) -> list[str]:
        return [str(token) for token in self._extra_special_tokens]

    @extra_special_tokens.setter
    def extra_special_tokens(self, value: Sequence[str | AddedToken] | None) -> None:
        if value is not None and not isinstance(value, (list, tuple)):
            raise InputError(f"extra_special_tokens must be a list of tokens, got {type(value).__name__}.")
        self._extra_special_tokens = [] if value is None else list(value)

    @property
    def extra_special_tokens_ids(self) -> list[int]:
        return self.convert_tokens_to_ids(self.extra_special_tokens)

    @property
    def special_tokens_map(self) -> dict[str, str]:
        """The named special tokens that are set, as strings."""
        return {name: str(value) for name, value in self._special_tokens_map.items() if value is not None}

    @property
    def all_special_tokens(self) -> list[str]:
        """Every special token (named, then extra), each once."""
        tokens = chain(self._special_tokens_map.values(), self._extra_special_tokens)
        return list(dict.fromkeys(str(token) for token in tokens if token is not None))

    @property
    def all_special_ids(self) -> list[int]:
        return self.convert_tokens_to_ids(self.all_special_tokens)

    @property
    def pad_token_type_id(self) -> int:
        return 0

    @property
    def add_bos_token(self) -> bool:
        return self.__dict__.get("_add_bos_token", False)

    @add_bos_token.setter
    def add_bos_token(self, value: bool) -> None:
        self._add_bos_token = value
        self.update_post_processor()

    @property
    def add_eos_token(self) -> bool:
        return self.__dict__.get("_add_eos_token", False)

    @add_eos_token.setter
    def add_eos_token(self, value: bool) -> None:
        self._add_eos_token = value
        self.update_post_processor()

    def update_post_processor(self) -> None:
        """Frame texts as ``add_bos_token`` / ``add_eos_token`` say (``<bos> A <eos> <bos> B <eos>``,
        the second text with type id 1), replacing whatever post-processor the backend had. As in the
        reference, a flag whose token is unset is turned off."""
        bos, eos = self.bos_token, self.eos_token
        if bos is None:
            self._add_bos_token = False
        if eos is None:
            self._add_eos_token = False
        add_bos, add_eos = self.add_bos_token, self.add_eos_token

        def framed(sequence: str, type_id: int) -> str:
            return " ".join(
                ([f"{bos}:{type_id}"] if add_bos else []) + [f"${sequence}:{type_id}"]
                + ([f"{eos}:{type_id}"] if add_eos else [])
            )

        specials = [(token, self.convert_tokens_to_ids(token)) for token, on in ((bos, add_bos), (eos, add_eos)) if on]
        try:
            self._backend.post_processor = processors.TemplateProcessing(
                single=framed("A", 0), pair=f"{framed('A', 0)} {framed('B', 1)}", special_tokens=specials
            )
        except Exception as exc:
            raise TokenizerError(f"Cannot frame texts with bos {bos!r} / eos {eos!r}: {exc}") from exc
        self._single_type_ids_zero = None

    def _set_post_processor(self, from_json: Any, explicit_bos_eos: bool) -> None:
        """tokenizer.json's post-processor when there is one and the loading options name neither
        flag; else the one ``add_bos_token`` / ``add_eos_token`` describe (the reference's rule)."""
        if from_json is not None and not explicit_bos_eos:
            self._backend.post_processor = from_json
            self._single_type_ids_zero = None
        else:
            self.update_post_processor()

    # -- vocabulary ------------------------------------------------------------------------------

    @property
    def backend_tokenizer(self) -> Tokenizer:
        """The Rust tokenizer. Whoever takes it may change it, so settings are re-checked after."""
        self._forget_call_settings()
        self._single_type_ids_zero = None
        self._backend_split = None
        return self._backend

    @property
    def decoder(self) -> Any:
        return self._backend.decoder

    @property
    def is_fast(self) -> bool:
        return True

    @property
    def vocab_size(self) -> int:
        """Size of the base vocabulary, without added tokens."""
        return self._backend.get_vocab_size(with_added_tokens=False)

    def __len__(self) -> int:
        return self._backend.get_vocab_size(with_added_tokens=True)

    def __bool__(self) -> bool:
        return True

    def get_vocab(self) -> dict[str, int]:
        return self._backend.get_vocab(with_added_tokens=True)

    @property
    def vocab(self) -> dict[str, int]:
        return self.get_vocab()

    @property
    def added_tokens_decoder(self) -> dict[int, AddedToken]:
        return self._backend.get_added_tokens_decoder()

    @property
    def added_tokens_encoder(self) -> dict[str, int]:
        return {token.content: index for index, token in sorted(self.added_tokens_decoder.items())}

    def get_added_vocab(self) -> dict[str, int]:
        return self.added_tokens_encoder

    def convert_tokens_to_ids(self, tokens: str | Sequence[str]) -> int | list[int] | None:
        """Ids of tokens; tokens outside the vocabulary map to the unknown token's id."""
        if isinstance(tokens, str):
            return self._token_to_id(tokens)
        if tokens is None:
            return None
        return [self._token_to_id(token) for token in tokens]

    def _token_to_id(self, token: str) -> int | None:
        index = self._backend.token_to_id(token)
        if index is None:
            unk = self._special_tokens_map.get("unk_token")
            return None if unk is None else self._backend.token_to_id(str(unk))
        return index

    def convert_ids_to_tokens(
        self, ids: int | Sequence[int], skip_special_tokens: bool = False
    ) -> str | list[str] | None:
        ids = _to_python(ids)
        if isinstance(ids, int):
            return self._backend.id_to_token(ids)
        skip = set(self.all_special_ids) if skip_special_tokens else ()
        return [self._backend.id_to_token(int(index)) for index in ids if int(index) not in skip]

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        decoder = self._backend.decoder
        return decoder.decode(tokens) if decoder is not None else " ".join(tokens)

    def add_tokens(self, new_tokens: Any, special_tokens: bool = False) -> int:
        """Add tokens (str / AddedToken, one or a list) to the vocabulary, skipping those present;
        returns how many were new."""
        if not new_tokens:
            return 0
        if not isinstance(new_tokens, (list, tuple)):
            new_tokens = [new_tokens]
        for token in new_tokens:
            if not isinstance(token, (str, AddedToken)):
                raise InputError(f"add_tokens takes str or tokenizers.AddedToken items, got {type(token).__name__}.")
        if special_tokens:
            return self._backend.add_special_tokens(list(new_tokens))
        return self._backend.add_tokens(list(new_tokens))

    def add_special_tokens(
        self,
        special_tokens_dict: Mapping[str, str | AddedToken | Sequence[str | AddedToken]],
        replace_extra_special_tokens: bool = True,
    ) -> int:
        """Set named special tokens (``{"pad_token": "[PAD]"}``) or ``extra_special_tokens``, adding
        any that are new to the vocabulary; returns how many were new."""
        if not special_tokens_dict:
            return 0
        special_tokens_dict = dict(special_tokens_dict)
        if "additional_special_tokens" in special_tokens_dict and not special_tokens_dict.get("extra_special_tokens"):
            special_tokens_dict["extra_special_tokens"] = special_tokens_dict.pop("additional_special_tokens")
        allowed = (*SPECIAL_TOKENS_ATTRIBUTES, "extra_special_tokens")
        to_add: list[AddedToken] = []
        for key, value in special_tokens_dict.items():
            if key not in allowed:
                raise InputError(f"{key!r} is not a special token name; use one of {sorted(allowed)}.")
            extra = key == "extra_special_tokens"
            tokens = value if extra else [value]
            if not isinstance(tokens, (list, tuple)) or not all(isinstance(t, (str, AddedToken)) for t in tokens):
                raise InputError(f"{key} must be {'a list of ' if extra else 'a '}str or AddedToken, got {value!r}.")
            tokens = [AddedToken(t, normalized=False, special=True) if isinstance(t, str) else t for t in tokens]
            if not extra:
                self._set_special_token(key, tokens[0])
            elif replace_extra_special_tokens and tokens:
                self._extra_special_tokens = tokens
            elif not replace_extra_special_tokens:
                tokens = [token for token in tokens if str(token) not in self.extra_special_tokens]
                self._extra_special_tokens.extend(tokens)
            to_add.extend(tokens)
        return self.add_tokens(to_add, special_tokens=True)

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return self._backend.num_special_tokens_to_add(pair)

    @property
    def max_len_single_sentence(self) -> int:
        return self.model_max_length - self.num_special_tokens_to_add(pair=False)

    @property
    def max_len_sentences_pair(self) -> int:
        return self.model_max_length - self.num_special_tokens_to_add(pair=True)

    def get_special_tokens_mask(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None, already_has_special_tokens: bool = False
    ) -> list[int]:
        """1 for each special token of an already formatted sequence, 0 for the others."""
        if not already_has_special_tokens or token_ids_1 is not None:
            raise InputError(
                "get_special_tokens_mask takes one already formatted sequence (already_has_special_tokens=True, "
                "no token_ids_1); for a new sequence, call the tokenizer with return_special_tokens_mask=True."
            )
        special = set(self.all_special_ids)
        return [1 if int(index) in special else 0 for index in token_ids_0]

    # -- settings --------------------------------------------------------------------------------

    # Changing one of these changes how calls are configured (see ``_plan``).
    _CALL_SETTINGS = frozenset({"padding_side", "truncation_side", "model_max_length", "split_special_tokens"})

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("padding_side", "truncation_side") and value not in ("right", "left"):
            raise InputError(f"{name} must be 'right' or 'left', got {value!r}.")
        if name in self._CALL_SETTINGS:
            self._forget_call_settings()
        base = name.removesuffix("_id")
        if base in self.__dict__.get("_special_tokens_map", ()):  # model-specific ones too, e.g. image_token
            if base != name and value is not None:
                value = self.convert_ids_to_tokens(value)
            self._set_special_token(base, value)
        else:
            object.__setattr__(self, name, value)

    def _forget_call_settings(self) -> None:
        """Drop the cached call plans and the record of the backend's state (settings changed)."""
        self.__dict__["_applied"] = None
        self.__dict__["_plans"] = {}

    @property
    def single_sequence_type_ids_are_zero(self) -> bool:
        """Whether every token of a single sequence gets type id 0 (so they need not be read back)."""
        if self._single_type_ids_zero is None:
            processor = self._backend.post_processor
            try:
                zero = processor is None or _single_type_ids_zero(json.loads(processor.__getstate__()))
            except Exception:
                zero = False
            self._single_type_ids_zero = zero
        return self._single_type_ids_zero

    # -- encoding --------------------------------------------------------------------------------

    def _strategies(
        self, padding: Any, truncation: Any, max_length: int | None, pad_to_multiple_of: int | None, verbose: bool
    ) -> tuple[str, str, int | None]:
        """(padding strategy, truncation strategy, max_length) with the reference's defaults."""
        if max_length is not None and padding is False and truncation is None:
            truncation = "longest_first"
        if verbose and padding is True and max_length is not None and truncation in (None, False, _NO_TRUNCATE):
            message = "max_length is ignored when padding=True and there is no truncation strategy; "
            warnings.warn(message + "to pad to max_length use padding='max_length'.", UserWarning, stacklevel=4)
        pad = _strategy(padding, _PADDING, "padding")
        trunc = _strategy(False if truncation is None else truncation, _TRUNCATION, "truncation")
        if max_length is None:
            # A model_max_length above LARGE_INTEGER means "no limit": nothing to pad or truncate to.
            if self.model_max_length > LARGE_INTEGER:
                pad, trunc = _NO_PAD if pad == "max_length" else pad, _NO_TRUNCATE
            elif pad == "max_length" or trunc != _NO_TRUNCATE:
                max_length = self.model_max_length
        else:
            max_length = _int_option(max_length, "max_length")
        if pad != _NO_PAD and (self.pad_token_id is None or self.pad_token_id < 0):
            raise InputError(
                "Padding was asked for, but this tokenizer has no padding token. Set one, e.g. tokenizer.pad_token = "
                "tokenizer.eos_token, or tokenizer.add_special_tokens({'pad_token': '[PAD]'})."
            )
        if pad_to_multiple_of is not None:
            pad_to_multiple_of = _int_option(pad_to_multiple_of, "pad_to_multiple_of", minimum=1)
            if trunc != _NO_TRUNCATE and pad != _NO_PAD and max_length is not None and max_length % pad_to_multiple_of:
                raise InputError(
                    f"Truncation and padding are both on, but the truncation length ({max_length}) is not a "
                    f"multiple of pad_to_multiple_of ({pad_to_multiple_of}). Pick a max_length that is."
                )
        return pad, trunc, max_length

    def _plan(self, options: tuple) -> _Plan:
        """What a call with these options asks of the backend and of the output; checked once and
        cached, since most programs call with the same few option sets over and over."""
        padding, truncation, max_length, stride, multiple, padding_side, return_tensors, verbose, split = options
        pad, trunc, max_length = self._strategies(padding, truncation, max_length, multiple, verbose)
        tensor_type = None if return_tensors is None else _check_tensor_type(return_tensors)
        if padding_side is not None and padding_side not in ("right", "left"):
            raise InputError(f"padding_side must be 'right' or 'left' (or None), got {padding_side!r}.")
        stride = _int_option(stride, "stride") if stride else 0
        truncating = pad_spec = None
        if trunc != _NO_TRUNCATE:
            truncating = dict(max_length=max_length, stride=stride, strategy=trunc, direction=self.truncation_side)
        if pad != _NO_PAD:
            pad_token = str(self._special_tokens_map["pad_token"])
            pad_spec = dict(
                length=max_length if pad == "max_length" else None, pad_to_multiple_of=multiple, pad_token=pad_token,
                pad_id=self._token_to_id(pad_token), pad_type_id=0,
                direction=padding_side if padding_side is not None else self.padding_side,
            )
        split = self.split_special_tokens if split is None else bool(split)
        # Tensors of a padded batch are padded in numpy, much cheaper than having Rust pad every
        # row and reading the padding back; lists come straight from padded encodings.
        backend_state = (truncating, pad_spec if tensor_type is None else None)
        plan = _Plan(backend_state, pad_spec, split, tensor_type, verbose and max_length is None)
        with contextlib.suppress(TypeError):  # an unhashable option value: fine, just not cached
            if len(self._plans) < 64:
                self._plans[options] = plan
        return plan

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_lock", None)  # a lock cannot be pickled or deep-copied; each copy makes its own
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__["_lock"] = threading.RLock()

    def _configure(self, state: tuple[dict | None, dict | None]) -> None:
        """Put the Rust tokenizer in the wanted (truncation, padding) state (caller holds the lock)."""
        backend = self._backend
        self._applied = None
        truncation, padding = state
        try:
            backend.no_truncation() if truncation is None else backend.enable_truncation(**truncation)
            backend.no_padding() if padding is None else backend.enable_padding(**padding)
        except Exception as exc:
            raise InputError(f"The tokenizer rejected these padding/truncation settings: {exc}") from exc
        self._applied = state

    def __call__(
        self, text: TextOrBatch | None = None, text_pair: TextOrBatch | None = None,
        text_target: TextOrBatch | None = None, text_pair_target: TextOrBatch | None = None, **options: Any,
    ) -> BatchEncoding:
        """Tokenize a text, a batch of texts, pairs of texts, or pre-split words, into model inputs.

        ``text_target`` (with ``text_pair_target``) are a sequence-to-sequence model's targets, encoded
        with the same options: their ids come back as ``labels`` beside the inputs, or, without
        ``text``, as the whole encoding. ``truncation`` defaults to ``None`` as in the reference:
        giving only ``max_length`` then truncates (longest first), while ``truncation=False`` keeps
        everything.
        """
        if text_target is None:
            if text_pair_target is not None:
                raise InputError("text_pair_target needs text_target (the first text of each target pair).")
            return self._encode_texts(text, text_pair, **options)
        targets = self._encode_targets(text_target, text_pair_target, options)
        if text is None:
            return targets
        encoded = self._encode_texts(text, text_pair, **options)
        encoded["labels"] = targets["input_ids"]
        return encoded

    def _encode_targets(self, text: TextOrBatch, pair: TextOrBatch | None, options: dict[str, Any]) -> BatchEncoding:
        """Targets' encoding; a tokenizer with a vocabulary of its own for targets (Marian) uses it."""
        return self._encode_texts(text, pair, **options)

    def _encode_texts(
        self, text: TextOrBatch | None = None, text_pair: TextOrBatch | None = None, *,
        add_special_tokens: bool = True, padding: bool | str = False, truncation: bool | str | None = None,
        max_length: int | None = None, stride: int = 0, is_split_into_words: bool = False,
        pad_to_multiple_of: int | None = None, padding_side: str | None = None, return_tensors: str | None = None,
        return_token_type_ids: bool | None = None, return_attention_mask: bool | None = None,
        return_overflowing_tokens: bool = False, return_special_tokens_mask: bool = False,
        return_offsets_mapping: bool = False, return_length: bool = False, verbose: bool = True,
        split_special_tokens: bool | None = None, **unexpected: Any,
    ) -> BatchEncoding:
        if unexpected:
            names = list(inspect.signature(PreTrainedTokenizer._encode_texts).parameters)[1:-1]
            accepted = ", ".join(names[:2] + ["text_target", "text_pair_target"] + names[2:])
            raise InputError(
                f"The tokenizer call got unexpected keyword argument(s) {sorted(unexpected)}. Accepted: {accepted}."
            )
        options = (
            padding, truncation, max_length, stride, pad_to_multiple_of, padding_side, return_tensors, verbose,
            split_special_tokens,
        )
        try:
            plan = self._plans[options]
        except (KeyError, TypeError):
            plan = self._plan(options)
        if type(text) is str and text_pair is None and not is_split_into_words:
            batch = pair = None
        else:
            batch, pair = self._batch(text, text_pair, is_split_into_words)
        rows = self._encode(plan, text, batch, pair, add_special_tokens, is_split_into_words)

        names = self.model_input_names
        want_types = ("token_type_ids" in names) if return_token_type_ids is None else return_token_type_ids
        want_mask = ("attention_mask" in names) if return_attention_mask is None else return_attention_mask
        wanted = (want_types, want_mask, return_special_tokens_mask, return_offsets_mapping, return_length)
        sample_of_row = None
        if return_overflowing_tokens:
            pieces, sample_of_row = [], []
            for index, encoding in enumerate(rows):
                pieces += [encoding, *encoding.overflowing]
                sample_of_row += [index] * (1 + len(encoding.overflowing))
            rows = pieces
        single = pair is None if batch is None else all(row.n_sequences == 1 for row in rows)
        zero_types = want_types and single and self.single_sequence_type_ids_are_zero
        if plan.tensor_type is not None and len(rows) == 1 and plan.pad_spec is None and not any(wanted[2:]):
            return self._one_row_tensors(rows[0], plan, want_types, want_mask, zero_types, sample_of_row)
        if plan.tensor_type is not None:
            return self._tensors(rows, plan, wanted, sample_of_row, zero_types)
        keep_batch = batch is not None or return_overflowing_tokens
        return self._lists(rows, plan, wanted, sample_of_row, zero_types, keep_batch)

    def _batch(self, text: Any, text_pair: Any, is_split_into_words: bool) -> tuple[list | None, Any]:
        """Check the text arguments: (the batch to encode, or None for one text; the pair of one text)."""
        if text is None:
            raise InputError("The tokenizer needs text: a string, a list of strings, or pre-split words.")
        for name, value in (("text", text), ("text_pair", text_pair)):
            if value is not None and not _valid_text(value):
                raise InputError(
                    f"{name} must be a str (one text), a list of str (a batch, or one pre-split text with "
                    f"is_split_into_words=True), a list of lists of str (pre-split batch) or a list of (text, pair) "
                    f"tuples; got {_describe(value)}."
                )
        if is_split_into_words:
            batched = isinstance(text, (list, tuple)) and len(text) > 0 and isinstance(text[0], (list, tuple))
        else:
            batched = isinstance(text, (list, tuple))
        if not batched:
            return None, text_pair if text_pair else None  # a falsy pair (e.g. "") means none, as in the reference
        if isinstance(text_pair, str):
            raise InputError("text is a batch, so text_pair must be a batch too: a list with one pair text per text.")
        if text_pair is not None:
            if len(text) != len(text_pair):
                raise InputError(f"text has {len(text)} items but text_pair has {len(text_pair)}; give one per text.")
            return list(zip(text, text_pair)), None
        if not text:
            raise InputError("text is an empty list: there is nothing to tokenize.")
        return text if isinstance(text, list) else list(text), None

    def _encode(
        self, plan: _Plan, text: Any, batch: list | None, pair: Any, add_special: bool, pretokenized: bool
    ) -> list[Encoding]:
        """The Rust encodings of one text (``batch`` None) or of a batch."""
        global _pool_sized
        if batch is not None and not _pool_sized:
            threads.size_tokenizer_pool()
            _pool_sized = True
        backend = self._backend
        # The Rust tokenizer holds padding/truncation as mutable state: configuring it and encoding
        # must be one step, or a thread calling with other settings could slip in between.
        with self._lock:
            if self._reworks_texts and not pretokenized:
                if batch is not None:
                    batch = self._prepare_texts(batch, add_special, plan)
                elif pair is not None:
                    text, pair = self._prepare_texts([(text, pair)], add_special, plan)[0]
                else:
                    text = self._prepare_texts([text], add_special, plan)[0]
            if plan.backend_state != self._applied:
                self._configure(plan.backend_state)
            if plan.split != self._backend_split:
                backend.encode_special_tokens = self._backend_split = plan.split
            try:
                if batch is not None:
                    return backend.encode_batch(batch, add_special_tokens=add_special, is_pretokenized=pretokenized)
                return [backend.encode(text, pair, is_pretokenized=pretokenized, add_special_tokens=add_special)]
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:
                # BaseException: the Rust side reports some bad settings as a panic, which is not an Exception.
                raise InputError(f"Could not tokenize the input: {exc}") from exc

    def _lists(
        self, rows: list[Encoding], plan: _Plan, wanted: tuple, sample_of_row: list[int] | None, zero_types: bool,
        keep_batch: bool, tensor_type: str | None = None,
    ) -> BatchEncoding:
        want_types, want_mask, want_special, want_offsets, want_length = wanted
        ids = [row.ids for row in rows]
        data: dict[str, Any] = {"input_ids": ids}
        if want_types:
            data["token_type_ids"] = [[0] * len(row) for row in ids] if zero_types else [row.type_ids for row in rows]
        if want_mask:
            masks = [row.attention_mask for row in rows] if plan.pad_spec else [[1] * len(row) for row in ids]
            data["attention_mask"] = masks
        if want_special:
            data["special_tokens_mask"] = [row.special_tokens_mask for row in rows]
        if want_offsets:
            data["offset_mapping"] = [row.offsets for row in rows]
        if want_length:
            padded_rows = plan.pad_spec and not self._length_counts_padding
            data["length"] = [sum(row.attention_mask) for row in rows] if padded_rows else [len(row) for row in ids]
        if sample_of_row is not None:
            data["overflow_to_sample_mapping"] = sample_of_row
        if plan.warn_if_long and not self._warned_too_long:
            self._warn_if_too_long(max(map(len, ids)))
        if not keep_batch:
            data = {key: (value[0] if value and isinstance(value[0], list) else value) for key, value in data.items()}
        return BatchEncoding(data, rows, tensor_type=tensor_type)

    def _one_row_tensors(
        self, row: Encoding, plan: _Plan, want_types: bool, want_mask: bool, zero_types: bool, sample_of_row: Any
    ) -> BatchEncoding:
        """The arrays of one unpadded text (the usual interactive call), without _tensors' batch work."""
        import numpy as np

        ids = np.array([row.ids], dtype=np.int64)
        if plan.warn_if_long and not self._warned_too_long:
            self._warn_if_too_long(ids.shape[1])
        data = {"input_ids": ids}
        if want_types:
            types = np.zeros(ids.shape, dtype=np.int64) if zero_types else np.array([row.type_ids], dtype=np.int64)
            data["token_type_ids"] = types
        if want_mask:  # empty() and fill(): np.ones and the *_like functions cost twice as much here
            data["attention_mask"] = mask = np.empty(ids.shape, dtype=np.int64)
            mask.fill(1)
        if sample_of_row is not None:
            data["overflow_to_sample_mapping"] = np.zeros(1, dtype=np.int64)
        if plan.tensor_type == "pt":
            from torch import from_numpy

            data = {key: from_numpy(value) for key, value in data.items()}
        return BatchEncoding(data, [row])

    def _tensors(
        self, rows: list[Encoding], plan: _Plan, wanted: tuple, sample_of_row: list[int] | None, zero_types: bool
    ) -> BatchEncoding:
        """Model inputs as arrays/tensors, padding unpadded rows in numpy."""
        import numpy as np

        want_types, want_mask, want_special, want_offsets, want_length = wanted
        ids = [row.ids for row in rows]
        lengths = [len(row) for row in ids]
        longest = max(lengths)
        if plan.warn_if_long and not self._warned_too_long:
            self._warn_if_too_long(longest)
        spec, target, row_pad = plan.pad_spec, longest, None
        if spec is not None:
            target = longest if spec["length"] is None else spec["length"]
            multiple = spec["pad_to_multiple_of"]
            if multiple and target % multiple:
                target += multiple - target % multiple
            row_pad = {key: spec[key] for key in ("direction", "pad_id", "pad_type_id", "pad_token")}
            row_pad["length"] = target
        if longest > target or target == 0 or (spec is None and min(lengths) != longest):
            # Ragged rows, or rows longer than a fixed padding length: the reference's exact path.
            for row in rows if row_pad else ():
                row.pad(**row_pad)
            return self._lists(rows, plan._replace(pad_spec=True), wanted, sample_of_row, False, True, plan.tensor_type)

        batch, total = len(rows), sum(lengths)
        shape = (batch, target)
        full = total == batch * target
        if not full:
            positions = np.arange(target)[None, :]
            lengths = np.array(lengths)[:, None]
            real = positions < lengths if spec["direction"] == "right" else positions >= target - lengths

        def padded(values: list, fill: int, *width: int) -> Any:
            """Rows of ints (or of ``width``-long pairs, flattened) as one array of ``shape``, padded with ``fill``."""
            flat = np.fromiter(chain.from_iterable(values), dtype=np.int64, count=total * (width[0] if width else 1))
            if full:
                return flat.reshape(*shape, *width)
            out = np.full((*shape, *width), fill, dtype=np.int64)
            out[real] = flat.reshape(total, *width)
            return out

        data: dict[str, Any] = {"input_ids": padded(ids, spec["pad_id"] if spec else 0)}
        if want_types:
            types = np.zeros(shape, dtype=np.int64) if zero_types else padded([row.type_ids for row in rows], 0)
            data["token_type_ids"] = types
        if want_mask:
            data["attention_mask"] = np.ones(shape, dtype=np.int64) if full else real.astype(np.int64)
        if want_special:
            data["special_tokens_mask"] = padded([row.special_tokens_mask for row in rows], 1)
        if want_offsets:
            data["offset_mapping"] = padded([chain.from_iterable(row.offsets) for row in rows], 0, 2)
        if want_length:
            if self._length_counts_padding:
                data["length"] = np.full(batch, target, dtype=np.int64)
            else:
                data["length"] = np.asarray([len(row) for row in ids], dtype=np.int64)
        if sample_of_row is not None:
            data["overflow_to_sample_mapping"] = np.asarray(sample_of_row, dtype=np.int64)
        if plan.tensor_type == "pt":
            from torch import from_numpy

            data = {key: from_numpy(value) for key, value in data.items()}
        output = BatchEncoding(data, rows)
        output._pending_pad = row_pad  # even full-length rows may hold shorter overflow pieces
        return output

    def _warn_if_too_long(self, longest: int) -> None:
        if longest > self.model_max_length and self.model_max_length != 0:
            logger.warning(
                "Token indices sequence length is longer than the specified maximum sequence length for this "
                "model (%d > %d). Running this sequence through the model will result in indexing errors",
                longest, self.model_max_length,
            )
            self._warned_too_long = True

    def encode(
        self, text: TextOrBatch, text_pair: TextOrBatch | None = None, add_special_tokens: bool = True,
        padding: bool | str = False, truncation: bool | str | None = None, max_length: int | None = None,
        stride: int = 0, padding_side: str | None = None, return_tensors: str | None = None, **kwargs: Any,
    ) -> Any:
        """The input ids of ``text`` (and ``text_pair``): a list, or a tensor with ``return_tensors``."""
        options = dict(add_special_tokens=add_special_tokens, padding=padding, truncation=truncation,
                       max_length=max_length, stride=stride, padding_side=padding_side, return_tensors=return_tensors)
        return self(text, text_pair, **options, **kwargs)["input_ids"]

    def apply_chat_template(self, conversation: Sequence[Any], **options: Any) -> Any:
        """Render a conversation (a list of ``{"role", "content"}`` messages, or a batch of them) with
        this tokenizer's chat template, as the reference does: ``tools``, ``documents``,
        ``chat_template`` (a template or a template name), ``add_generation_prompt``,
        ``continue_final_message``, ``tokenize`` (default True), ``return_dict`` (default True),
        ``padding`` / ``truncation`` / ``max_length`` / ``return_tensors``,
        ``return_assistant_tokens_mask``, ``tokenizer_kwargs``; other keywords reach the template."""
        from .chat import apply_chat_template

        return apply_chat_template(self, conversation, **options)

    def tokenize(
        self, text: TextOrBatch, pair: TextOrBatch | None = None, add_special_tokens: bool = False, **kwargs: Any
    ) -> list[str]:
        """The token strings of ``text`` (of its first item, for a batch)."""
        return self(text, pair, add_special_tokens=add_special_tokens, **kwargs).tokens()

    def pad(
        self, encoded_inputs: Mapping[str, Any] | Sequence[Mapping[str, Any]], padding: bool | str = True,
        max_length: int | None = None, pad_to_multiple_of: int | None = None, padding_side: str | None = None,
        return_attention_mask: bool | None = None, return_tensors: str | None = None, verbose: bool = True,
    ) -> BatchEncoding:
        """Pad already tokenized inputs (one, a dict of batches, or a list of dicts, as a data
        collator gets them) to the longest row or to ``max_length``.

        Only ``input_ids``, ``attention_mask``, ``token_type_ids`` and ``special_tokens_mask`` are
        padded, as in the reference; arrays and tensors come back as the same kind.
        """
        if isinstance(encoded_inputs, (list, tuple)) and encoded_inputs and isinstance(encoded_inputs[0], Mapping):
            encoded_inputs = {key: [row[key] for row in encoded_inputs] for key in encoded_inputs[0].keys()}
        main = self.model_input_names[0]
        if not isinstance(encoded_inputs, Mapping) or main not in encoded_inputs:
            got = list(encoded_inputs.keys()) if isinstance(encoded_inputs, Mapping) else _describe(encoded_inputs)
            raise InputError(f"pad() takes a dict of model inputs with {main!r} (or a list of such dicts), got {got}.")
        inputs = dict(encoded_inputs)
        required = inputs[main]
        if required is None or (hasattr(required, "__len__") and len(required) == 0):
            if return_attention_mask:
                inputs["attention_mask"] = []
            return BatchEncoding(inputs)
        first = required[0]
        if isinstance(first, (list, tuple)):
            first = next((row[0] for row in required if len(row)), first)
        if not isinstance(first, (int, list, tuple)):
            module = type(first).__module__
            if return_tensors is None:
                return_tensors = "pt" if module.startswith("torch") else "np" if module.startswith("numpy") else None
            inputs = {key: _to_python(value) for key, value in inputs.items()}

        pad, _, max_length = self._strategies(padding, None, max_length, pad_to_multiple_of, verbose)
        side = padding_side if padding_side is not None else self.padding_side
        if side not in ("right", "left"):
            raise InputError(f"padding_side must be 'right' or 'left', got {side!r}.")
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names
        single = not isinstance(inputs[main][0], (list, tuple))
        inputs = {key: [value] if single else list(value) for key, value in inputs.items()}
        lengths = [len(row) for row in inputs[main]]
        for key, value in inputs.items():
            if len(value) != len(lengths):
                raise InputError(f"pad(): {key!r} has {len(value)} rows but {main!r} has {len(lengths)}.")
        if return_attention_mask and "attention_mask" not in inputs:
            inputs["attention_mask"] = [[1] * length for length in lengths]
        target = max(lengths) if pad == "longest" else max_length
        if pad != _NO_PAD and target is not None:
            if pad_to_multiple_of and target % pad_to_multiple_of:
                target += pad_to_multiple_of - target % pad_to_multiple_of
            fills = {main: self.pad_token_id, "token_type_ids": self.pad_token_type_id, "special_tokens_mask": 1}
            if return_attention_mask:
                fills["attention_mask"] = 0
            for key in fills.keys() & inputs.keys():
                fillers = ([fills[key]] * (target - length) for length in lengths)
                inputs[key] = [
                    row if not filler else [*row, *filler] if side == "right" else [*filler, *row]
                    for row, filler in zip(inputs[key], fillers)
                ]
        if single:
            inputs = {key: value[0] for key, value in inputs.items()}
        return BatchEncoding(inputs, tensor_type=return_tensors)

    # -- decoding --------------------------------------------------------------------------------

    def decode(
        self, token_ids: Any, skip_special_tokens: bool = False, clean_up_tokenization_spaces: bool | None = None,
        **kwargs: Any,
    ) -> str | list[str]:
        """Text of a sequence of ids, or a list of texts for a batch of sequences."""
        if set(kwargs) - {"use_source_tokenizer"}:  # the accepted one changes nothing here
            raise InputError(f"Unexpected argument(s) {sorted(kwargs)} for decode.")
        token_ids = _to_python(token_ids)
        batched = isinstance(token_ids, (list, tuple)) and bool(token_ids) and isinstance(token_ids[0], (list, tuple))
        if isinstance(token_ids, int):
            token_ids = [token_ids]
        elif isinstance(token_ids, Mapping):
            token_ids = token_ids["input_ids"]
        try:
            texts = self._decode_rows([list(ids) for ids in token_ids] if batched else [token_ids], skip_special_tokens)
        except Exception as exc:
            message = f"Could not decode {_describe(token_ids)}: {exc}. Ids must be non-negative integers."
            raise InputError(message) from exc
        texts = [self._clean_up(self._finish_decoded(text), clean_up_tokenization_spaces) for text in texts]
        return texts if batched else texts[0]

    def _decode_rows(self, rows: list[list[int]], skip_special_tokens: bool) -> list[str]:
        """The text of each id sequence, before the clean-up."""
        if len(rows) == 1:
            return [self._backend.decode(rows[0], skip_special_tokens)]
        return self._backend.decode_batch(rows, skip_special_tokens)

    def _finish_decoded(self, text: str) -> str:
        """The backend's decoded text as the class returns it (a class may rework it, e.g. CLIP's
        end-of-word marks); before the clean-up, as in the reference."""
        return text

    # Whether ``return_length`` counts the padding (the reference's Rust-backed classes) or not (its
    # Python ones, e.g. SigLIP's).
    _length_counts_padding = True

    # Whether the class reworks texts before the backend sees them (``_prepare_texts``).
    _reworks_texts = False

    def _prepare_texts(self, batch: list[Any], add_special_tokens: bool, plan: _Plan) -> list[Any]:
        """The batch's texts (or (text, pair) tuples) as the backend must see them for a call planned
        as ``plan`` (called holding the lock; it may use the backend in another state)."""
        return batch

    def batch_decode(
        self, sequences: Any, skip_special_tokens: bool = False, clean_up_tokenization_spaces: bool | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Texts of a batch of id sequences (a single sequence gives a list of one text)."""
        result = self.decode(sequences, skip_special_tokens, clean_up_tokenization_spaces, **kwargs)
        return [result] if isinstance(result, str) else result

    def _clean_up(self, text: str, clean_up: bool | None) -> str:
        if not (self.clean_up_tokenization_spaces if clean_up is None else clean_up):
            return text
        bpe = type(self._backend.model).__name__ == "BPE"
        if bpe and not self.clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output:
            # The clean-up rules are written for WordPiece and would delete real spaces of BPE text.
            if not self.__dict__.get("_warned_bpe_clean_up"):
                self._warned_bpe_clean_up = True
                logger.warning("Ignoring clean_up_tokenization_spaces=True for a BPE tokenizer.")
            return text
        return clean_up_tokenization(text)

    # -- saving ----------------------------------------------------------------------------------

    def save_pretrained(
        self, save_directory: str | os.PathLike, filename_prefix: str | None = None, **kwargs: Any
    ) -> tuple[str, ...]:
        """Write the tokenizer's files (each atomically) so that this library and the reference
        load the same tokenizer back; returns the paths written."""
        if kwargs.pop("push_to_hub", False):
            raise TokenizerError("save_pretrained cannot push to the hub; save to a folder and upload it yourself.")
        if set(kwargs) - {"legacy_format", "save_jinja_files"}:  # the accepted ones change nothing here
            raise InputError(f"Unexpected argument(s) {sorted(kwargs)} for save_pretrained.")
        if os.path.isfile(save_directory):
            raise InputError(f"save_pretrained needs a folder, but {os.fspath(save_directory)!r} is a file.")
        os.makedirs(save_directory, exist_ok=True)
        prefix = f"{filename_prefix}-" if filename_prefix else ""
        files = {os.path.join(save_directory, prefix + name): text for name, text in self._files_to_save().items()}
        for path, text in files.items():
            atomic_write(path, text)
        return tuple(files)

    def _files_to_save(self) -> dict[str, str]:
        """File name -> contents: tokenizer_config.json, the chat template, tokenizer.json."""
        config, template, files = self._config_to_save(), self.chat_template, {}
        if isinstance(template, str):
            config.pop("chat_template", None)
            files[CHAT_TEMPLATE_FILE] = template
        elif isinstance(template, dict):
            config["chat_template"] = [{"name": name, "template": text} for name, text in template.items()]
        files = {TOKENIZER_CONFIG_FILE: json_text(config), **files}
        # Save the padding/truncation the checkpoint came with, not whatever the last call left.
        with self._lock:
            self._configure(self._loaded_state)
            files[TOKENIZER_FILE] = self._backend.to_str(pretty=True)
        return files

    # Saving writes the live value of these attributes over the loaded config, as the reference
    # does for every config key that is also an attribute of its tokenizer.
    _LIVE_ATTRIBUTES = frozenset({
        "model_max_length", "padding_side", "truncation_side", "model_input_names", "clean_up_tokenization_spaces",
        "split_special_tokens", "chat_template", "backend", "verbose", "pad_token_type_id", "extra_special_tokens",
        "clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output",
    })
    # Set only on tokenizers built from a vocabulary (the reference's BertTokenizer and byte-level
    # BPE classes have them).
    _BUILDER_ATTRIBUTES = frozenset(
        {"do_lower_case", "tokenize_chinese_chars", "strip_accents", "add_prefix_space", "trim_offsets",
         "use_default_system_prompt"}
    )

    def _config_to_save(self) -> dict[str, Any]:
        config = copy.deepcopy(self.init_kwargs)
        for key in set(self.init_kwargs) | {"model_max_length"}:
            if key in self._special_tokens_map:
                value = self._special_tokens_map[key]
                config[key] = None if value is None else str(value)
            elif key in self._LIVE_ATTRIBUTES or (key in self._BUILDER_ATTRIBUTES and key in self.__dict__):
                config[key] = getattr(self, key)
        config.update(self.special_tokens_map)
        if self._extra_special_tokens:
            config["extra_special_tokens"] = self.extra_special_tokens
        config = _tokens_json(config, to_json=True)
        for key in _NOT_SAVED:
            config.pop(key, None)
        config["tokenizer_class"] = self.class_name
        return config

    # -- printing --------------------------------------------------------------------------------

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


# The spaces a WordPiece-style decode leaves before punctuation and contractions.
_CLEAN_UP = (
    (" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"),
    (" n't", "n't"), (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"),
)


def clean_up_tokenization(text: str) -> str:
    """Undo the spaces a WordPiece-style decode leaves before punctuation and contractions."""
    for spaced, joined in _CLEAN_UP:
        text = text.replace(spaced, joined)
    return text


def _valid_text(value: Any, depth: int = 0) -> bool:
    """The reference's rule: str leaves under at most three list levels, judged by the first element
    of each level only (a wrong element further on is caught when the Rust tokenizer reads it)."""
    if isinstance(value, str):
        return True
    if depth == 3 or not isinstance(value, (list, tuple)):
        return False
    return not value or _valid_text(value[0], depth + 1)


def _strategy(value: Any, choices: tuple[str, ...], name: str) -> str:
    """A padding/truncation argument as a strategy: True is the first choice, False the last."""
    if value is True or value is False:
        return choices[0] if value else choices[-1]
    value = getattr(value, "value", value)  # the reference's enums hash by name, so use the value
    if value not in choices:
        others = ", ".join(map(repr, choices[:-1]))
        raise InputError(f"{name}={value!r} is not valid: use True/{others}, or False/{choices[-1]!r}.")
    return value


def json_text(data: Any) -> str:
    """A config file's text, laid out as the reference writes it."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _describe(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        inner = f" of {type(value[0]).__name__}" if value else " (empty)"
        return f"{type(value).__name__}{inner}"
    return type(value).__name__


def _int_option(value: Any, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not hasattr(type(value), "__index__"):
        raise InputError(f"{name} must be an integer, got {value!r}.")
    if operator.index(value) < minimum:
        raise InputError(f"{name} must be at least {minimum}, got {value}.")
    return operator.index(value)


def _to_python(value: Any) -> Any:
    """Ids given as numpy arrays, torch tensors or numpy scalars, as plain Python ints/lists."""
    if isinstance(value, (int, str)):
        return value
    if isinstance(value, (list, tuple)):
        if value and isinstance(value[0], int):
            return value
        return [_to_python(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _to_python(item) for key, item in value.items()}
    return value.tolist() if callable(getattr(value, "tolist", None)) else value


def _as_token(value: Any, name: str) -> str | AddedToken:
    if isinstance(value, (str, AddedToken)):
        return value
    if isinstance(value, dict) and "content" in value:
        fields = {key: item for key, item in value.items() if key != "__type"}
        try:
            return AddedToken(**fields)
        except TypeError as exc:
            raise ConfigError(f"{name} has an invalid token description {value!r}: {exc}") from exc
    raise ConfigError(f"Special token {name} must be a str or a token description, got {value!r}.")


def _tokens_json(value: Any, to_json: bool) -> Any:
    """A saved config's ``{"__type": "AddedToken", ...}`` entries as AddedToken objects, or back."""
    if to_json and isinstance(value, AddedToken):
        return {**value.__getstate__(), "__type": "AddedToken"}
    if isinstance(value, dict):
        if not to_json and value.get("__type") == "AddedToken":
            return _as_token(value, "token")
        return {key: _tokens_json(item, to_json) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_tokens_json(item, to_json) for item in value]
    return value


def _single_type_ids_zero(state: dict[str, Any]) -> bool:
    """Whether a post-processor (its JSON state) gives type id 0 to every token of a single sequence."""
    kind = state.get("type")
    if kind == "TemplateProcessing":
        return all(next(iter(piece.values()), {}).get("type_id", 0) == 0 for piece in state.get("single", []))
    if kind == "Sequence":
        return all(_single_type_ids_zero(sub) for sub in state.get("processors", []))
    return kind in ("BertProcessing", "RobertaProcessing", "ByteLevel")


def _json_settings(data: dict[str, Any], tokenizer_file: str) -> tuple[dict | None, dict | None]:
    """tokenizer.json's (truncation, padding), read as the reference does: by the Rust library, from
    the file's settings over an empty model."""
    minimal = {
        "version": "1.0", "truncation": data.get("truncation"), "padding": data.get("padding"), "added_tokens": [],
        "normalizer": None, "pre_tokenizer": None, "post_processor": None, "decoder": None,
        "model": {"type": "WordLevel", "vocab": {}, "unk_token": "[UNK]"},
    }
    try:
        settings = Tokenizer.from_str(json.dumps(minimal))
    except Exception as exc:
        raise TokenizerError(f"{tokenizer_file!r} has invalid truncation or padding settings: {exc}") from exc
    return settings.truncation, settings.padding


def _json_post_processor(data: dict[str, Any], tokenizer_file: str) -> Any:
    """tokenizer.json's post-processor as a Rust object (None when it has none)."""
    minimal = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
        "pre_tokenizer": None, "post_processor": data.get("post_processor"), "decoder": None,
        "model": {"type": "WordLevel", "vocab": {}, "unk_token": "[UNK]"},
    }
    try:
        return Tokenizer.from_str(json.dumps(minimal)).post_processor
    except Exception as exc:
        raise TokenizerError(f"{tokenizer_file!r} has an invalid post_processor: {exc}") from exc


def _class_name(
    source: Source, tokenizer_config: dict[str, Any], tokenizer_type: str | None, config: Any,
    tokenizer_file: str | None,
) -> str | None:
    """The tokenizer class to build, by the reference's AutoTokenizer rules.

    The class named in tokenizer_config.json (else in config.json) is used, except that a model type
    registered with the generic class, or one whose hub configs are known to name the wrong class,
    gets its registered class; a "LlamaTokenizer" whose tokenizer.json is byte-level (Llama-3 style
    files) is used as that file stands. With no class named, the model type's registered class.
    """
    known = registry.DEFAULT_TOKENIZER
    if tokenizer_type is not None:
        if tokenizer_type not in known:
            raise TokenizerError(f"tokenizer_type={tokenizer_type!r} is unknown; known: {', '.join(sorted(known))}.")
        return known[tokenizer_type]
    if config is None:
        path = source.resolve("config.json", required=False)
        config = read_json(path, "config.json") if path else {}
    read = config.get if isinstance(config, dict) else lambda key: getattr(config, key, None)
    name = tokenizer_config.get("tokenizer_class") or read("tokenizer_class")
    if name is not None and not isinstance(name, str):
        raise ConfigError(f"tokenizer_class of {source.describe()} must be a string, got {name!r}.")
    model_type = read("model_type")
    registered = known.get(model_type) if isinstance(model_type, str) else None
    if name is None:
        return registered
    name = name.removesuffix("Fast")
    wrong_on_hub = model_type in registry.HUB_TOKENIZER_CLASS_UNRELIABLE
    if name == "LlamaTokenizer" and not wrong_on_hub and tokenizer_file is not None and _is_byte_level(tokenizer_file):
        return GENERIC_CLASS
    if registered is not None and registered != name and (registered == GENERIC_CLASS or wrong_on_hub):
        return registered
    return name


def _is_byte_level(tokenizer_file: str) -> bool:
    """Whether a tokenizer.json has a byte-level step anywhere (the reference's own test: the text)."""
    try:
        with open(tokenizer_file, encoding="utf-8") as handle:
            return '"ByteLevel"' in handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenizerError(f"Could not read {tokenizer_file!r}: {exc}") from exc


def _generic_class(source: Source, class_name: str | None, config: dict[str, Any], tokenizer_file: Any) -> str:
    """A class this library does not rebuild is used as its tokenizer.json (or tiktoken file) stands,
    under the reference's generic name; without one there is nothing to use."""
    where = source.describe()
    if tokenizer_file is not None:
        if class_name is not None:
            logger.info("%s names tokenizer class %r, which leanformers does not rebuild; using its tokenizer file.",
                        where, class_name)
        return GENERIC_CLASS
    supported = ", ".join(sorted({name.removesuffix("Fast") for name in registry.TOKENIZERS}))
    if class_name is None:
        raise TokenizerError(
            f"Cannot tell which tokenizer {where} needs: it has no tokenizer.json, its tokenizer_config.json names "
            f"no tokenizer_class, and no config.json model_type maps to one. Add \"tokenizer_class\" (one of: "
            f"{supported}) to tokenizer_config.json."
        )
    remote = " (its auto_map code is never run)" if "auto_map" in config else ""
    raise TokenizerError(
        f"{where} asks for tokenizer class {class_name!r}{remote}, which leanformers cannot build without a "
        f"tokenizer.json. Supported classes: {supported}. Provide a tokenizer.json (any tokenizers-library file "
        f"works) or use one of those classes."
    )


def load_tokenizer(source: Source | str | os.PathLike, **kwargs: Any) -> PreTrainedTokenizer:
    """Build the tokenizer of a checkpoint (a local folder, or a hub repository in the cache).

    ``tokenizer.json`` is used when present, else ``vocab.txt``; ``tokenizer_config.json`` and
    ``special_tokens_map.json`` settle the options, and keyword arguments override them. Nothing
    from the checkpoint is ever executed: an ``auto_map`` is ignored.
    """
    if not isinstance(source, Source):
        options, kwargs = split_source_options(kwargs)
        source = Source.of(source, **options)
    for key in IGNORED_LOAD_OPTIONS + SOURCE_OPTIONS:
        kwargs.pop(key, None)
    tokenizer_type, model_config = kwargs.pop("tokenizer_type", None), kwargs.pop("config", None)
    forced_class = kwargs.pop(_FORCED_CLASS, None)

    config_path = source.resolve(TOKENIZER_CONFIG_FILE, required=False)
    tokenizer_config = read_json(config_path, TOKENIZER_CONFIG_FILE) if config_path else {}
    tokenizer_file = source.resolve(TOKENIZER_FILE, required=False)
    if forced_class is not None:
        class_name = forced_class
    else:
        class_name = _class_name(source, tokenizer_config, tokenizer_type, model_config, tokenizer_file)
    builder = registry.tokenizer_builder(class_name)
    model_file = None
    if builder is None:
        # Without a tokenizer.json, the generic class is built from tokenizer.model (tiktoken or SentencePiece).
        model_file = None if tokenizer_file else source.resolve(MODEL_FILE, required=False)
        class_name = _generic_class(source, class_name, tokenizer_config, tokenizer_file or model_file)

    init_kwargs = _init_kwargs(source, tokenizer_config, tokenizer_file, kwargs)
    # Other builders are "module:function", imported on first use: this module never imports the
    # modules that build on it. One that takes ``tokenizer_json`` gets the parsed file.
    build = None
    if builder not in (None, "wordpiece"):
        module, _, function = builder.partition(":")
        build = getattr(importlib.import_module(module), function)
    takes_json = builder == "wordpiece" or (
        build is not None and "tokenizer_json" in inspect.signature(build).parameters
    )
    # Parsed once, for the vocabulary and the added tokens.
    data = read_json(tokenizer_file, TOKENIZER_FILE, TokenizerError) if tokenizer_file and takes_json else None
    init_kwargs["added_tokens_decoder"] = _added_tokens(source, init_kwargs, kwargs, tokenizer_file, data)
    init_kwargs = _tokens_json(init_kwargs, to_json=False)
    by_content = {str(token): token for token in init_kwargs["added_tokens_decoder"].values()}
    for key in SPECIAL_TOKENS_ATTRIBUTES:
        if init_kwargs.get(key) is not None:
            init_kwargs[key] = by_content.get(str(init_kwargs[key]), init_kwargs[key])
    offline = source.local_files_only or is_offline()
    init_kwargs.update(name_or_path=source.name_or_path, is_local=source.is_local, local_files_only=offline)

    if builder == "wordpiece":
        return _build_wordpiece(source, class_name, init_kwargs, tokenizer_file, data)
    if build is not None:
        return build(source, class_name, init_kwargs, **({"tokenizer_json": data} if takes_json else {}))
    if model_file is not None:
        # A tokenizer.model alone: tiktoken's format (Llama-3) or a SentencePiece model. Those builders
        # build on this module, so they are imported by name, like the builders above.
        tiktoken = importlib.import_module(f"{__package__}.tiktoken_bpe")
        if tiktoken.is_tiktoken_file(model_file):
            return tiktoken.build_tiktoken_tokenizer(model_file, init_kwargs)
        sentencepiece = importlib.import_module(f"{__package__}.sentencepiece_bpe")
        return sentencepiece.build_generic_sentencepiece_tokenizer(model_file, init_kwargs)
    return _build_generic(tokenizer_file, init_kwargs)


def _init_kwargs(
    source: Source, tokenizer_config: dict[str, Any], tokenizer_file: str | None, kwargs: dict[str, Any]
) -> dict[str, Any]:
    """The constructor options: the saved config, the chat template file, then the caller's options."""
    dropped = {"tokenizer_class", "init_inputs", "auto_map"}
    if tokenizer_file is not None:  # its post-processor decides the bos/eos tokens
        dropped |= {"add_bos_token", "add_eos_token"}
    init_kwargs = {key: value for key, value in tokenizer_config.items() if key not in dropped}
    if "chat_template" not in kwargs:
        template_path = source.resolve(CHAT_TEMPLATE_FILE, required=False)
        if template_path is not None:
            with open(template_path, encoding="utf-8") as handle:
                init_kwargs["chat_template"] = handle.read()
    init_kwargs.update(kwargs)
    if "additional_special_tokens" in init_kwargs and not init_kwargs.get("extra_special_tokens"):
        init_kwargs["extra_special_tokens"] = init_kwargs.pop("additional_special_tokens")

    # Other "*_token" options are model-specific special tokens (e.g. image_token).
    named = [key for key in init_kwargs if key.endswith("_token") and key not in SPECIAL_TOKENS_ATTRIBUTES]
    specific = {key: init_kwargs.pop(key) for key in named if isinstance(init_kwargs[key], (str, AddedToken))}
    if isinstance(init_kwargs.get("extra_special_tokens"), dict):
        specific.update(init_kwargs.pop("extra_special_tokens"))
    if specific:
        init_kwargs["model_specific_special_tokens"] = specific
    return init_kwargs


def _added_tokens(
    source: Source, init_kwargs: dict[str, Any], user_kwargs: dict[str, Any], tokenizer_file: str | None, data: Any
) -> dict[int, AddedToken]:
    """The added tokens to register, by id.

    A saved ``added_tokens_decoder`` is authoritative; older checkpoints spread the same facts over
    ``special_tokens_map.json``, ``added_tokens.json`` and tokenizer.json's ``added_tokens``.
    """
    saved = init_kwargs.get("added_tokens_decoder")
    if saved is not None:
        if not isinstance(saved, dict):
            raise ConfigError(f"{source.describe()}: added_tokens_decoder must be an object.")
        decoder = {}
        for index, token in saved.items():
            token = _as_token(token, f"added_tokens_decoder[{index}]")
            if isinstance(token, str) or not str(index).isdigit():
                raise ConfigError(f"added_tokens_decoder: {index!r} -> {token!r} is not an integer id and a token.")
            decoder[int(index)] = token
        return decoder

    map_path = source.resolve(SPECIAL_TOKENS_MAP_FILE, required=False)
    for key, value in (read_json(map_path, SPECIAL_TOKENS_MAP_FILE) if map_path else {}).items():
        if user_kwargs.get(key):
            continue
        if key in ("extra_special_tokens", "additional_special_tokens") and isinstance(value, list):
            existing = list(init_kwargs.get("extra_special_tokens") or [])
            for token in value:
                token = _as_token({**token, "special": True}, key) if isinstance(token, dict) else token
                if token not in existing:
                    existing.append(token)
            init_kwargs["extra_special_tokens"] = existing
        else:
            if isinstance(value, dict) and "__type" not in value:  # a bare description: a special token
                value = _as_token({**value, "special": True}, key)
            init_kwargs[key] = value
    if isinstance(init_kwargs.get("extra_special_tokens"), dict):
        init_kwargs.setdefault("model_specific_special_tokens", {}).update(init_kwargs.pop("extra_special_tokens"))

    decoder = {}
    added_path = source.resolve(ADDED_TOKENS_FILE, required=False)
    if added_path is not None:
        special = {str(init_kwargs[key]) for key in SPECIAL_TOKENS_ATTRIBUTES if init_kwargs.get(key)}
        special.update(str(token) for token in (init_kwargs.get("extra_special_tokens") or []))
        for content, index in read_json(added_path, ADDED_TOKENS_FILE).items():
            decoder[int(index)] = AddedToken(content, normalized=content not in special, special=content in special)
    if tokenizer_file is not None:
        entries = (data or read_json(tokenizer_file, TOKENIZER_FILE, TokenizerError)).get("added_tokens") or []
        if not isinstance(entries, list) or not all(isinstance(e, dict) and type(e.get("id")) is int for e in entries):
            raise TokenizerError(f"{tokenizer_file!r}: added_tokens must be a list of token entries with integer ids.")
        for entry in entries:
            decoder[entry["id"]] = _as_token({key: value for key, value in entry.items() if key != "id"}, "added token")
    return decoder


def _wordpiece_vocab(source: Source, class_name: str, tokenizer_file: str | None, data: Any) -> dict[str, int]:
    """The vocabulary of tokenizer.json's model, else of vocab.txt."""
    if data is not None:
        model = data.get("model") if isinstance(data.get("model"), dict) else {}
        vocab = model.get("vocab")
        if isinstance(vocab, list):
            vocab = {(entry[0] if isinstance(entry, list) else entry): index for index, entry in enumerate(vocab)}
        if not isinstance(vocab, dict):
            raise TokenizerError(f"{tokenizer_file!r} has no model vocabulary to build a {class_name} from.")
        return vocab
    vocab_file = source.resolve(VOCAB_FILE, required=False)
    if vocab_file is None:
        raise TokenizerError(
            f"{source.describe()} has neither tokenizer.json nor vocab.txt, so its {class_name} cannot be built. "
            f"Add one of them to the checkpoint."
        )
    try:
        vocab = WordPiece.read_file(vocab_file)
    except Exception as exc:
        raise TokenizerError(f"Could not read the vocabulary {vocab_file!r}: {exc}") from exc
    if not vocab:
        raise TokenizerError(f"The vocabulary {vocab_file!r} is empty.")
    return vocab


class _WordPieceTokenizer(PreTrainedTokenizer):
    """What the WordPiece classes share: the normalizer options' defaults."""

    _defaults = {"do_lower_case": True, "tokenize_chinese_chars": True, "strip_accents": None}


class BertTokenizer(_WordPieceTokenizer):
    """WordPiece with BERT's normalizer and pre-tokenizer and the ``[CLS] A [SEP] B [SEP]`` template.
    ELECTRA checkpoints get this class too, as in the reference."""

    model_input_names = ("input_ids", "token_type_ids", "attention_mask")
    _defaults = {
        **_WordPieceTokenizer._defaults, "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
        "cls_token": "[CLS]", "mask_token": "[MASK]",
    }

    def _post_processor(self) -> Any:
        cls, sep = str(self.cls_token), str(self.sep_token)
        cls_id, sep_id = self.cls_token_id, self.sep_token_id
        return processors.TemplateProcessing(
            single=f"{cls}:0 $A:0 {sep}:0",
            pair=f"{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1",
            special_tokens=[(cls, 2 if cls_id is None else cls_id), (sep, 3 if sep_id is None else sep_id)],
        )


class DistilBertTokenizer(BertTokenizer):
    """BERT's tokenizer; calls return no token_type_ids by default."""

    model_input_names = ("input_ids", "attention_mask")


class MPNetTokenizer(_WordPieceTokenizer):
    """BERT's WordPiece pipeline with RoBERTa's special tokens and ``<s> A </s></s> B </s>`` template
    (every token type 0, no token_type_ids by default); a mask token given as text when loading
    swallows the space before it."""

    model_input_names = ("input_ids", "attention_mask")
    _defaults = {
        **_WordPieceTokenizer._defaults, "bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>",
        "cls_token": "<s>", "unk_token": "[UNK]", "pad_token": "<pad>", "mask_token": "<mask>",
    }

    @classmethod
    def _settle_options(cls, init_kwargs: dict[str, Any]) -> None:
        super()._settle_options(init_kwargs)
        # Tokens given as text become added tokens that keep the spaces around them, except the mask.
        for key in ("bos_token", "eos_token", "sep_token", "cls_token", "unk_token", "pad_token", "mask_token"):
            if isinstance(init_kwargs[key], str):
                init_kwargs[key] = AddedToken(init_kwargs[key], lstrip=key == "mask_token", rstrip=False)

    def _post_processor(self) -> Any:
        cls_id, sep_id = self.cls_token_id, self.sep_token_id
        sep = (str(self.sep_token), 2 if sep_id is None else sep_id)
        cls = (str(self.cls_token), 0 if cls_id is None else cls_id)
        return processors.RobertaProcessing(sep, cls, trim_offsets=True, add_prefix_space=False)


# The class each WordPiece class name builds (the reference has no ElectraTokenizer of its own).
_WORDPIECE_CLASSES: dict[str, type[_WordPieceTokenizer]] = {
    "BertTokenizer": BertTokenizer,
    "ElectraTokenizer": BertTokenizer,
    "DistilBertTokenizer": DistilBertTokenizer,
    "MPNetTokenizer": MPNetTokenizer,
}


def _build_wordpiece(
    source: Source, class_name: str, init_kwargs: dict[str, Any], tokenizer_file: str | None, data: Any
) -> _WordPieceTokenizer:
    """BERT-style tokenizers: a WordPiece vocabulary with the BERT normalizer, pre-tokenizer and
    decoder, and the class's special-token template, set from the saved options. As in the
    reference, a tokenizer.json gives only the vocabulary and the padding/truncation defaults;
    tokenizer_config.json gives the rest."""
    tokenizer_class = _WORDPIECE_CLASSES.get(class_name, BertTokenizer)
    vocab = _wordpiece_vocab(source, class_name, tokenizer_file, data)
    if data is not None:
        init_kwargs["_json_truncation"], init_kwargs["_json_padding"] = _json_settings(data, tokenizer_file)
    tokenizer_class._settle_options(init_kwargs)
    options = {key: init_kwargs[key] for key in ("do_lower_case", "tokenize_chinese_chars", "strip_accents")}
    try:
        backend = Tokenizer(WordPiece(vocab, unk_token=str(init_kwargs["unk_token"])))
        backend.normalizer = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=options["tokenize_chinese_chars"],
            strip_accents=options["strip_accents"], lowercase=options["do_lower_case"],
        )
    except (TypeError, ValueError, OverflowError) as exc:
        raise ConfigError(f"The tokenizer options of {source.describe()} are invalid ({options}): {exc}") from exc
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece(prefix="##")

    tokenizer = tokenizer_class(backend, class_name=tokenizer_class.__name__, **init_kwargs)
    for key, value in options.items():
        setattr(tokenizer, key, value)
    backend.post_processor = tokenizer._post_processor()
    return tokenizer


class TokenizersBackend(PreTrainedTokenizer):
    """A tokenizer.json used as it stands (the reference's class of that name, also for
    ``PreTrainedTokenizerFast`` and the classes this library does not rebuild)."""


def _build_generic(tokenizer_file: str, init_kwargs: dict[str, Any]) -> TokenizersBackend:
    """Any other checkpoint: its tokenizer.json pipeline, used as it stands."""
    try:
        backend = Tokenizer.from_file(tokenizer_file)
    except Exception as exc:
        raise TokenizerError(
            f"Could not build a tokenizer from {tokenizer_file!r}: {exc}. The file may be corrupt or written by a "
            f"newer tokenizers library."
        ) from exc
    tokenizer = TokenizersBackend(backend, class_name=GENERIC_CLASS, **init_kwargs)
    explicit = "add_bos_token" in init_kwargs or "add_eos_token" in init_kwargs
    tokenizer._set_post_processor(backend.post_processor, explicit)
    return tokenizer


__all__ = [
    "BatchEncoding",
    "BertTokenizer",
    "CharSpan",
    "DistilBertTokenizer",
    "MPNetTokenizer",
    "PreTrainedTokenizer",
    "TokenSpan",
    "TokenizersBackend",
    "clean_up_tokenization",
    "load_tokenizer",
]
