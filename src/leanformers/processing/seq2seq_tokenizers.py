"""The tokenizers of the sequence-to-sequence and speech families: T5, BART and Whisper.

As the reference's v5 classes do, each is rebuilt from its class: a checkpoint gives its vocabulary
(SentencePiece pieces with scores, or a byte-level BPE vocabulary with merges), its special tokens
and its saved options; the pipeline and the framing of a sequence come from the class.

- ``T5Tokenizer``: a SentencePiece Unigram (``spiece.model`` or tokenizer.json) followed by the
  ``<extra_id_N>`` sentinels (the highest number first, so ``<extra_id_0>`` is the last id), each
  text followed by ``</s>``.
- ``BartTokenizer``: the reference's name for its RoBERTa tokenizer, built as that class.
- ``WhisperTokenizer``: byte-level BPE whose texts start with Whisper's decoder prefix
  (``<|startoftranscript|>``, a language, a task, ``<|notimestamps|>``) and end with
  ``<|endoftext|>``; decoding drops a previous-text prompt and timestamp tokens, or renders them.

The classes that take targets (T5, BART) accept ``text_target=``: its ids come back as ``labels``.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from tokenizers import AddedToken, Tokenizer, decoders, pre_tokenizers, processors

from ..errors import ConfigError, InputError, TokenizerError
from ..hub import Source, read_json
from .bpe import RobertaTokenizer, _ByteLevelTokenizer, _json_model, _vocab_files, build_bpe_tokenizer
from .sentencepiece import _CONTROL, _USER_DEFINED, _json_vocab, _precompiled, _unigram, read_sentencepiece_model
from .tokenizer import TOKENIZER_FILE, BatchEncoding, PreTrainedTokenizer, _json_settings

_SPACE = "▁"
_TARGET_ONLY = ("text_target", "text_pair_target")


class _TargetsMixin:
    """``text_target`` / ``text_pair_target`` as the reference's call takes them: the targets are
    encoded with the same options and their ids returned as ``labels`` (alone, the targets' full
    encoding is returned)."""

    def _encode_targets(self, text: Any, text_pair: Any) -> None:
        """Hook for a class whose targets use another vocabulary (none here yet)."""

    def __call__(
        self, text: Any = None, text_pair: Any = None, text_target: Any = None, text_pair_target: Any = None,
        **options: Any,
    ) -> BatchEncoding:
        if text is None and text_target is None:
            raise InputError("Give the texts to encode: text=..., text_target=..., or both.")
        encoded = super().__call__(text, text_pair, **options) if text is not None else None
        if text_target is None:
            if text_pair_target is not None:
                raise InputError("text_pair_target needs text_target (the first text of each target pair).")
            return encoded
        targets = super().__call__(text_target, text_pair_target, **options)
        if encoded is None:
            return targets
        encoded["labels"] = targets["input_ids"]
        return encoded


# -- T5 --------------------------------------------------------------------------------------------

_SENTINEL = re.compile(r"<extra_id_\d+>")


class T5Tokenizer(_TargetsMixin, PreTrainedTokenizer):
    """T5's tokenizer: a Unigram vocabulary behind the SentencePiece character map, a whitespace split
    and metaspace, the sentinels ``<extra_id_0>`` ... as special tokens, and ``A </s>`` /
    ``A </s> B </s>`` framing (no bos token)."""

    spm_file = "spiece.model"
    _defaults = {"eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>", "extra_ids": 100}

    def _post_processor(self) -> Any:
        eos = str(self.eos_token)
        return processors.TemplateProcessing(
            single=["$A", eos], pair=["$A", eos, "$B", eos], special_tokens=[(eos, self.eos_token_id)]
        )

    def get_sentinel_tokens(self) -> list[str]:
        """The ``<extra_id_N>`` tokens among the extra special tokens."""
        return [token for token in self.extra_special_tokens if _SENTINEL.fullmatch(token)]

    def get_sentinel_token_ids(self) -> list[int]:
        return [self.convert_tokens_to_ids(token) for token in self.get_sentinel_tokens()]


def _extra_ids(options: dict[str, Any], where: str) -> int:
    count = options["extra_ids"]
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ConfigError(f"extra_ids of {where} must be a non-negative number of sentinels, got {count!r}.")
    return count


def _sentinels(count: int) -> list[str]:
    """The sentinel pieces in vocabulary order: the highest number first."""
    return [f"<extra_id_{index}>" for index in range(count - 1, -1, -1)]


def _settle_t5_specials(options: dict[str, Any], count: int, where: str) -> None:
    """The extra special tokens as the reference's T5 constructor settles them: the sentinels are
    appended (lowest number first) unless the list already names them, in which case it must name
    all of them."""
    extras = options.get("extra_special_tokens")
    if extras is None:
        extras = options.pop("additional_special_tokens", None)
    else:
        options.pop("additional_special_tokens", None)
    if extras is None:
        options["extra_special_tokens"] = [f"<extra_id_{index}>" for index in range(count)]
        return
    if not isinstance(extras, (list, tuple)):
        raise ConfigError(f"extra_special_tokens of {where} must be a list of tokens, got {extras!r}.")
    extras = list(extras)
    named = [token for token in extras if "<extra_id_" in str(token)]
    if not named:
        extras += [f"<extra_id_{index}>" for index in range(count)]
    elif count > 0 and count != len(named):
        raise ConfigError(
            f"{where} gives extra_ids={count} but its extra special tokens name {len(named)} <extra_id_N> sentinels; "
            f"they must name all of them (or set extra_ids to {len(named)})."
        )
    options["extra_special_tokens"] = extras


def build_t5_tokenizer(
    source: Source, class_name: str, init_kwargs: dict[str, Any], tokenizer_json: dict[str, Any] | None = None
) -> T5Tokenizer:
    """T5's tokenizer from tokenizer.json (its vocabulary already holds the sentinels) or, without one,
    from spiece.model (the sentinels are appended to its pieces)."""
    options = {key: value for key, value in init_kwargs.items() if key not in ("vocab_file", "tokenizer_file", "vocab")}
    T5Tokenizer._settle_options(options)
    where = source.describe()
    count = _extra_ids(options, where)
    tokenizer_file = source.resolve(TOKENIZER_FILE, required=False)
    if tokenizer_file is not None:
        data = tokenizer_json if tokenizer_json is not None else read_json(tokenizer_file, TOKENIZER_FILE, TokenizerError)
        vocab, charsmap = _json_vocab(data, tokenizer_file, class_name)
        options["_json_truncation"], options["_json_padding"] = _json_settings(data, tokenizer_file)
        where = repr(tokenizer_file)
    else:
        model_file = source.resolve(T5Tokenizer.spm_file, required=False)
        if model_file is None:
            raise TokenizerError(
                f"{where} names tokenizer class {class_name!r} but has neither {TOKENIZER_FILE} nor "
                f"{T5Tokenizer.spm_file}, the files it is built from. Add one of them to the checkpoint."
            )
        model = read_sentencepiece_model(model_file)
        where = repr(model_file)
        # As the reference: the model's control and user-defined pieces are the extra special tokens
        # unless the checkpoint lists its own.
        options.setdefault("additional_special_tokens", [
            AddedToken(piece, normalized=False, special=kind == _CONTROL)
            for piece, _, kind in model.pieces if kind in (_CONTROL, _USER_DEFINED)
        ])
        options["unk_id"] = model.unk_id
        vocab = [(piece, score) for piece, score, _ in model.pieces] + [(token, 0.0) for token in _sentinels(count)]
        charsmap = model.precompiled_charsmap or None
    _settle_t5_specials(options, count, where)
    # The reference's T5 takes the unknown piece to be id 2 whatever the model says.
    if len(vocab) <= 2:
        raise TokenizerError(f"{where} holds {len(vocab)} pieces; T5's unknown piece is id 2, so it needs at least 3.")
    backend = _unigram(vocab, 2, where)
    if charsmap:
        backend.normalizer = _precompiled(charsmap, where)
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement=_SPACE, prepend_scheme="always")]
    )
    backend.decoder = decoders.Metaspace(replacement=_SPACE, prepend_scheme="always")
    tokenizer = T5Tokenizer(backend, class_name="T5Tokenizer", **options)
    if tokenizer.eos_token_id is None:
        raise TokenizerError(f"The eos token {tokenizer.eos_token!r} of {where} is not in its vocabulary.")
    backend.post_processor = tokenizer._post_processor()
    return tokenizer


# -- BART ------------------------------------------------------------------------------------------

# The reference's BartTokenizer is its RobertaTokenizer under another name (and saves as that class).
BartTokenizer = RobertaTokenizer


class _RobertaWithTargets(_TargetsMixin, RobertaTokenizer):
    """RoBERTa's tokenizer taking ``text_target`` (the form a BART checkpoint is loaded as)."""


