"""Text generation for causal language models: ``GenerationConfig`` and the greedy / sampling loop.

Settings resolve as in the reference library: the call's keyword arguments override the
``generation_config`` passed in, whose unset (None) fields come from the model's own
``generation_config.json`` (or, without one, the model config's special token ids), and whatever
is still unset takes the library-wide defaults (``max_length`` 20, ``top_k`` 50, ...).

The logits processors run in the reference's order (repetition penalty, n-gram blocking, minimum
lengths, forced tokens, suppressed tokens, then a model's own processors such as Whisper's
timestamp rules, then when sampling temperature, top-k, top-p, min-p) with the same tensor
operations, and sampling draws with ``torch.multinomial`` over a float32 softmax, so a run seeded
with ``torch.manual_seed`` picks the reference's tokens. The prompt fills a ``KVCache`` sized for the whole run; each later step feeds
one token. A streamer receives the prompt, then each step's tokens, then ``end()``: ``TextStreamer``
prints whole words as they form, ``TextIteratorStreamer`` hands them to another thread.
"""

from __future__ import annotations

import copy
import inspect
import json
import math
import os
import queue
from collections.abc import Callable, Iterator
from typing import Any

import torch

from ..errors import CheckpointNotFoundError, ConfigError, InputError
from ..hub import Source, atomic_write, read_json, split_source_options
from .attention import KVCache

GENERATION_CONFIG_NAME = "generation_config.json"

# Every field a caller may set; all start unset (None), as in the reference.
FIELDS = (
    "max_length", "max_new_tokens", "min_length", "min_new_tokens", "do_sample", "num_beams", "temperature",
    "top_k", "top_p", "min_p", "repetition_penalty", "num_return_sequences", "bos_token_id", "eos_token_id",
    "pad_token_id", "use_cache", "return_dict_in_generate", "output_scores", "output_logits",
    "output_attentions", "output_hidden_states", "stop_strings", "typical_p", "no_repeat_ngram_size",
    "bad_words_ids", "epsilon_cutoff", "eta_cutoff", "suppress_tokens", "begin_suppress_tokens",
    "forced_bos_token_id", "forced_eos_token_id", "length_penalty", "early_stopping", "cache_implementation",
    "decoder_start_token_id",
)

# What an unset field means when generating.
DEFAULTS: dict[str, Any] = {
    "max_length": 20, "min_length": 0, "do_sample": False, "num_beams": 1, "temperature": 1.0, "top_k": 50,
    "top_p": 1.0, "repetition_penalty": 1.0, "num_return_sequences": 1, "use_cache": True,
    "return_dict_in_generate": False, "typical_p": 1.0, "no_repeat_ngram_size": 0, "epsilon_cutoff": 0.0,
    "eta_cutoff": 0.0, "length_penalty": 1.0, "early_stopping": False,
}

