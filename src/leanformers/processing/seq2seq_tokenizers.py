"""The tokenizers of the sequence-to-sequence and speech families: T5, BART, Marian and Whisper.

As the reference's v5 classes do, each is rebuilt from its class: a checkpoint gives its vocabulary
(SentencePiece pieces with scores, or a byte-level BPE vocabulary with merges), its special tokens
and its saved options; the pipeline and the framing of a sequence come from the class.

- ``T5Tokenizer``: a SentencePiece Unigram (``spiece.model`` or tokenizer.json) followed by the
  ``<extra_id_N>`` sentinels (the highest number first, so ``<extra_id_0>`` is the last id), each
  text followed by ``</s>``.
- ``BartTokenizer``: the reference's name for its RoBERTa tokenizer, built as that class.
- ``MarianTokenizer``: pieces of a source (targets: a target) SentencePiece model, numbered by
  vocab.json, each text followed by ``</s>`` (see the class for where it differs from the reference).
- ``WhisperTokenizer``: byte-level BPE whose texts start with Whisper's decoder prefix
  (``<|startoftranscript|>``, a language, a task, ``<|notimestamps|>``) and end with
  ``<|endoftext|>``; decoding drops a previous-text prompt and timestamp tokens, or renders them.

Every tokenizer takes ``text_target=`` (its ids come back as ``labels``); Marian encodes targets with its target model.
"""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar

from tokenizers import (
    AddedToken,
    Regex,
    Tokenizer,
    decoders,
    normalizers,
    pre_tokenizers,
    processors,
)

from ..errors import ConfigError, InputError, TokenizerError
from ..hub import Source, read_json
from .bpe import (
    RobertaTokenizer,
    _ByteLevelTokenizer,
    _json_model,
    _vocab_files,
    build_bpe_tokenizer,
)
from .sentencepiece import (
    _CONTROL,
    _USER_DEFINED,
    SentencePieceModel,
    _json_vocab,
    _precompiled,
    _unigram,
    read_sentencepiece_model,
)
from .tokenizer import (
    TOKENIZER_FILE,
    BatchEncoding,
    PreTrainedTokenizer,
    _json_settings,
)

_SPACE = "▁"
# SentencePiece's piece type of the unknown piece.
_UNKNOWN = 2


def _next_window(
    ids: list[int], position: int, begin: int, latest: float, penultimate: float, window: float
) -> tuple[float, float]:
    """(time added to later stamps, latest stamp kept) where a stamp falls before the latest one: a
    long-form generation's next window starts a whole ``window`` on after a lone closing stamp, else
    at the penultimate stamp."""
    lone = position >= 2 and not (ids[position - 1] >= begin and ids[position - 2] >= begin)
    return (window, latest) if lone else (penultimate, penultimate)


# -- T5 --------------------------------------------------------------------------------------------

_SENTINEL = re.compile(r"<extra_id_\d+>")


class T5Tokenizer(PreTrainedTokenizer):
    """T5's tokenizer: a Unigram vocabulary behind the SentencePiece character map, a whitespace split
    and metaspace, the sentinels ``<extra_id_0>`` ... as special tokens, and ``A </s>`` /
    ``A </s> B </s>`` framing (no bos token)."""

    spm_file = "spiece.model"
    _defaults: ClassVar[dict[str, Any]] = {"eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>", "extra_ids": 100}

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