_RobertaWithTargets.__name__ = "RobertaTokenizer"
_RobertaWithTargets.__qualname__ = "RobertaTokenizer"


def build_bart_tokenizer(
    source: Source, class_name: str, init_kwargs: dict[str, Any], tokenizer_json: dict[str, Any] | None = None
) -> RobertaTokenizer:
    """BART's tokenizer: RoBERTa's, built from tokenizer.json or vocab.json + merges.txt."""
    tokenizer = build_bpe_tokenizer(source, "RobertaTokenizer", init_kwargs, tokenizer_json=tokenizer_json)
    tokenizer.__class__ = _RobertaWithTargets
    return tokenizer


# -- Whisper ---------------------------------------------------------------------------------------

# Whisper's languages in the order of their tokens (<|en|> follows <|startoftranscript|>).
_LANGUAGE_TABLE = (
    "en:english zh:chinese de:german es:spanish ru:russian ko:korean fr:french ja:japanese pt:portuguese "
    "tr:turkish pl:polish ca:catalan nl:dutch ar:arabic sv:swedish it:italian id:indonesian hi:hindi fi:finnish "
    "vi:vietnamese he:hebrew uk:ukrainian el:greek ms:malay cs:czech ro:romanian da:danish hu:hungarian ta:tamil "
    "no:norwegian th:thai ur:urdu hr:croatian bg:bulgarian lt:lithuanian la:latin mi:maori ml:malayalam cy:welsh "
    "sk:slovak te:telugu fa:persian lv:latvian bn:bengali sr:serbian az:azerbaijani sl:slovenian kn:kannada "
    "et:estonian mk:macedonian br:breton eu:basque is:icelandic hy:armenian ne:nepali mn:mongolian bs:bosnian "
    "kk:kazakh sq:albanian sw:swahili gl:galician mr:marathi pa:punjabi si:sinhala km:khmer sn:shona yo:yoruba "
    "so:somali af:afrikaans oc:occitan ka:georgian be:belarusian tg:tajik sd:sindhi gu:gujarati am:amharic "
    "yi:yiddish lo:lao uz:uzbek fo:faroese ht:haitian_creole ps:pashto tk:turkmen nn:nynorsk mt:maltese "
    "sa:sanskrit lb:luxembourgish my:myanmar bo:tibetan tl:tagalog mg:malagasy as:assamese tt:tatar haw:hawaiian "
    "ln:lingala ha:hausa ba:bashkir jw:javanese su:sundanese yue:cantonese"
)
WHISPER_LANGUAGES: dict[str, str] = {
    code: name.replace("_", " ") for code, name in (entry.split(":") for entry in _LANGUAGE_TABLE.split())
}
# Language names (and other names of the same languages) -> codes.
WHISPER_LANGUAGE_CODES: dict[str, str] = {
    **{name: code for code, name in WHISPER_LANGUAGES.items()},
    "burmese": "my", "valencian": "ca", "flemish": "nl", "haitian": "ht", "letzeburgesch": "lb", "pushto": "ps",
    "panjabi": "pa", "moldavian": "ro", "moldovan": "ro", "sinhalese": "si", "castilian": "es", "mandarin": "zh",
}
_LANGUAGE_ORDER = {code: index for index, code in enumerate(WHISPER_LANGUAGES)}
WHISPER_TASKS = ("translate", "transcribe")
_TIMESTAMP_TEXT = re.compile(r"<\|(\d+\.\d+)\|>")