# Fields whose feature is not implemented: generating with any other value is refused rather than ignored.
NOT_IMPLEMENTED: dict[str, tuple[Any, ...]] = {
    "return_dict_in_generate": (None, False), "output_scores": (None, False), "output_logits": (None, False),
    "output_attentions": (None, False), "output_hidden_states": (None, False),
    "typical_p": (None, 1.0), "bad_words_ids": (None,),
    "epsilon_cutoff": (None, 0.0), "eta_cutoff": (None, 0.0),
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class GenerationConfig:
    """The settings of one ``generate`` call; fields left None fall back to the model's and then the
    library's defaults. Keys it does not know (``transformers_version``, custom entries) are kept
    and saved back."""

    def __init__(self, **kwargs: Any) -> None:
        for key in FIELDS:
            self.__dict__[key] = None
        for key, value in kwargs.items():
            self.__dict__[key] = value
        self.validate()

    def update(self, **kwargs: Any) -> dict[str, Any]:
        """Set the given fields (known ones and custom keys already present); return the others."""
        unused = {}
        for key, value in kwargs.items():
            if key in self.__dict__:
                self.__dict__[key] = value
            else:
                unused[key] = value
        self.validate()
        return unused

    def validate(self) -> None:
        """Raise ConfigError for a value no generation could use."""
        def fail(key: str, want: str) -> None:
            raise ConfigError(f"GenerationConfig.{key} must be {want}, got {self.__dict__[key]!r}.")

        get = self.__dict__.get
        for key, low in (("max_length", 0), ("min_length", 0), ("min_new_tokens", 0), ("max_new_tokens", 1),
                         ("num_beams", 1), ("num_return_sequences", 1), ("top_k", 0), ("no_repeat_ngram_size", 0)):
            if get(key) is not None and (not _is_int(get(key)) or get(key) < low):
                fail(key, f"an int >= {low}")
        for key in ("do_sample", "use_cache", "return_dict_in_generate"):
            if get(key) is not None and not isinstance(get(key), bool):
                fail(key, "True or False")
        if get("temperature") is not None and (not _is_number(get("temperature")) or get("temperature") < 0):
            fail("temperature", "a number >= 0 (and > 0 when sampling)")
        if get("do_sample") and get("temperature") is not None and get("temperature") <= 0:
            fail("temperature", "> 0 when do_sample=True (use do_sample=False for greedy decoding)")
        if get("top_p") is not None and (not _is_number(get("top_p")) or not 0 < get("top_p") <= 1):
            fail("top_p", "a number in (0, 1]")
        if get("min_p") is not None and (not _is_number(get("min_p")) or not 0 <= get("min_p") <= 1):
            fail("min_p", "a number in [0, 1]")
        if get("repetition_penalty") is not None and (
            not _is_number(get("repetition_penalty")) or get("repetition_penalty") <= 0
        ):
            fail("repetition_penalty", "a number > 0 (1.0: no penalty)")
        for key in ("bos_token_id", "decoder_start_token_id"):
            if get(key) is not None and (not _is_int(get(key)) or get(key) < 0):
                fail(key, "a token id (an int >= 0) or None")
        # Some checkpoints write pad_token_id -1; the reference accepts it (finished rows are filled with it).
        if get("pad_token_id") is not None and not _is_int(get("pad_token_id")):
            fail("pad_token_id", "an int or None")
        if get("early_stopping") is not None and get("early_stopping") not in (True, False, "never"):
            fail("early_stopping", 'True, False or "never"')
        if get("length_penalty") is not None and not _is_number(get("length_penalty")):
            fail("length_penalty", "a number (> 0 favours longer sequences, < 0 shorter ones)")
        if get("forced_bos_token_id") is not None and (
            not _is_int(get("forced_bos_token_id")) or get("forced_bos_token_id") < 0
        ):
            fail("forced_bos_token_id", "a token id (an int >= 0) or None")
        forced_eos = get("forced_eos_token_id")
        if forced_eos is not None and not (
            (_is_int(forced_eos) and forced_eos >= 0)
            or (isinstance(forced_eos, (list, tuple)) and forced_eos and all(_is_int(i) and i >= 0 for i in forced_eos))
        ):
            fail("forced_eos_token_id", "a token id, a non-empty list of token ids, or None")
        stops = get("stop_strings")
        if stops is not None and not (
            (isinstance(stops, str) and stops)
            or (isinstance(stops, (list, tuple)) and stops and all(isinstance(x, str) and x for x in stops))
        ):
            fail("stop_strings", "a non-empty string, a non-empty list of them, or None")
        for key in ("suppress_tokens", "begin_suppress_tokens"):
            tokens = get(key)
            if tokens is not None and not (
                isinstance(tokens, (list, tuple)) and all(_is_int(i) and i >= 0 for i in tokens)
            ):
                fail(key, "a list of token ids (ints >= 0) or None")
        if get("suppress_tokens") is not None:
            for key in ("forced_bos_token_id", "forced_eos_token_id"):
                forced = get(key)
                forced = {forced} if _is_int(forced) else set(forced or ())
                if forced and forced <= set(get("suppress_tokens")):
                    raise ConfigError(
                        f"GenerationConfig.{key} ({sorted(forced)}) is all in suppress_tokens: the forced step would "
                        f"have no token left. Remove the overlap from one of them (to keep EOS away early, use "
                        "min_new_tokens instead)."
                    )
        eos = get("eos_token_id")
        if eos is not None and not (
            (_is_int(eos) and eos >= 0)
            or (isinstance(eos, (list, tuple)) and eos and all(_is_int(i) and i >= 0 for i in eos))
        ):
            fail("eos_token_id", "a token id, a non-empty list of token ids, or None")

    def __getattr__(self, key: str) -> Any:
        raise AttributeError(f"GenerationConfig has no field {key!r}.")

    def __setattr__(self, key: str, value: Any) -> None:
        self.__dict__[key] = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GenerationConfig) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"GenerationConfig {json.dumps(self.to_dict(), indent=2, sort_keys=True)}"

    def to_dict(self) -> dict[str, Any]:
        """The fields that are set and every custom key."""
        items = self.__dict__.items()
        return {key: copy.deepcopy(value) for key, value in items if value is not None or key not in FIELDS}

    def save_pretrained(self, save_directory: str | os.PathLike) -> str:
        """Write ``generation_config.json`` into ``save_directory`` (created if needed); returns its path."""
        if os.path.isfile(save_directory):
            raise ConfigError(f"save_pretrained needs a folder, but {os.fspath(save_directory)!r} is a file.")
        os.makedirs(save_directory, exist_ok=True)
        path = os.path.join(save_directory, GENERATION_CONFIG_NAME)
        atomic_write(path, json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any], **kwargs: Any) -> GenerationConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"A generation config must be a JSON object, got {type(data).__name__}.")
        return cls(**{**data, **kwargs})

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, **kwargs: Any) -> GenerationConfig:
        """Read a checkpoint's ``generation_config.json`` (the hub options of ``from_pretrained``
        apply); other keyword arguments override its fields."""
        options, kwargs = split_source_options(dict(kwargs))
        source = Source.of(name_or_path, **options)
        found = cls.find(source)
        if found is None:
            raise CheckpointNotFoundError(f"{source.describe()} has no {GENERATION_CONFIG_NAME}.")
        return cls.from_dict(found.to_dict(), **kwargs)

    @classmethod
    def find(cls, source: Source) -> GenerationConfig | None:
        """The checkpoint's ``generation_config.json``, or None when it has none."""
        path = source.resolve(GENERATION_CONFIG_NAME, required=False)
        if path is None:
            return None
        try:
            return cls.from_dict(read_json(path, "generation config"))
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from exc

    @classmethod
    def from_model_config(cls, config: Any) -> GenerationConfig:
        """Without a ``generation_config.json``, the generation settings the model config carries
        (the special token ids; older files also sampling and beam settings), as the reference."""
        def chosen(key: str, value: Any) -> bool:  # model configs carry some defaults of their own
            return value is not None and value != DEFAULTS.get(key) and value not in NOT_IMPLEMENTED.get(key, ())

        found = {key: getattr(config, key, None) for key in FIELDS}
        return cls(**{key: value for key, value in found.items() if chosen(key, value)})