def build_bart_tokenizer(
    source: Source, class_name: str, init_kwargs: dict[str, Any], tokenizer_json: dict[str, Any] | None = None
) -> RobertaTokenizer:
    """BART's tokenizer: RoBERTa's, built from tokenizer.json or vocab.json + merges.txt."""
    return build_bpe_tokenizer(source, "RobertaTokenizer", init_kwargs, tokenizer_json=tokenizer_json)


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

    _defaults: ClassVar[dict[str, Any]] = {
        "add_prefix_space": False, "unk_token": "<|endoftext|>", "bos_token": "<|endoftext|>",
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
        # As the reference: a prefix token the vocabulary lacks is read as the unknown token.
        ids = self.prefix_tokens
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
                shift, latest = _next_window(ids, position, begin, latest, penultimate, time_precision * segment_size)
                offset += shift
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


    # -- speech-recognition output ----------------------------------------------------------------

    def decode_asr(
        self, pieces: list[tuple[list[int], tuple[float, float, float] | None]], *,
        return_timestamps: bool = False, time_precision: float = 0.02, segment_size: int = 1500,
    ) -> tuple[str, list[dict[str, Any]]]:
        """The transcript of consecutive generations, with its timed segments.

        ``pieces`` are, in audio order, each window's generated ids and ``(window, left stride,
        right stride)`` in seconds (None for a window alone). The text of overlapping windows is
        joined where their tokens agree best (:func:`merge_overlapping`); timestamp tokens are
        shifted by the audio before their window, and a segment that ends inside a stride is
        closed in the next window, as the reference's pipeline does. Returns ``(text, segments)``:
        ``segments`` are ``{"timestamp": (start, end), "text"}`` when ``return_timestamps``, else [].
        """
        begin = self.convert_tokens_to_ids("<|notimestamps|>") + 1
        special = set(self.all_special_ids)
        segments: list[dict[str, Any]] = []
        pending: list[list[int]] = []  # the same stretch of speech as each overlapping window heard it
        segment: dict[str, Any] = {"timestamp": [None, None]}
        language = None
        offset = 0.0  # seconds of audio before the current window
        skip_next = False

        def close(segment: dict[str, Any]) -> None:
            segment["text"] = self.decode(merge_overlapping(pending))
            segments.append(segment)
            pending.clear()

        for ids, stride in pieces:
            ids = self._without_prompt(_python_ids(ids))
            first_allowed, last_stamp = begin, None
            window_end = window_start = penultimate_end = 0.0
            if stride is not None:
                length, left, right = stride
                offset -= left
                if left:  # a segment opening inside the left stride was already heard by the window before
                    first_allowed = left / time_precision + begin
                if right:  # the stamps inside the right stride are left for the next window
                    for token in reversed(ids):
                        if token >= begin:
                            if last_stamp is not None and (token - begin) * time_precision < length - right:
                                break
                            last_stamp = token
            current: list[int] = []
            for position, token in enumerate(ids):
                if token in special:
                    name = WHISPER_LANGUAGES.get(self.convert_ids_to_tokens(token)[2:-2])
                    if name is None:
                        continue
                    if language and name != language and not return_timestamps:
                        pending.append(current)
                        close(segment)
                        current, segment = [], {"timestamp": [None, None]}
                    language = name
                elif token >= begin:
                    seconds = float((token - begin) * time_precision)
                    if seconds < window_end:  # a long-form generation's next 30-second window
                        shift, window_end = _next_window(
                            ids, position, begin, window_end, penultimate_end, time_precision * segment_size
                        )
                        window_start += shift
                    penultimate_end, window_end = window_end, seconds
                    time = round((token - begin) * time_precision + offset + window_start, 2)
                    if last_stamp and token >= last_stamp:
                        skip_next = True  # stamps come in pairs: the next one goes too
                    elif skip_next or (pending and token < first_allowed):
                        skip_next = False
                    elif segment["timestamp"][0] is None:
                        segment["timestamp"][0] = time
                    elif time != segment["timestamp"][0]:  # an end equal to the start is read as a start
                        segment["timestamp"][1] = time
                        pending.append(current)
                        close(segment)
                        current, segment = [], {"timestamp": [None, None]}
                else:
                    current.append(token)
            if stride is not None:
                offset += length - right
            if current:
                pending.append(current)
            elif not any(pending):
                segment, pending[:] = {"timestamp": [None, None]}, []
        if pending:  # no closing timestamp (or no timestamps at all)
            close(segment)
        text = "".join(segment["text"] for segment in segments)
        if not return_timestamps:
            return text, []
        return text, [{"timestamp": tuple(s["timestamp"]), "text": s["text"]} for s in segments]


def merge_overlapping(sequences: list[list[int]]) -> list[int]:
    """One token sequence from sequences of overlapping audio, in order: each next sequence is slid
    along the merged one to the offset where the most tokens agree (more than one, ties to longer
    overlaps); of the overlap, the left half is taken from the earlier sequence and the right half
    from the later one, where each heard more context."""
    merged: list[int] = []
    left = sequences[0]
    for right in sequences[1:]:
        best, span = 0.0, (len(left), len(left), 0, 0)
        for shift in range(1, len(left) + len(right)):
            left_start, left_stop = max(0, len(left) - shift), min(len(left), len(left) + len(right) - shift)
            right_start, right_stop = max(0, shift - len(left)), min(len(right), shift)
            matches = sum(a == b for a, b in zip(left[left_start:left_stop], right[right_start:right_stop]))
            score = matches / shift + shift / 10000.0
            if matches > 1 and score > best:
                best, span = score, (left_start, left_stop, right_start, right_stop)
        left_start, left_stop, right_start, right_stop = span
        merged.extend(left[: (left_start + left_stop) // 2])
        left = right[(right_start + right_stop) // 2 :]
    merged.extend(left)
    return merged


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


# -- Marian ----------------------------------------------------------------------------------------

_LANGUAGE_CODE = re.compile(r">>.+<<")
# What SentencePiece shows for a piece it does not know when decoding.
_UNKNOWN_SURFACE = " \u2047 "
MARIAN_FILES = {"source_spm": "source.spm", "target_spm": "target.spm", "vocab": "vocab.json",
                "target_vocab_file": "target_vocab.json"}


class _SpmSide:
    """One side (source or target) of a Marian checkpoint: its SentencePiece model, the vocabulary
    its ids come from, and the backend that encodes with them."""

    def __init__(
        self, model_bytes: bytes, model: SentencePieceModel, vocab: dict[str, int], backend: Tokenizer,
        charsmap: normalizers.Normalizer | None,
    ) -> None:
        self.model_bytes = model_bytes
        self.backend = backend
        self.vocab = vocab
        self.id_to_token = {index: token for token, index in vocab.items()}
        self.pieces = [piece for piece, _, _ in model.pieces]
        self.normal = {piece for piece, _, kind in model.pieces if kind not in (_CONTROL, _UNKNOWN)}
        self.control = {piece for piece, _, kind in model.pieces if kind == _CONTROL}
        self.unk_piece = model.pieces[model.unk_id][0] if 0 <= model.unk_id < len(model.pieces) else None
        self.strips_first_mark = model.add_dummy_prefix or model.remove_extra_whitespaces
        self.known_chars = {char for piece in self.normal for char in piece}
        self.charsmap = charsmap
        # A character standing for one the model does not know (see mask_unknown_runs): one no piece
        # or vocabulary token holds, from the private use area, which the character maps keep.
        used = self.known_chars | {char for token in vocab for char in token}
        self.stand_in = next(chr(code) for code in range(0xE000, 0xF900) if chr(code) not in used)
        self._unknown: dict[str, bool | None] = {}

    def _is_unknown(self, char: str) -> bool | None:
        """Whether the model knows no character of ``char`` normalised (None: it normalises to nothing)."""
        found = self._unknown.get(char)
        if found is None and char not in self._unknown:
            if char.isspace():
                found = False
            else:
                text = self.charsmap.normalize_str(char) if self.charsmap is not None else char
                found = None if not text else all(c not in self.known_chars and not c.isspace() for c in text)
            self._unknown[char] = found
        return found

    def mask_unknown_runs(self, text: str) -> str:
        """SentencePiece makes a run of characters it does not know one unknown piece, numbered by its
        text in the vocabulary (nearly always ``<unk>``), and a lone one its own token. The backend
        numbers a lone one as the reference does; a run is replaced by stand-ins (as many
        characters, so offsets hold) that it fuses into one ``<unk>``."""
        chars, run, length = None, [], 0
        for position, char in enumerate(text):
            unknown = self._is_unknown(char)
            if unknown is None:
                continue
            if unknown:
                run.append(position)
                length += 1
                continue
            if length >= 2:
                chars = chars or list(text)
                for index in run:
                    chars[index] = self.stand_in
            run, length = [], 0
        if length >= 2:
            chars = chars or list(text)
            for index in run:
                chars[index] = self.stand_in
        return text if chars is None else "".join(chars)

    def decode_pieces(self, pieces: list[str]) -> str:
        """SentencePiece's text of pieces: control pieces vanish, the unknown piece shows as " ⁇ ",
        other pieces it does not know as they are, space marks are spaces, and the text's first
        mark is dropped."""
        parts, at_start = [], True
        for piece in pieces:
            if piece in self.control:
                continue
            if piece == self.unk_piece:
                part = _UNKNOWN_SURFACE
            elif piece not in self.normal:  # kept whole, its space marks included
                part = piece
            else:
                part = (piece[1:] if at_start and self.strips_first_mark and piece.startswith(_SPACE) else piece)
                part = part.replace(_SPACE, " ")
            parts.append(part)
            at_start = at_start and not part
        return "".join(parts)


class MarianTokenizer(PreTrainedTokenizer):
    """Marian's tokenizer: texts are cut into pieces by the source SentencePiece model (targets by the
    target one) and the pieces numbered by vocab.json (a piece it lacks is ``<unk>``); ``</s>``
    ends each text (``A B </s>`` for a pair). A language code such as ``>>fr<<`` at the start of a
    text is one token. Decoding joins the pieces with SentencePiece's rules.

    Differences from the reference, which runs the ``sentencepiece`` package in Python: the pieces
    come from a Rust Unigram over the same scores (equal on the test corpus); a language code of the
    vocabulary is one token wherever it appears, where the reference only takes one at a text's start;
    return_special_tokens_mask marks only the ``</s>`` this tokenizer adds; a piece of a model
    that vocab.json lacks is never chosen (the reference chooses it and numbers it ``<unk>``); with
    separate vocabularies, a special token written in a target text gets its target-vocabulary id
    (the reference: its source one); and an exact tie between two segmentations may be broken the
    other way (SentencePiece decides by float rounding)."""

    model_input_names = ("input_ids", "attention_mask")
    _defaults: ClassVar[dict[str, Any]] = {
        "unk_token": "<unk>", "eos_token": "</s>", "pad_token": "<pad>", "model_max_length": 512,
        "separate_vocabs": False, "sp_model_kwargs": {}, "source_lang": None, "target_lang": None,
        "target_vocab_file": None,
    }
    _reworks_texts = True
    _length_counts_padding = False

    # Set by the builder.
    _source: _SpmSide
    _target: _SpmSide

    @property
    def separate_vocabs(self) -> bool:
        return bool(self.init_kwargs.get("separate_vocabs"))

    @property
    def vocab_size(self) -> int:
        return len(self._source.vocab)

    @property
    def supported_language_codes(self) -> list[str]:
        if self.separate_vocabs:
            return []
        return [token for token in self._source.vocab if _LANGUAGE_CODE.fullmatch(token)]

    def get_vocab(self) -> dict[str, int]:
        return {**self._source.vocab, **self.added_tokens_encoder}

    def get_src_vocab(self) -> dict[str, int]:
        return self.get_vocab()

    def get_tgt_vocab(self) -> dict[str, int]:
        return {**self._target.vocab, **self.added_tokens_encoder}

    def _token_to_id(self, token: str) -> int | None:
        vocab = self._source.vocab
        return vocab.get(token, vocab.get(str(self.unk_token)))

    def convert_ids_to_tokens(self, ids: Any, skip_special_tokens: bool = False) -> Any:
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        if isinstance(ids, int):
            return self._tokens([ids], False, use_source=not self.separate_vocabs)[0]
        return self._tokens(_python_ids(ids), skip_special_tokens, use_source=not self.separate_vocabs)

    def _tokens(self, ids: list[int], skip_special_tokens: bool, use_source: bool) -> list[str]:
        skipped = set(self.all_special_ids) if skip_special_tokens else set()
        decoder = self._target.id_to_token if self.separate_vocabs else self._source.id_to_token
        model = self._source if use_source else self._target
        added = {index: token.content for index, token in self.added_tokens_decoder.items()}
        tokens = []
        for index in ids:
            if index in skipped:
                continue
            token = added.get(index, decoder.get(index))
            if token is None:
                if not 0 <= index < len(model.pieces):
                    raise InputError(f"Id {index} is neither in the vocabulary nor a piece of the SentencePiece model.")
                token = model.pieces[index]
            tokens.append(token)
        return tokens

    def convert_tokens_to_string(self, tokens: list[str], use_source: bool | None = None) -> str:
        """Special tokens as they are (each followed by a space), the pieces between them decoded by
        SentencePiece, space marks made spaces, the ends stripped."""
        model = self._source if (not self.separate_vocabs if use_source is None else use_source) else self._target
        specials = set(self.all_special_tokens)
        text, stretch = "", []
        for token in tokens:
            if token in specials:
                text += model.decode_pieces(stretch) + token + " "
                stretch = []
            else:
                stretch.append(token)
        return (text + model.decode_pieces(stretch)).replace(_SPACE, " ").strip()

    def decode(
        self, token_ids: Any, skip_special_tokens: bool = False, clean_up_tokenization_spaces: bool | None = None,
        use_source_tokenizer: bool | None = None, **kwargs: Any,
    ) -> Any:
        """Text of ids (a list of texts for a batch); ``use_source_tokenizer`` picks the SentencePiece
        model that joins the pieces (the source one unless the vocabularies are separate)."""
        if kwargs:
            raise InputError(f"Unexpected argument(s) {sorted(kwargs)} for decode.")
        use_source = not self.separate_vocabs if use_source_tokenizer is None else use_source_tokenizer
        ids = _python_ids(token_ids.get("input_ids") if isinstance(token_ids, dict) else token_ids)
        batched = bool(ids) and isinstance(ids[0], list)
        texts = [
            self._clean_up(self.convert_tokens_to_string(self._tokens(row, skip_special_tokens, use_source), use_source),
                           clean_up_tokenization_spaces)
            for row in (ids if batched else [ids])
        ]
        return texts if batched else texts[0]

    def _prepare_texts(self, batch: list[Any], add_special_tokens: bool, plan: Any) -> list[Any]:
        """Runs of unknown characters masked (see ``_SpmSide.mask_unknown_runs``); a language code
        opening a text is one token, as the reference takes it, and one the vocabulary lacks is read
        as the unknown token."""
        side = self._target if self._backend is self._target.backend else self._source

        def prepare(text: Any) -> Any:
            if not isinstance(text, str):
                return text
            text = side.mask_unknown_runs(text)
            end = text.find("<<") if text.startswith(">>") else -1
            if end == -1 or text[: end + 2] in side.vocab:
                return text
            return str(self.unk_token) + text[end + 2:]

        return [tuple(prepare(part) for part in item) if isinstance(item, tuple) else prepare(item) for item in batch]

    def _encode_as_targets(self, call: Any) -> Any:
        with self._lock:
            source = self._backend
            object.__setattr__(self, "_backend", self._target.backend)
            self._target.backend.encode_special_tokens = self._backend_split
            self._forget_call_settings()
            try:
                return call()
            finally:
                object.__setattr__(self, "_backend", source)
                self._forget_call_settings()

    def _encode_targets(self, text: Any, pair: Any, options: dict[str, Any]) -> BatchEncoding:
        return self._encode_as_targets(lambda: self._encode_texts(text, pair, **options))

    def _files_to_save(self) -> dict[str, Any]:
        # As the reference: the vocabularies and both SentencePiece models, no tokenizer.json.
        files = super()._files_to_save()
        del files[TOKENIZER_FILE]
        files[MARIAN_FILES["vocab"]] = json.dumps(self._source.vocab, indent=2)
        if self.separate_vocabs:
            files[MARIAN_FILES["target_vocab_file"]] = json.dumps(self._target.vocab, indent=2)
        files[MARIAN_FILES["source_spm"]] = self._source.model_bytes
        files[MARIAN_FILES["target_spm"]] = self._target.model_bytes
        return files

    def _config_to_save(self) -> dict[str, Any]:
        config = super()._config_to_save()
        config.pop("target_vocab_file", None)
        config["backend"] = "custom"
        # Without a tokenizer.json, the config is where the reference keeps the added tokens.
        config["added_tokens_decoder"] = {
            str(index): {
                "content": token.content, "lstrip": token.lstrip, "normalized": token.normalized,
                "rstrip": token.rstrip, "single_word": token.single_word, "special": token.special,
            }
            for index, token in sorted(self.added_tokens_decoder.items()) if token.special
        }
        return config


def _marian_vocab(source: Source, name: str, where: str) -> dict[str, int]:
    path = source.resolve(name, required=False)
    if path is None:
        raise TokenizerError(f"{where} has no {name}, which a MarianTokenizer numbers its pieces with. Add it.")
    vocab = read_json(path, name, TokenizerError)
    if not isinstance(vocab, dict) or not vocab or not all(
        type(index) is int and index >= 0 for index in vocab.values()
    ):
        raise TokenizerError(f"{path!r} must be a non-empty JSON object mapping tokens to non-negative integer ids.")
    if sorted(vocab.values()) != list(range(len(vocab))):
        raise TokenizerError(f"{path!r} must number its {len(vocab)} tokens 0 to {len(vocab) - 1}, each once.")
    return vocab


def _marian_side(
    source: Source, file_name: str, vocab: dict[str, int], options: dict[str, Any], where: str
) -> _SpmSide:
    """The backend of one side: a Unigram whose ids are the vocabulary's. A vocabulary token that is
    not one of this model's pieces keeps its id but can never be chosen (a space, which encoded text
    never holds, is appended to it), so the pieces chosen are this model's, as in the reference."""
    path = source.resolve(file_name, required=False)
    if path is None:
        raise TokenizerError(f"{where} has no {file_name}, the SentencePiece model a MarianTokenizer needs. Add it.")
    model = read_sentencepiece_model(path)
    with open(path, "rb") as handle:
        model_bytes = handle.read()
    scores = {piece: score for piece, score, kind in model.pieces if kind not in (_CONTROL, _UNKNOWN)}
    unk = str(options["unk_token"])
    if unk not in vocab:
        raise TokenizerError(f"The unknown token {unk!r} is not in the vocabulary of {where}; Marian needs it there.")
    kept = {unk} | {str(options[key]) for key in ("eos_token", "pad_token") if options.get(key)}
    # SentencePiece gives a character it does not know as itself, and the reference numbers it by the
    # vocabulary: such a character keeps the score SentencePiece gives an unknown piece.
    unknown_score = min(scores.values(), default=0.0) - 10.0
    known_chars = {char for piece in scores for char in piece}
    table = [("", 0.0)] * len(vocab)
    for token, index in vocab.items():
        if token in scores or token in kept or _LANGUAGE_CODE.fullmatch(token):
            table[index] = (token, scores.get(token, 0.0))
        elif len(token) == 1 and token not in known_chars and token != _SPACE:
            table[index] = (token, unknown_score)
        else:
            table[index] = (token + " ", 0.0)
    backend = _unigram(table, vocab[unk], repr(path))
    charsmap = _precompiled(model.precompiled_charsmap, repr(path)) if model.precompiled_charsmap else None
    steps = [charsmap] if charsmap is not None else []
    if model.remove_extra_whitespaces:
        steps += [normalizers.Replace(Regex(" {2,}"), " "), normalizers.Replace(Regex("^ | $"), "")]
    if steps:
        backend.normalizer = normalizers.Sequence(steps)
    scheme = "always" if model.add_dummy_prefix else "never"
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement=_SPACE, prepend_scheme=scheme, split=True)
    return _SpmSide(model_bytes, model, vocab, backend, charsmap)


def build_marian_tokenizer(
    source: Source, class_name: str, init_kwargs: dict[str, Any]
) -> MarianTokenizer:
    """Marian's tokenizer from source.spm, target.spm and vocab.json (target_vocab.json too when the
    vocabularies are separate)."""
    options = {key: value for key, value in init_kwargs.items()
               if key not in ("vocab", "vocab_file", "source_spm", "target_spm", "tokenizer_file")}
    MarianTokenizer._settle_options(options)
    where = source.describe()
    sampling = options["sp_model_kwargs"]
    if not isinstance(sampling, dict) or sampling.get("enable_sampling"):
        raise ConfigError(
            f"sp_model_kwargs of {where} is {sampling!r}: leanformers encodes deterministically and does not sample "
            f"segmentations. Remove enable_sampling (or the whole sp_model_kwargs)."
        )
    if not isinstance(options["separate_vocabs"], bool):
        raise ConfigError(f"separate_vocabs of {where} must be true or false, got {options['separate_vocabs']!r}.")
    vocab = _marian_vocab(source, MARIAN_FILES["vocab"], where)
    target_vocab = vocab
    if options["separate_vocabs"]:
        target_vocab = _marian_vocab(source, MARIAN_FILES["target_vocab_file"], where)
    source_side = _marian_side(source, MARIAN_FILES["source_spm"], vocab, options, where)
    target_side = _marian_side(source, MARIAN_FILES["target_spm"], target_vocab, options, where)
    backend = source_side.backend
    # The saved added tokens are those the reference's special tokens became; codes are added here.
    options["added_tokens_decoder"] = {
        index: token for index, token in (options.get("added_tokens_decoder") or {}).items()
        if not _LANGUAGE_CODE.fullmatch(str(token))
    }
    tokenizer = MarianTokenizer(backend, class_name="MarianTokenizer", **options)
    tokenizer._source, tokenizer._target = source_side, target_side
    eos, eos_id = str(tokenizer.eos_token), vocab.get(str(tokenizer.eos_token))
    if eos_id is None:
        raise TokenizerError(f"The eos token {eos!r} is not in the vocabulary of {where}; Marian needs it there.")
    for side in (source_side, target_side):
        side.backend.add_tokens([
            AddedToken(token, normalized=False, special=False) for token in side.vocab if _LANGUAGE_CODE.fullmatch(token)
        ])
        if side is target_side:
            side.backend.add_special_tokens([AddedToken(str(token), normalized=False, special=True)
                                             for token in tokenizer.all_special_tokens])
        side.backend.post_processor = processors.TemplateProcessing(
            single=f"$A:0 {eos}:0", pair=f"$A:0 $B:0 {eos}:0", special_tokens=[(eos, eos_id)],
        )
    return tokenizer


__all__ = [
    "BartTokenizer",
    "MarianTokenizer",
    "T5Tokenizer",
    "WhisperTokenizer",
    "build_bart_tokenizer",
    "build_marian_tokenizer",
    "build_t5_tokenizer",
    "build_whisper_tokenizer",
]