class WhisperTokenizer(_ByteLevelTokenizer):
    """Whisper's tokenizer: byte-level BPE, each text framed as ``<prefix> A <|endoftext|>`` where the
    prefix is ``<|startoftranscript|>``, then the language and task tokens when set, then
    ``<|notimestamps|>`` unless timestamps are predicted. ``<|endoftext|>`` is the unknown, bos
    and eos token."""

    _defaults = {
        **_ByteLevelTokenizer._defaults, "unk_token": "<|endoftext|>", "bos_token": "<|endoftext|>",
        "eos_token": "<|endoftext|>", "language": None, "task": None, "predict_timestamps": False,
    }
    # Saved as options of the class, with their live values.
    _LIVE_ATTRIBUTES = PreTrainedTokenizer._LIVE_ATTRIBUTES | {"language", "task", "predict_timestamps"}

    @property
    def prefix_tokens(self) -> list[int]:
        """The decoder prefix ids for the current language, task and timestamp setting."""
        start = self.convert_tokens_to_ids("<|startoftranscript|>")
        prefix = [start]
        if self.language is not None:
            if not isinstance(self.language, str):
                raise InputError(f"language must be a language name or code such as 'english' or 'en', got {self.language!r}.")
            self.language = self.language.lower()
            code = WHISPER_LANGUAGE_CODES.get(self.language, self.language)
            if code not in _LANGUAGE_ORDER:
                known = sorted(WHISPER_LANGUAGES) if len(self.language) == 2 else sorted(WHISPER_LANGUAGE_CODES)
                raise InputError(f"Unsupported language {self.language!r} for Whisper; use one of {known}.")
            prefix.append(start + 1 + _LANGUAGE_ORDER[code])
        if self.task is not None:
            if self.task not in WHISPER_TASKS:
                raise InputError(f"Unsupported task {self.task!r} for Whisper; use one of {list(WHISPER_TASKS)}.")
            prefix.append(self.convert_tokens_to_ids(f"<|{self.task}|>"))
        if not self.predict_timestamps:
            prefix.append(self.convert_tokens_to_ids("<|notimestamps|>"))
        return prefix

    def set_prefix_tokens(
        self, language: str | None = None, task: str | None = None, predict_timestamps: bool | None = None
    ) -> None:
        """Change the prefix that frames every encoded text (``None`` keeps a setting as it is)."""
        self.language = language if language is not None else self.language
        self.task = task if task is not None else self.task
        if predict_timestamps is not None:
            self.predict_timestamps = predict_timestamps
        ids = self.prefix_tokens
        if None in ids:
            raise TokenizerError(
                "This Whisper vocabulary lacks a decoder prefix token (<|startoftranscript|>, <|notimestamps|>, "
                "<|transcribe|> or <|translate|>); use the tokenizer.json saved with the model."
            )
        tokens = self.convert_ids_to_tokens(ids)
        eos, eos_id = str(self.eos_token), self.eos_token_id
        prefix = " ".join(f"{token}:0" for token in tokens)
        self._backend.post_processor = processors.TemplateProcessing(
            single=f"{prefix} $A:0 {eos}:0", pair=f"{prefix} $A:0 $B:1 {eos}:1",
            special_tokens=[(eos, eos_id), *zip(tokens, ids)],
        )
        self._forget_call_settings()

    def _set_post_processor(self, from_json: Any, explicit_bos_eos: bool) -> None:
        self.set_prefix_tokens()

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return len(self.prefix_tokens) + 1

    def get_decoder_prompt_ids(
        self, task: str | None = None, language: str | None = None, no_timestamps: bool = True
    ) -> list[tuple[int, int]]:
        """(position, id) of the forced decoder tokens after ``<|startoftranscript|>``; as in the
        reference, the settings also become the tokenizer's prefix."""
        self.set_prefix_tokens(task=task, language=language, predict_timestamps=not no_timestamps)
        return [(rank, token) for rank, token in enumerate(self.prefix_tokens[1:], 1)]

    def get_prompt_ids(self, text: str, return_tensors: str | None = "np") -> Any:
        """The ids of a previous-text prompt (``<|startofprev|>``, then the text) for generation."""
        encoding = self("<|startofprev|>", " " + text.strip(), add_special_tokens=False)
        ids = encoding["input_ids"][1:]
        first_special = min(self.all_special_ids)
        for index in ids:
            if index >= first_special:
                raise InputError(
                    f"The prompt contains the special token {self.convert_ids_to_tokens(index)!r}, which a prompt may not."
                )
        return encoding.convert_to_tensors(return_tensors)["input_ids"]

    # -- decoding ------------------------------------------------------------------------------

    def _timestamp_begin(self) -> int:
        # As the reference: the first id after the last special token's.
        return self.all_special_ids[-1] + 1

    def _without_prompt(self, ids: list[int]) -> list[int]:
        """A leading previous-text prompt dropped (all of it when the transcript never starts)."""
        if ids and ids[0] == self.convert_tokens_to_ids("<|startofprev|>"):
            start = self.convert_tokens_to_ids("<|startoftranscript|>")
            return ids[ids.index(start):] if start in ids else []
        return ids

    def decode(
        self, token_ids: Any, skip_special_tokens: bool = False, clean_up_tokenization_spaces: bool | None = None,
        output_offsets: bool = False, time_precision: float = 0.02, decode_with_timestamps: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Text of ids with timestamp tokens removed, or shown as ``<|1.08|>`` with
        ``decode_with_timestamps``; ``output_offsets`` also gives each timed segment's text and times."""
        if kwargs.get("normalize") or kwargs.get("basic_normalize"):
            raise InputError("Whisper's English / basic text normalizers are not available in leanformers.")
        for key in ("normalize", "basic_normalize", "remove_diacritics"):
            kwargs.pop(key, None)
        original = _python_ids(token_ids)
        batched = bool(original) and isinstance(original[0], list)
        rows = original if batched else [original]
        if skip_special_tokens and not batched:  # as the reference: a batch's prompts are kept
            rows = [self._without_prompt(rows[0])]
        if decode_with_timestamps:
            texts = [self._decode_with_timestamps(row, skip_special_tokens, time_precision) for row in rows]
        else:
            texts = super().decode(rows, skip_special_tokens, clean_up_tokenization_spaces, **kwargs)
            texts = [_TIMESTAMP_TEXT.sub("", text) for text in texts]
        text = texts if batched else texts[0]
        if output_offsets:
            if batched:
                raise InputError("output_offsets=True decodes one sequence at a time; pass a single list of ids.")
            return {"text": text, "offsets": self._offsets(original, time_precision)}
        return text

    def _decode_with_timestamps(self, ids: list[int], skip_special_tokens: bool, time_precision: float,
                                segment_size: int = 1500) -> str:
        """Text with each timestamp token shown as ``<|seconds|>``; a timestamp lower than the one
        before starts a new 30-second window, as the reference counts them."""
        begin = self._timestamp_begin()
        parts: list[Any] = [[]]
        latest = penultimate = offset = 0.0
        for position, token in enumerate(ids):
            if token < begin:
                parts[-1].append(token)
                continue
            seconds = float((token - begin) * time_precision)
            if seconds < latest:
                single_ending = position >= 2 and not (ids[position - 1] >= begin and ids[position - 2] >= begin)
                if single_ending:
                    offset += time_precision * segment_size
                else:
                    latest = penultimate
                    offset += penultimate
            penultimate, latest = latest, seconds
            parts += [f"<|{seconds + offset:.2f}|>", []]
        return "".join(
            part if isinstance(part, str)
            else PreTrainedTokenizer.decode(self, part, skip_special_tokens) if part else ""
            for part in parts
        )

    def _offsets(self, ids: list[int], time_precision: float, segment_size: int = 1500) -> list[dict[str, Any]]:
        """Each segment between timestamp tokens: its text and (start, end) seconds."""
        if ids and isinstance(ids[0], list):
            if len(ids) > 1:
                raise InputError("output_offsets=True decodes one sequence at a time; pass a single list of ids.")
            ids = ids[0]
        begin = self._timestamp_begin()
        stamps = [token >= begin for token in ids]
        cuts = [index + 1 for index in range(len(ids) - 1) if stamps[index] and stamps[index + 1]]
        if not cuts and sum(stamps) <= 1:
            return []
        last_stamp = max(index for index, stamp in enumerate(stamps) if stamp) + 1
        if last_stamp not in cuts:
            cuts.append(last_stamp)
        offsets, latest, shift, last_cut = [], 0, 0, 0
        for cut in cuts:
            piece = ids[last_cut:cut]
            if len(piece) > 1:
                start, end = piece[0] - begin, piece[-1] - begin
                if start < latest:
                    single_ending = last_cut >= 2 and not (ids[last_cut - 2] >= begin and ids[last_cut - 1] >= begin)
                    shift += segment_size if single_ending else latest
                latest = end
                text = _TIMESTAMP_TEXT.sub("", PreTrainedTokenizer.decode(self, piece))
                offsets.append({
                    "text": text,
                    "timestamp": (start * time_precision + shift * time_precision,
                                  end * time_precision + shift * time_precision),
                })
            last_cut = cut
        return offsets


def _python_ids(token_ids: Any) -> Any:
    """Ids as Python ints (lists of lists for a batch), from lists, numpy arrays or tensors."""
    if hasattr(token_ids, "tolist"):
        token_ids = token_ids.tolist()
    if isinstance(token_ids, int):
        return [token_ids]
    if not isinstance(token_ids, (list, tuple)):
        raise InputError(f"Ids to decode must be integers or lists of them, got {type(token_ids).__name__}.")
    return [_python_ids(row) if not isinstance(row, int) else row for row in token_ids]


def build_whisper_tokenizer(
    source: Source, class_name: str, init_kwargs: dict[str, Any], tokenizer_json: dict[str, Any] | None = None
) -> WhisperTokenizer:
    """Whisper's tokenizer from tokenizer.json or vocab.json + merges.txt, framed with its decoder prefix."""
    tokenizer_file = source.resolve(TOKENIZER_FILE, required=False)
    if tokenizer_file is not None:
        data = tokenizer_json if tokenizer_json is not None else read_json(tokenizer_file, TOKENIZER_FILE, TokenizerError)
        vocab, merges = _json_model(data, tokenizer_file, class_name)
        init_kwargs["_json_truncation"], init_kwargs["_json_padding"] = _json_settings(data, tokenizer_file)
    else:
        vocab, merges = _vocab_files(source, class_name)
    WhisperTokenizer._settle_options(init_kwargs)
    if not isinstance(init_kwargs["add_prefix_space"], bool):
        raise ConfigError(f"add_prefix_space of {source.describe()} must be true or false.")
    predict = init_kwargs["predict_timestamps"]
    if not isinstance(predict, bool):
        raise ConfigError(f"predict_timestamps of {source.describe()} must be true or false, got {predict!r}.")
    # Special tokens given as text are added whole, never normalised.
    for key in ("unk_token", "bos_token", "eos_token"):
        if isinstance(init_kwargs[key], str):
            init_kwargs[key] = AddedToken(init_kwargs[key], normalized=False, special=True)
    backend = WhisperTokenizer._build_backend(vocab, merges, init_kwargs)
    tokenizer = WhisperTokenizer(backend, class_name="WhisperTokenizer", **init_kwargs)
    tokenizer.add_prefix_space = init_kwargs["add_prefix_space"]
    tokenizer.language, tokenizer.task = init_kwargs["language"], init_kwargs["task"]
    tokenizer.predict_timestamps = predict
    try:
        tokenizer.set_prefix_tokens()
    except InputError as exc:
        raise ConfigError(f"The Whisper options of {source.describe()} are invalid: {exc}") from exc
    return tokenizer


__all__ = [
    "BartTokenizer",
    "T5Tokenizer",
    "WhisperTokenizer",
    "build_bart_tokenizer",
    "build_t5_tokenizer",
    "build_whisper_tokenizer",
]