class GenerationMixin:
    """Adds ``generate`` and a ``generation_config`` (read at ``from_pretrained``) to a causal LM."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args: Any, **kwargs: Any) -> Any:
        options, _ = split_source_options(dict(kwargs))
        loaded = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        found = GenerationConfig.find(Source.of(pretrained_model_name_or_path, **options))
        model.generation_config = found if found is not None else GenerationConfig.from_model_config(model.config)
        return loaded

    @property
    def generation_config(self) -> GenerationConfig:
        if self.__dict__.get("_generation_config") is None:
            self.__dict__["_generation_config"] = GenerationConfig.from_model_config(self.config)
        return self.__dict__["_generation_config"]

    @generation_config.setter
    def generation_config(self, value: GenerationConfig) -> None:
        if not isinstance(value, GenerationConfig):
            raise ConfigError(f"generation_config must be a GenerationConfig, got {type(value).__name__}.")
        self.__dict__["_generation_config"] = value

    def generate(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
        generation_config: GenerationConfig | None = None, streamer: Any = None, tokenizer: Any = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        """Continue each prompt row; see the module function ``generate``."""
        return generate(self, input_ids, attention_mask, generation_config, streamer, tokenizer, **kwargs)

    def save_pretrained(self, save_directory: str | os.PathLike, *args: Any, **kwargs: Any) -> None:
        super().save_pretrained(save_directory, *args, **kwargs)
        if self.__dict__.get("_generation_config") is not None:
            self.generation_config.save_pretrained(save_directory)


def resolve_config(
    model: Any, generation_config: GenerationConfig | None, kwargs: dict[str, Any],
    inputs: str = "input_ids, attention_mask",
) -> GenerationConfig:
    """The call's settings: ``kwargs`` over ``generation_config`` over the model's over the defaults.
    ``inputs`` names the other arguments the caller's ``generate`` takes (for the error on unknown
    ones)."""
    config = copy.deepcopy(generation_config) if generation_config is not None else GenerationConfig()
    for source in (model.generation_config.to_dict(), DEFAULTS):
        for key, value in source.items():
            if config.__dict__.get(key) is None:
                config.__dict__[key] = copy.deepcopy(value)
    try:
        unused = config.update(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"generate: {exc}") from exc
    if unused:
        raise InputError(
            f"generate got unknown arguments {sorted(unused)}: they are neither generation settings "
            f"(GenerationConfig fields) nor inputs generate accepts ({inputs})."
        )
    for key, neutral in NOT_IMPLEMENTED.items():
        if config.__dict__.get(key) not in neutral:
            raise ConfigError(f"generate does not implement {key}={config.__dict__[key]!r}; leave it unset.")
    if config.num_return_sequences > 1 and not config.do_sample and config.num_beams == 1:
        raise ConfigError(
            "num_return_sequences > 1 needs do_sample=True or num_beams > 1: greedy decoding would return the same "
            "sequence each time."
        )
    if config.num_return_sequences > config.num_beams > 1:
        raise ConfigError(
            f"num_return_sequences ({config.num_return_sequences}) cannot exceed num_beams ({config.num_beams}): beam "
            "search returns its best finished beams."
        )
    return config


def _check_inputs(input_ids: Any, attention_mask: Any) -> None:
    if not isinstance(input_ids, torch.Tensor):
        raise InputError(f"generate needs input_ids as a (batch, seq) integer tensor, got {type(input_ids).__name__}.")
    shape = tuple(input_ids.shape)
    if input_ids.dim() != 2 or input_ids.dtype not in (torch.long, torch.int):
        raise InputError(f"generate needs input_ids as a (batch, seq) integer tensor, got {input_ids.dtype} {shape}.")
    if 0 in shape:
        raise InputError(f"generate needs at least one prompt token per row, got input_ids of shape {shape}.")
    if attention_mask is not None and (
        not isinstance(attention_mask, torch.Tensor) or attention_mask.shape != input_ids.shape
    ):
        got = tuple(attention_mask.shape) if isinstance(attention_mask, torch.Tensor) else type(attention_mask).__name__
        raise InputError(f"attention_mask must have input_ids' shape {tuple(input_ids.shape)}, got {got}.")


Processor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _constraints(
    config: GenerationConfig, eos: torch.Tensor | None, prompt_length: int, padding: torch.Tensor, max_length: int,
) -> list[Processor]:
    """The logits processors that constrain which tokens may come, in the reference's order (the
    sampling filters follow them, see ``_filters``)."""
    steps: list[Processor] = []
    if config.repetition_penalty != 1.0:
        penalty = float(config.repetition_penalty)

        def repetition(ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
            vocab = scores.shape[-1]
            # Left padding is no repetition: its ids go to a spare column that is dropped again.
            spare = torch.arange(ids.shape[1], device=ids.device)[None] < padding[:, None]
            ids = ids.masked_fill(spare, vocab).clamp(max=vocab)
            padded = torch.nn.functional.pad(scores, (0, 1))
            seen = padded.gather(1, ids)
            seen = torch.where(seen < 0, seen * penalty, seen / penalty)
            return padded.scatter(1, ids, seen)[..., :vocab]

        steps.append(repetition)
    if config.no_repeat_ngram_size:
        size = config.no_repeat_ngram_size

        def no_repeat_ngram(ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
            if ids.shape[-1] < size:
                return scores
            # The next token completes an n-gram seen before wherever the last size - 1 tokens occurred
            # already: it may not be the token that followed them there.
            suffix = ids[:, ids.shape[-1] + 1 - size:]
            windows = ids.unfold(1, size, 1)
            seen = (windows[..., :-1] == suffix[:, None]).all(dim=-1)
            vocab = scores.shape[-1]
            banned = scores.new_zeros((scores.shape[0], vocab + 1), dtype=torch.bool)
            banned.scatter_(1, torch.where(seen, windows[..., -1].clamp(max=vocab), vocab), True)
            return scores.masked_fill(banned[:, :vocab], -math.inf)

        steps.append(no_repeat_ngram)
    if eos is not None:
        floors = [config.min_length] if config.min_length > 0 else []
        floors += [prompt_length + config.min_new_tokens] if config.min_new_tokens else []
        for floor in floors:
            def no_eos(ids: torch.Tensor, scores: torch.Tensor, floor: int = floor) -> torch.Tensor:
                if ids.shape[-1] >= floor:
                    return scores
                is_eos = torch.isin(torch.arange(scores.shape[-1], device=scores.device), eos)
                return torch.where(is_eos, -math.inf, scores)

            steps.append(no_eos)
    if config.forced_bos_token_id is not None:
        bos = config.forced_bos_token_id

        def force_bos(ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
            if ids.shape[-1] != 1:
                return scores
            forced = torch.full_like(scores, -math.inf)
            forced[:, bos] = 0
            return forced

        steps.append(force_bos)
    if config.forced_eos_token_id is not None:
        forced_eos = torch.tensor(config.forced_eos_token_id).reshape(-1)

        def force_eos(ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
            if ids.shape[-1] != max_length - 1:
                return scores
            forced = torch.full_like(scores, -math.inf)
            forced[:, forced_eos.to(scores.device)] = 0
            return forced

        steps.append(force_eos)
    if config.suppress_tokens is not None:
        steps.append(suppress_tokens(config.suppress_tokens))
    if config.begin_suppress_tokens is not None:
        # The first generated position; a forced BOS token takes it when the prompt is one token.
        begin = prompt_length + (1 if prompt_length == 1 and config.forced_bos_token_id is not None else 0)
        steps.append(suppress_tokens(config.begin_suppress_tokens, at_length=begin))
    return steps


def suppress_tokens(token_ids: list[int] | tuple[int, ...], at_length: int | None = None) -> Processor:
    """A processor giving ``token_ids`` no chance: at every step, or only when the sequences are
    ``at_length`` long (the first generated position, for ``begin_suppress_tokens``). Ids past
    the vocabulary are ignored, as the reference ignores them."""
    banned_ids = torch.tensor(list(token_ids), dtype=torch.long)
    masks: dict[tuple[int, torch.device], torch.Tensor] = {}  # built once per vocabulary size and device

    def suppress(ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if at_length is not None and ids.shape[-1] != at_length:
            return scores
        key = (scores.shape[-1], scores.device)
        if key not in masks:
            vocab = torch.arange(scores.shape[-1], device=scores.device)
            masks[key] = torch.isin(vocab, banned_ids.to(scores.device))
        return scores.masked_fill(masks[key], -math.inf)

    return suppress


def _filters(config: GenerationConfig, eos: torch.Tensor | None) -> list[Processor]:
    """The sampling filters (temperature, top-k, top-p, min-p), in the reference's order. Sampled
    beams keep at least one token more than there are EOS ids at every filter, so a beam can
    always go on."""
    if not config.do_sample:
        return []
    keep = 1 if config.num_beams == 1 else (1 if eos is None else eos.shape[0]) + 1
    steps: list[Processor] = []
    if config.temperature != 1.0:
        temperature = float(config.temperature)
        steps.append(lambda ids, scores: scores / temperature)
    if config.top_k != 0:
        top_k = max(config.top_k, keep)

        def keep_top_k(ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
            kth = torch.topk(scores, min(top_k, scores.shape[-1]))[0][..., -1, None]
            return scores.masked_fill(scores < kth, -math.inf)

        steps.append(keep_top_k)
    if config.top_p < 1.0:
        top_p = float(config.top_p)

        def keep_top_p(ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
            ordered, order = torch.sort(scores, descending=False)
            drop = ordered.softmax(dim=-1).cumsum(dim=-1) <= (1 - top_p)
            drop[..., -keep:] = 0  # the most likely tokens always stay
            return scores.masked_fill(drop.scatter(1, order, drop), -math.inf)

        steps.append(keep_top_p)
    if config.min_p is not None:
        min_p = float(config.min_p)

        def keep_min_p(ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
            probs = torch.softmax(scores, dim=-1)
            drop = probs < min_p * probs.amax(dim=-1, keepdim=True)
            drop.scatter_(-1, torch.topk(probs, keep, dim=-1).indices, False)
            return scores.masked_fill(drop, -math.inf)

        steps.append(keep_min_p)
    return steps


@torch.no_grad()
def generate(
    model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
    generation_config: GenerationConfig | None = None, streamer: Any = None, tokenizer: Any = None,
    **kwargs: Any,
) -> torch.Tensor:
    """Greedy, sampled or beam-search continuation of left-padded prompts: the (batch *
    num_return_sequences, prompt + new) ids, rows that stopped early filled with ``pad_token_id``
    (the first EOS id when unset), as the reference returns them by default. ``stop_strings`` need
    the model's ``tokenizer``: a row stops once its text ends with one (see ``StopStrings``).

    For an encoder-decoder model (``config.is_encoder_decoder``) ``input_ids`` is the source: it is
    encoded once and the decoder generates from ``decoder_start_token_id``; the result is the
    decoder's ids, as the reference returns them."""
    check_streamer(streamer)
    if generation_config is not None and not isinstance(generation_config, GenerationConfig):
        raise InputError(f"generation_config must be a GenerationConfig, got {type(generation_config).__name__}.")
    # Whether the caller or the checkpoint chose max_length, before the defaults fill it in.
    layers = [kwargs, model.generation_config.__dict__] + ([generation_config.__dict__] if generation_config else [])
    max_length_chosen = any(layer.get("max_length") is not None for layer in layers)
    config = resolve_config(model, generation_config, kwargs)
    _check_inputs(input_ids, attention_mask)
    stop_strings = None
    if config.stop_strings is not None:
        if tokenizer is None:
            raise InputError(
                f"stop_strings={config.stop_strings!r} needs the model's tokenizer to read the generated text: "
                "pass tokenizer=... to generate."
            )
        stop_strings = StopStrings(tokenizer, config.stop_strings)
    positions_limit = getattr(model.config, "max_position_embeddings", None)
    rope = getattr(model.config, "rope_parameters", None) or {}
    # Dynamic rotary scaling exists to run past the trained length; every other model cannot.
    if positions_limit is not None and rope.get("rope_type") != "dynamic" and input_ids.shape[-1] > positions_limit:
        raise InputError(
            f"The prompt has {input_ids.shape[-1]} tokens but the model has {positions_limit} positions "
            "(max_position_embeddings): shorten or truncate the prompt."
        )
    device = model.device
    input_ids = input_ids.to(device=device, dtype=torch.long)

    eos, pad = special_ids(config, device)
    if attention_mask is None:
        # As the reference: padding is recognisable only when the pad id occurs and is not an EOS id.
        inferable = pad is not None and bool((input_ids == pad).any()) and (eos is None or not bool((eos == pad).any()))
        attention_mask = (input_ids != pad).long() if inferable else torch.ones_like(input_ids)
    attention_mask = attention_mask.to(device=device, dtype=torch.long)
    encoded = source_mask = None
    if getattr(model.config, "is_encoder_decoder", False):
        encoder = model.get_encoder()
        # The decoder reads the source through its mask only: an encoder that can leave padded
        # positions uncomputed (BART's, running packed) is told so.
        options = {"padding_unread": True} if "padding_unread" in inspect.signature(encoder.forward).parameters else {}
        source_mask, encoded = attention_mask, encoder(
            input_ids=input_ids, attention_mask=attention_mask, return_dict=True, **options
        )
        start = config.decoder_start_token_id if config.decoder_start_token_id is not None else config.bos_token_id
        if start is None:
            raise ConfigError(
                "This encoder-decoder model has no decoder_start_token_id (nor bos_token_id): set one in the "
                "generation config or pass decoder_start_token_id=... to generate."
            )
        input_ids = torch.full((input_ids.shape[0], 1), start, dtype=torch.long, device=device)
        attention_mask = torch.ones_like(input_ids)
    prompt_length = input_ids.shape[1]

    if config.max_new_tokens is not None:
        max_length = config.max_new_tokens + prompt_length
    elif not max_length_chosen:
        max_length = config.max_length + prompt_length
        max_length = min(max_length, positions_limit) if positions_limit is not None else max_length
    else:
        max_length = config.max_length
    return decode(model, config, input_ids, attention_mask, max_length, encoded=encoded, source_mask=source_mask,
                  streamer=streamer, stop_strings=stop_strings)


def check_streamer(streamer: Any) -> None:
    if streamer is not None and not all(callable(getattr(streamer, name, None)) for name in ("put", "end")):
        raise InputError(f"streamer must have put(tokens) and end() methods, got {type(streamer).__name__}.")


def special_ids(config: GenerationConfig, device: torch.device) -> tuple[torch.Tensor | None, int | None]:
    """The EOS ids as a tensor (None without any) and the id that fills finished rows: the pad id,
    else the first EOS id."""
    eos = None if config.eos_token_id is None else torch.tensor(config.eos_token_id, device=device).reshape(-1)
    pad = config.pad_token_id if config.pad_token_id is not None else (None if eos is None else int(eos[0]))
    return eos, pad


def decode(
    model: Any, config: GenerationConfig, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_length: int,
    *, encoded: Any = None, source_mask: torch.Tensor | None = None, streamer: Any = None,
    stop_strings: StopStrings | None = None, processors: list[Processor] | tuple[Processor, ...] = (),
) -> torch.Tensor:
    """The decoding loop of ``generate`` once its settings are resolved: continue ``input_ids`` (the
    prompt, or an encoder-decoder model's decoder prompt, next to its ``encoded`` source) up to
    ``max_length`` tokens. ``processors`` are a model's own logits processors: they run after the
    generation config's constraints and before the sampling filters, where the reference puts a
    caller's processors."""
    if streamer is not None and config.num_beams > 1:
        raise ConfigError("A streamer cannot follow beam search: the best beam is known only at the end.")
    device = input_ids.device
    eos, pad = special_ids(config, device)
    prompt_length = input_ids.shape[1]
    if prompt_length >= max_length:
        raise InputError(
            f"The prompt has {prompt_length} tokens but max_length is {max_length}: set max_new_tokens instead."
        )
    if config.min_new_tokens is not None:
        config.min_length = prompt_length + config.min_new_tokens
    if streamer is not None:
        streamer.put(input_ids.cpu())
    encoder_decoder = encoded is not None

    # Beam search runs num_beams copies of each prompt (and returns its best beams); sampling one
    # copy per sequence to return.
    copies = config.num_beams if config.num_beams > 1 else config.num_return_sequences
    if copies > 1:
        input_ids = input_ids.repeat_interleave(copies, dim=0)
        attention_mask = attention_mask.repeat_interleave(copies, dim=0)
        if encoder_decoder:
            source_mask = None if source_mask is None else source_mask.repeat_interleave(copies, dim=0)
            encoded.last_hidden_state = encoded.last_hidden_state.repeat_interleave(copies, dim=0)
    padding = (attention_mask != 0).int().argmax(dim=1)
    steps = [*_constraints(config, eos, prompt_length, padding, max_length), *processors, *_filters(config, eos)]

    # A decoder-only model's cache is made here: a block of the run's length sizes it exactly (the
    # default block would round it up by as much as 255 unused positions per layer). An
    # encoder-decoder model makes its own on the first step (it also holds the encoder's projections).
    cache = None
    if config.use_cache and not encoder_decoder:
        cache = KVCache(model.config.num_hidden_layers, capacity=max_length, block=max_length)
    rebuild = getattr(model, "cache_rebuild_length", None)
    rebuild_after = rebuild() if callable(rebuild) else None
    positions = attention_mask.cumsum(-1) - 1
    positions = positions.masked_fill(attention_mask == 0, 0)

    def next_logits(sequences: torch.Tensor) -> torch.Tensor:
        """The float32 logits of each row's next token, feeding the model what its cache lacks."""
        nonlocal cache
        stale = rebuild_after is not None and cache is not None
        if stale and cache.get_seq_length() <= rebuild_after < sequences.shape[1]:
            cache = KVCache(model.config.num_hidden_layers, capacity=max_length, block=max_length)
        cached = cache.get_seq_length() if cache is not None else 0
        step_ids = sequences[:, cached:]
        if encoder_decoder:
            out = model(
                encoder_outputs=encoded, attention_mask=source_mask, decoder_input_ids=step_ids,
                past_key_values=cache, use_cache=config.use_cache, return_dict=True,
            )
            cache = out.past_key_values if config.use_cache else None
        else:
            out = model(
                step_ids, attention_mask=attention_mask, position_ids=positions[:, cached:], past_key_values=cache,
                use_cache=cache is not None, return_dict=True, logits_to_keep=1,
            )
        return out.logits[:, -1].to(dtype=torch.float32, copy=True)

    def grow() -> None:
        nonlocal attention_mask, positions
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones(attention_mask.shape[0], 1)], dim=-1)
        positions = torch.cat([positions, positions[:, -1:] + 1], dim=-1)

    if config.num_beams > 1:
        from .beam import beam_search

        def step(sequences: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
            # Every beam of a prompt shares its padding: the mask and positions need no reordering.
            if rows is not None:
                grow()
                if cache is not None:
                    cache.reorder(rows)
            return next_logits(sequences)

        return beam_search(
            step, input_ids, steps, [stop_strings] if stop_strings is not None else [],
            num_beams=config.num_beams, max_length=max_length, length_penalty=float(config.length_penalty),
            early_stopping=config.early_stopping, do_sample=config.do_sample,
            num_return_sequences=config.num_return_sequences, eos=eos,
            fill=(pad if pad else int(eos[0])) if eos is not None else -1,
        )

    unfinished = torch.ones(input_ids.shape[0], dtype=torch.long, device=device)
    while True:
        scores = next_logits(input_ids)
        for process in steps:
            scores = process(input_ids, scores)
        if config.do_sample:
            chosen_ids = torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1).squeeze(1)
        else:
            chosen_ids = torch.argmax(scores, dim=-1)
        if eos is not None:  # as the reference: finished rows are padded only when EOS ids exist
            chosen_ids = chosen_ids * unfinished + pad * (1 - unfinished)
        input_ids = torch.cat([input_ids, chosen_ids[:, None]], dim=-1)
        if streamer is not None:
            streamer.put(chosen_ids.cpu())
        done = input_ids.shape[1] >= max_length
        if eos is not None:
            unfinished = unfinished * (~torch.isin(chosen_ids, eos)).long()
        if stop_strings is not None:
            unfinished = unfinished * (~stop_strings(input_ids)).long()
        if done or not bool(unfinished.any()):
            if streamer is not None:
                streamer.end()
            return input_ids
        grow()


def _byte_symbols() -> dict[str, int]:
    """Byte-level BPE's printable stand-in for each byte -> the byte (GPT-2's table: printable
    Latin-1 bytes stand for themselves, the others take the code points from 256 up, in order)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            table[chr(byte)] = byte
        else:
            table[chr(256 + extra)] = byte
            extra += 1
    return table


class StopStrings:
    """Whether each row's text now ends with a stop string, as the reference decides it: the stop
    string must lie within the text of the row's last tokens and reach into the newest one (so a
    string generated earlier, or one the prompt ends with, does not stop a later step), and it
    may begin inside an earlier token or end inside the newest.

    Tokens are compared as the text each one yields: for byte-level BPE and byte-fallback
    vocabularies as bytes, so a stop string can end in the middle of a multi-byte character."""

    PREFIX = "abcdef"  # decoded before a token so that leading-space rules apply as mid-text

    def __init__(self, tokenizer: Any, stop_strings: str | list[str]) -> None:
        needed = ("get_vocab", "convert_tokens_to_string", "convert_ids_to_tokens")
        if not all(callable(getattr(tokenizer, name, None)) for name in needed) or not callable(tokenizer):
            raise InputError(f"stop_strings need the model's tokenizer, got {type(tokenizer).__name__}.")
        self.tokenizer = tokenizer
        self.mode = self._matching_mode(tokenizer)
        texts = [stop_strings] if isinstance(stop_strings, str) else list(stop_strings)
        self.targets = [text.encode("utf-8") if self.mode else text for text in texts]
        self.window = max(len(target) for target in self.targets)  # a token yields at least one unit
        self.tokens = {index: token for token, index in tokenizer.get_vocab().items()}
        self.base = tokenizer.convert_ids_to_tokens(tokenizer(self.PREFIX, add_special_tokens=False)["input_ids"])
        self.bytes_of = _byte_symbols() if self.mode == "byte_level" else None
        self.pieces: dict[int, str | bytes | None] = {}

    @staticmethod
    def _matching_mode(tokenizer: Any) -> str | None:
        decoder = getattr(tokenizer, "decoder", None)
        if decoder is None:
            return None
        if type(decoder).__name__ == "ByteLevel":
            return "byte_level"
        try:
            state = json.loads(decoder.__getstate__())
        except (TypeError, ValueError, AttributeError):
            return None

        def kinds(node: Any) -> Iterator[str]:
            if isinstance(node, dict):
                yield node.get("type", "")
                for value in node.values():
                    yield from kinds(value)
            elif isinstance(node, list):
                for value in node:
                    yield from kinds(value)

        found = set(kinds(state))
        return "byte_fallback" if "ByteFallback" in found else "byte_level" if "ByteLevel" in found else None

    def piece(self, index: int) -> str | bytes | None:
        """The text token ``index`` adds to a sequence (None: not a token of the vocabulary)."""
        if index in self.pieces:
            return self.pieces[index]
        token = self.tokens.get(index)
        text: str | bytes | None = None
        if token is not None:
            if self.mode == "byte_level" and all(char in self.bytes_of for char in token):
                text = bytes(self.bytes_of[char] for char in token)
            elif self.mode == "byte_fallback" and len(token) == 6 and token.startswith("<0x") and token.endswith(">") \
                    and all(char in "0123456789abcdefABCDEF" for char in token[3:5]):
                text = bytes([int(token[3:5], 16)])
            else:
                decoded = self.tokenizer.convert_tokens_to_string([*self.base, token])
                text = decoded[decoded.index(self.PREFIX) + len(self.PREFIX):]
                if self.mode is not None:
                    text = text.encode("utf-8")
        self.pieces[index] = text
        return text

    def __call__(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(batch,) True where a row's newest token completes a stop string."""
        found = []
        for row in input_ids[:, -self.window:].tolist():
            pieces = []
            for index in reversed(row):  # newest first, up to a non-vocabulary id
                piece = self.piece(index)
                if piece is None:
                    break
                pieces.append(piece)
            if not pieces:
                found.append(False)
                continue
            text = pieces[0][:0].join(reversed(pieces))
            newest_starts = len(text) - len(pieces[0])
            found.append(any(self._reaches(text, target, newest_starts) for target in self.targets))
        return torch.tensor(found, dtype=torch.bool, device=input_ids.device)

    @staticmethod
    def _reaches(text: str | bytes, target: str | bytes, newest_starts: int) -> bool:
        start = text.find(target, max(0, newest_starts - len(target) + 1))
        return start != -1


def _is_cjk(char: str) -> bool:
    """CJK ideographs are words of their own: they are shown without waiting for a space."""
    point = ord(char)
    return any(low <= point <= high for low, high in (
        (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
        (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F),
    ))


class TextStreamer:
    """Prints the generated text as whole words form (one prompt row only).

    The tokens since the last line break are decoded together and only text up to the last space
    (a whole line at a line break, any CJK character at once) is released, so a character split
    over several byte-level tokens is never shown half decoded. ``skip_prompt`` leaves the prompt
    out; ``decode_kwargs`` go to ``tokenizer.decode`` (``skip_special_tokens=True``, ...).
    """

    def __init__(self, tokenizer: Any, skip_prompt: bool = False, **decode_kwargs: Any) -> None:
        if not callable(getattr(tokenizer, "decode", None)):
            raise InputError(f"TextStreamer needs a tokenizer with a decode method, got {type(tokenizer).__name__}.")
        self.tokenizer, self.skip_prompt, self.decode_kwargs = tokenizer, skip_prompt, decode_kwargs
        self.token_cache: list[int] = []
        self.print_len = 0
        self.next_tokens_are_prompt = True

    def put(self, value: torch.Tensor) -> None:
        if value.dim() > 1:
            if value.shape[0] > 1:
                raise InputError(f"{type(self).__name__} streams one row; generate got a batch of {value.shape[0]}.")
            value = value[0]
        if self.skip_prompt and self.next_tokens_are_prompt:
            self.next_tokens_are_prompt = False
            return
        self.token_cache.extend(value.tolist())
        text = self.tokenizer.decode(self.token_cache, **self.decode_kwargs)
        if text.endswith("\n"):
            released = text[self.print_len:]
            self.token_cache, self.print_len = [], 0
        elif text and _is_cjk(text[-1]):
            released = text[self.print_len:]
            self.print_len += len(released)
        else:
            released = text[self.print_len:text.rfind(" ") + 1]
            self.print_len += len(released)
        self.on_finalized_text(released)

    def end(self) -> None:
        """Release whatever is held back and close the stream."""
        released = ""
        if self.token_cache:
            released = self.tokenizer.decode(self.token_cache, **self.decode_kwargs)[self.print_len:]
        self.token_cache, self.print_len = [], 0
        self.next_tokens_are_prompt = True
        self.on_finalized_text(released, stream_end=True)

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        print(text, flush=True, end=None if stream_end else "")


class TextIteratorStreamer(TextStreamer):
    """Yields the text pieces to a consumer thread while ``generate`` runs in another; ``timeout``
    (seconds) bounds each wait on either side."""

    def __init__(self, tokenizer: Any, skip_prompt: bool = False, timeout: float | None = None, **decode_kwargs: Any):
        super().__init__(tokenizer, skip_prompt, **decode_kwargs)
        self.text_queue: queue.Queue[str | None] = queue.Queue()
        self.timeout = timeout

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        self.text_queue.put(text, timeout=self.timeout)
        if stream_end:
            self.text_queue.put(None, timeout=self.timeout)

    def __iter__(self) -> TextIteratorStreamer:
        return self

    def __next__(self) -> str:
        text = self.text_queue.get(timeout=self.timeout)
        if text is None:
            raise StopIteration
        return text


__all__ = ["GenerationConfig", "GenerationMixin", "TextIteratorStreamer", "TextStreamer", "decode", "generate"]
