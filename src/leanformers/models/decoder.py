"""One config-driven decoder for the Llama family of causal language models: Llama (and SmolLM),
Mistral, Qwen2, Qwen3, Gemma, Gemma 2, Gemma 3 (text), Phi-3 and OLMo 2 are the same network with
different flags (litgpt's single ``GPT`` class).

What a family changes lives on its config class as data: which projections carry biases and whether
they are fused (Phi-3), whether queries and keys are RMS-normalised per head (Qwen3, Gemma 3) or over
their full width (OLMo 2), where the layer norms sit (before each block; also after it, Gemma 2/3;
only after it, OLMo 2), the norm's arithmetic (Gemma scales by 1 + w), scaled embeddings, attention
scale and soft-caps, which layers attend through a sliding window, per-layer-type rotary settings
(Gemma 3) and partial rotary dimensions (Phi-3). The modules read only the resolved flags, so a new
family is a config subclass and two aliases.

Module paths equal the reference library's checkpoint keys (``model.layers.0.self_attn.q_proj.weight``,
``model.norm.weight``, ``lm_head.weight``). Attention goes through ``attend`` with a causal ``Mask``
whose offset is the cache's length, so prefill and one-token steps share one code path; the
``KVCache`` comes back as ``past_key_values``. As in the reference's forward, positions default to
0, 1, ... after the cached ones whatever the padding; ``left_padded_positions`` gives the positions
the reference's generation loop uses for left-padded prompts.
"""

from __future__ import annotations

import copy
import math
import sys
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..configuration import PretrainedConfig
from ..errors import ConfigError, InputError
from ..modeling.activations import get_activation
from ..modeling.attention import (
    KVCache,
    Mask,
    PackedBatch,
    attend,
    pack_batch,
    rotate,
    run_layers,
)
from ..modeling.base import PreTrainedModel
from ..modeling.checks import (
    check_logits_to_keep,
    check_positions,
    check_text_inputs,
    embedding_lookup,
    positive_int,
)
from ..modeling.generation import GenerationMixin
from ..modeling.losses import causal_lm_loss
from ..modeling.outputs import BaseModelOutputWithPast, CausalLMOutputWithPast

FULL, SLIDING = "full_attention", "sliding_attention"

# rope_type -> the keys its settings must name (beyond rope_theta).
ROPE_TYPES: dict[str, tuple[str, ...]] = {
    "default": (),
    "linear": ("factor",),
    "dynamic": ("factor",),
    "yarn": ("original_max_position_embeddings",),
    "llama3": ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"),
    "longrope": ("short_factor", "long_factor", "original_max_position_embeddings"),
}


# -- configs ------------------------------------------------------------------------------------


class DecoderConfig(PretrainedConfig):
    """The shared settings; a family subclass sets ``defaults`` and its flags:

    ``qkv_bias``: True/False fixes the query/key/value biases (Qwen2 always has them, Phi-3 never),
    None reads ``attention_bias`` (which then covers the output projection too); ``qk_norm``: RMSNorm
    of queries and keys, "per_head" (Qwen3, Gemma 3) or "full_width" (OLMo 2: over all heads at once);
    ``windowing``: "none", "all" (Mistral, Phi-3: every layer windowed when ``sliding_window`` is set)
    or "layer_types" (each layer's kind in ``layer_types``, derived by ``default_layer_types`` when
    absent; Qwen also needs ``use_sliding_window``); ``norm_placement``: "pre" (Llama), "sandwich"
    (Gemma 2/3: also a norm after attention and after the feed-forward) or "post" (OLMo 2: after
    each block only); ``norm_offset`` and ``norm_in_float32``: the RMSNorm weight is applied as
    ``offset + w`` and the scaling done in float32 before casting (Gemma: 1 and True; OLMo 2: 0 and
    True; Llama scales in the input's dtype); ``activation_key``: the config key naming the
    feed-forward's activation; ``fused_projections``: one ``qkv_proj`` and one ``gate_up_proj``
    (Phi-3); ``scale_embeddings``: embeddings times sqrt(hidden_size) (Gemma);
    ``scores_by_query_pre_attn_scalar``: attention scores scaled by ``query_pre_attn_scalar`` ** -0.5
    rather than head_dim ** -0.5 (Gemma 2/3); ``attention_softcap`` / ``final_softcap``: tanh soft-capping of attention scores by
    ``attn_logit_softcapping`` / of the logits by ``final_logit_softcapping``; ``partial_rotary``:
    ``partial_rotary_factor`` < 1 rotates only that share of each head (Phi-3); ``rope_types``: the
    rotary types the family accepts, ``rope_aliases`` older names for them.
    """

    qkv_bias: ClassVar[bool | None] = None
    qk_norm: ClassVar[str | None] = None
    windowing: ClassVar[str] = "none"
    norm_placement: ClassVar[str] = "pre"
    norm_offset: ClassVar[float] = 0.0
    norm_in_float32: ClassVar[bool] = False
    activation_key: ClassVar[str] = "hidden_act"
    fused_projections: ClassVar[bool] = False
    scale_embeddings: ClassVar[bool] = False
    scores_by_query_pre_attn_scalar: ClassVar[bool] = False
    attention_softcap: ClassVar[bool] = False
    final_softcap: ClassVar[bool] = False
    partial_rotary: ClassVar[bool] = False
    rope_types: ClassVar[tuple[str, ...]] = tuple(ROPE_TYPES)
    rope_aliases: ClassVar[dict[str, str]] = {}
    defaults: ClassVar[dict[str, Any]] = {
        "vocab_size": 32000,
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": None,
        "head_dim": None,
        "hidden_act": "silu",
        "max_position_embeddings": 2048,
        "initializer_range": 0.02,
        "rms_norm_eps": 1e-6,
        "use_cache": True,
        "tie_word_embeddings": False,
        "rope_parameters": None,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
    }

    def __init__(self, **kwargs: Any) -> None:
        kwargs = dict(kwargs)
        kwargs["rope_parameters"] = self._rope_from(kwargs)
        given = {**self.defaults, **kwargs}
        if given["num_key_value_heads"] is None:
            kwargs["num_key_value_heads"] = given["num_attention_heads"]
        if given["head_dim"] is None:
            hidden, heads = given["hidden_size"], given["num_attention_heads"]
            if isinstance(hidden, int) and isinstance(heads, int) and heads > 0:
                kwargs["head_dim"] = hidden // heads
        if self.windowing == "layer_types" and given.get("layer_types") is None:
            kwargs["layer_types"] = self.default_layer_types(given)
        if "use_sliding_window" in self.defaults and given["use_sliding_window"] is False:
            kwargs["sliding_window"] = None  # Qwen: a window that is switched off is stored as none, as the reference
        super().__init__(**kwargs)

    def _rope_from(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The standard ``rope_parameters`` from the constructor's keys; older files keep the
        settings in ``rope_scaling`` (popped here) and the base in ``rope_theta``."""
        scaling = kwargs.pop("rope_scaling", None)
        rope = copy.deepcopy(scaling or kwargs.get("rope_parameters") or {})
        return self._standard_rope(rope, kwargs.get("rope_theta", 10000.0), kwargs, "rope_parameters")

    def _standard_rope(self, rope: Any, theta: float, kwargs: dict[str, Any], where: str) -> dict[str, Any]:
        if not isinstance(rope, dict):
            raise ConfigError(f"{where} must be a mapping of rotary settings, got {rope!r}.")
        rope.setdefault("rope_type", rope.get("type", "default"))
        rope["rope_type"] = self.rope_aliases.get(rope["rope_type"], rope["rope_type"])
        rope.setdefault("rope_theta", theta)
        partial = kwargs.get("partial_rotary_factor", 1.0 if self.partial_rotary else None)
        if partial is not None:
            rope.setdefault("partial_rotary_factor", partial)
        if rope["rope_type"] in ("yarn", "llama3", "longrope"):
            # A top-level original_max_position_embeddings (a default of some families) wins, as in the reference.
            original = {**self.defaults, **kwargs}.get("original_max_position_embeddings")
            if original is not None:
                rope["original_max_position_embeddings"] = original
            rope.setdefault(
                "original_max_position_embeddings",
                kwargs.get("max_position_embeddings", self.defaults["max_position_embeddings"]),
            )
        return rope

    @classmethod
    def default_layer_types(cls, given: dict[str, Any]) -> list[str] | None:
        """Qwen: sliding layers from ``max_window_layers`` on, when ``use_sliding_window``."""
        layers, first = given["num_hidden_layers"], given["max_window_layers"]
        windowed = given["use_sliding_window"] and given["sliding_window"] is not None
        if not isinstance(layers, int) or not isinstance(first, int):
            return None
        return [SLIDING if windowed and i >= first else FULL for i in range(layers)]

    def validate(self) -> None:
        for key in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                    "num_key_value_heads", "head_dim", "max_position_embeddings"):
            positive_int(key, getattr(self, key))
        heads, kv_heads = self.num_attention_heads, self.num_key_value_heads
        if heads % kv_heads:
            raise ConfigError(
                f"num_attention_heads ({heads}) must be a multiple of num_key_value_heads ({kv_heads}): each "
                "key/value head serves the same number of query heads."
            )
        if self.head_dim % 2:
            raise ConfigError(
                f"head_dim must be even (rotary embeddings rotate pairs of channels), got {self.head_dim}."
            )
        eps = self.rms_norm_eps
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
            raise ConfigError(f"rms_norm_eps must be a positive number, got {eps!r}.")
        get_activation(getattr(self, self.activation_key), self.activation_key)
        for key in ("attention_bias", "mlp_bias", "tie_word_embeddings"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"{key} must be true or false, got {getattr(self, key)!r}.")
        for key in ("attention_dropout", "resid_pdrop"):
            dropout = self.get_value(key) or 0.0
            if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout <= 1:
                raise ConfigError(f"{key} must be a probability between 0 and 1, got {dropout!r}.")
        pad = self.pad_token_id
        if pad is not None and (isinstance(pad, bool) or not isinstance(pad, int) or not 0 <= pad < self.vocab_size):
            raise ConfigError(f"pad_token_id={pad!r} is not a token id of a vocabulary of {self.vocab_size}.")
        window = getattr(self, "sliding_window", None)
        if window is not None:
            positive_int("sliding_window", window)
        if self.windowing == "layer_types":
            kinds = self.layer_types
            if not isinstance(kinds, list) or len(kinds) != self.num_hidden_layers or not set(kinds) <= {FULL, SLIDING}:
                raise ConfigError(
                    f"layer_types must list {FULL!r} or {SLIDING!r} for each of the {self.num_hidden_layers} "
                    f"layers (num_hidden_layers), got {kinds!r}."
                )
        if self.scores_by_query_pre_attn_scalar:
            scalar = self.get_value("query_pre_attn_scalar")
            if isinstance(scalar, bool) or not isinstance(scalar, (int, float)) or not scalar > 0:
                raise ConfigError(f"query_pre_attn_scalar must be a positive number, got {scalar!r}.")
        for key in ("attn_logit_softcapping", "final_logit_softcapping"):
            cap = self.get_value(key)
            if cap is not None and (isinstance(cap, bool) or not isinstance(cap, (int, float)) or not cap > 0):
                raise ConfigError(f"{key} must be a positive number or null (no soft-capping), got {cap!r}.")
        if self.get_value("use_bidirectional_attention"):
            raise ConfigError(
                "use_bidirectional_attention=True (an encoder-style Gemma) is not supported: this decoder attends "
                "causally; set it to false or null."
            )
        self._validate_rope()

    def get_value(self, key: str) -> Any:
        """The config's value for ``key``, None when the file and the family's defaults lack it."""
        return getattr(self, key) if key in self else None

    def _validate_rope(self) -> None:
        for kind, rope in self.rope_settings().items():
            self._validate_rope_settings(rope, "rope_parameters" if kind is None else f"rope_parameters[{kind!r}]")

    def _validate_rope_settings(self, rope: dict[str, Any], where: str) -> None:
        kind = rope["rope_type"]
        if kind not in self.rope_types:
            raise ConfigError(
                f"{where}: rope_type {kind!r} is not supported for model type {self.model_type!r}; use one of: "
                f"{', '.join(self.rope_types)}."
            )
        theta = rope["rope_theta"]
        if isinstance(theta, bool) or not isinstance(theta, (int, float)) or not theta > 0:
            raise ConfigError(f"{where}['rope_theta'] must be a positive number, got {theta!r}.")
        missing = [key for key in ROPE_TYPES[kind] if rope.get(key) is None]
        if missing:
            raise ConfigError(f"rope_type {kind!r} needs {', '.join(missing)} in {where} (or rope_scaling).")
        factor = rope.get("factor")
        if factor is not None and (isinstance(factor, bool) or not isinstance(factor, (int, float)) or factor <= 0):
            raise ConfigError(f"{where}['factor'] must be a positive number, got {factor!r}.")
        if kind in ("linear", "dynamic", "llama3") and factor < 1:
            raise ConfigError(f"rope_type {kind!r} needs factor >= 1, got {factor!r}.")
        if kind == "llama3" and not rope["high_freq_factor"] > rope["low_freq_factor"]:
            raise ConfigError("rope_type 'llama3' needs high_freq_factor > low_freq_factor.")
        partial = rope.get("partial_rotary_factor", 1.0)
        if partial != 1.0:
            if not self.partial_rotary:
                raise ConfigError(
                    f"{where}: partial_rotary_factor other than 1.0 is not supported for model type "
                    f"{self.model_type!r} (the reference rotates whole heads there), got {partial!r}."
                )
            if isinstance(partial, bool) or not isinstance(partial, (int, float)) or not 0 < partial <= 1:
                raise ConfigError(f"{where}['partial_rotary_factor'] must be in (0, 1], got {partial!r}.")
            dims = rotary_dim(self, rope)
            if dims < 2 or dims % 2:
                raise ConfigError(
                    f"{where}: partial_rotary_factor={partial!r} rotates int(head_dim * factor) = {dims} channels of "
                    f"each {self.head_dim}-channel head; that must be a positive even number."
                )
        if kind == "longrope":
            pairs = rotary_dim(self, rope) // 2
            for key in ("short_factor", "long_factor"):
                if not isinstance(rope[key], list) or len(rope[key]) != pairs:
                    raise ConfigError(
                        f"{where}[{key!r}] must list {pairs} numbers (one per rotated channel pair), got {rope[key]!r}."
                    )

    def rope_settings(self) -> dict[str | None, dict[str, Any]]:
        """Rotary settings by layer kind (None: one setting for every layer)."""
        return {None: self.rope_parameters}

    def layer_rope_kinds(self) -> list[str | None]:
        """Each layer's key into ``rope_settings()``."""
        return [None] * self.num_hidden_layers

    def layer_windows(self) -> list[int | None]:
        """Each layer's sliding window (None: attends to every earlier position)."""
        layers = range(self.num_hidden_layers)
        if self.windowing == "all":
            return [self.sliding_window for _ in layers]
        # Gemma has no use_sliding_window switch: its sliding layers always slide.
        if self.windowing == "layer_types" and self.get_value("use_sliding_window") is not False:
            return [self.sliding_window if self.layer_types[i] == SLIDING else None for i in layers]
        return [None for _ in layers]

    def projection_biases(self) -> tuple[bool, bool]:
        """(query/key/value bias, output bias)."""
        if self.qkv_bias is None:
            return self.attention_bias, self.attention_bias
        return self.qkv_bias, False

    def attention_scale(self) -> float | None:
        """The attention scores' factor (None: head_dim ** -0.5)."""
        return self.get_value("query_pre_attn_scalar") ** -0.5 if self.scores_by_query_pre_attn_scalar else None

    def softcaps(self) -> tuple[float | None, float | None]:
        """(attention scores' cap, logits' cap); None: not capped."""
        return (self.get_value("attn_logit_softcapping") if self.attention_softcap else None,
                self.get_value("final_logit_softcapping") if self.final_softcap else None)


class LlamaConfig(DecoderConfig):
    model_type: ClassVar[str] = "llama"
    defaults: ClassVar[dict[str, Any]] = {
        **DecoderConfig.defaults, "bos_token_id": 1, "eos_token_id": 2, "pretraining_tp": 1,
    }


class MistralConfig(DecoderConfig):
    model_type: ClassVar[str] = "mistral"
    windowing = "all"
    defaults: ClassVar[dict[str, Any]] = {
        **DecoderConfig.defaults, "intermediate_size": 14336, "num_key_value_heads": 8,
        "max_position_embeddings": 4096 * 32, "sliding_window": 4096, "bos_token_id": 1, "eos_token_id": 2,
    }


_QWEN_DEFAULTS = {
    **DecoderConfig.defaults, "vocab_size": 151936, "intermediate_size": 22016, "max_position_embeddings": 32768,
    "use_sliding_window": False, "sliding_window": 4096, "max_window_layers": 28, "layer_types": None,
}


class Qwen2Config(DecoderConfig):
    model_type: ClassVar[str] = "qwen2"
    qkv_bias = True
    windowing = "layer_types"
    defaults: ClassVar[dict[str, Any]] = dict(_QWEN_DEFAULTS)


class Qwen3Config(DecoderConfig):
    model_type: ClassVar[str] = "qwen3"
    qk_norm = "per_head"
    windowing = "layer_types"
    defaults: ClassVar[dict[str, Any]] = {**_QWEN_DEFAULTS, "head_dim": 128}


_GEMMA_DEFAULTS = {
    **DecoderConfig.defaults, "vocab_size": 256000, "hidden_size": 3072, "intermediate_size": 24576,
    "num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 16, "head_dim": 256,
    "hidden_act": "gelu_pytorch_tanh", "max_position_embeddings": 8192, "pad_token_id": 0, "eos_token_id": 1,
    "bos_token_id": 2, "tie_word_embeddings": True, "use_bidirectional_attention": None,
}


class GemmaConfig(DecoderConfig):
    model_type: ClassVar[str] = "gemma"
    norm_offset = 1.0
    norm_in_float32 = True
    scale_embeddings = True
    defaults: ClassVar[dict[str, Any]] = dict(_GEMMA_DEFAULTS)

    def __init__(self, **kwargs: Any) -> None:
        # The original Gemma files say "gelu" and mean the tanh approximation (so does the reference).
        if self.activation_key == "hidden_act" and kwargs.get("hidden_act") == "gelu":
            kwargs["hidden_act"] = "gelu_pytorch_tanh"
        super().__init__(**kwargs)


# Gemma 2 and 3 name the activation hidden_activation and have no hidden_act.
_GEMMA2_DEFAULTS = {
    **{key: value for key, value in _GEMMA_DEFAULTS.items() if key != "hidden_act"},
    "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 2304, "intermediate_size": 9216,
    "num_hidden_layers": 26, "num_attention_heads": 8, "num_key_value_heads": 4, "query_pre_attn_scalar": 256,
    "sliding_window": 4096, "layer_types": None, "final_logit_softcapping": 30.0, "attn_logit_softcapping": 50.0,
}


class Gemma2Config(GemmaConfig):
    model_type: ClassVar[str] = "gemma2"
    windowing = "layer_types"
    norm_placement = "sandwich"
    activation_key = "hidden_activation"
    scores_by_query_pre_attn_scalar = True
    attention_softcap = True
    final_softcap = True
    defaults: ClassVar[dict[str, Any]] = dict(_GEMMA2_DEFAULTS)

    @classmethod
    def default_layer_types(cls, given: dict[str, Any]) -> list[str] | None:
        """Sliding and full layers alternate, sliding first."""
        layers = given["num_hidden_layers"]
        return [SLIDING if (i + 1) % 2 else FULL for i in range(layers)] if isinstance(layers, int) else None


class Gemma3TextConfig(Gemma2Config):
    """Gemma 2 with per-head q/k norms, no attention soft-cap, and rotary settings per layer kind:
    ``rope_parameters`` maps "full_attention" and "sliding_attention" to their own settings (older
    files: ``rope_theta`` and ``rope_scaling`` for full layers, ``rope_local_base_freq`` for sliding
    ones). The reference stores ``attn_logit_softcapping`` but never applies it; neither does this."""

    model_type: ClassVar[str] = "gemma3_text"
    qk_norm = "per_head"
    attention_softcap = False
    defaults: ClassVar[dict[str, Any]] = {
        **_GEMMA2_DEFAULTS, "vocab_size": 262208, "max_position_embeddings": 131072,
        "final_logit_softcapping": None, "attn_logit_softcapping": None, "use_bidirectional_attention": False,
    }

    def _rope_from(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        scaling = kwargs.pop("rope_scaling", None)
        given = copy.deepcopy(kwargs.get("rope_parameters") or {})
        if not isinstance(given, dict) or not set(given) <= {FULL, SLIDING}:
            raise ConfigError(
                f"gemma3_text rope_parameters must map {FULL!r} and {SLIDING!r} to their rotary settings, got {given!r}."
            )
        full, sliding = given.get(FULL) or {}, given.get(SLIDING) or {}
        if scaling is not None:
            if not isinstance(full, dict) or not isinstance(scaling, dict):
                raise ConfigError(f"rope_scaling must be a mapping of rotary settings, got {scaling!r}.")
            full.update(scaling)  # older files: rope_scaling is the global layers' setting
        return {
            FULL: self._standard_rope(full, kwargs.get("rope_theta", 1_000_000.0), kwargs, f"rope_parameters[{FULL!r}]"),
            SLIDING: self._standard_rope(
                sliding, kwargs.get("rope_local_base_freq", 10_000.0), kwargs, f"rope_parameters[{SLIDING!r}]"
            ),
        }

    @classmethod
    def default_layer_types(cls, given: dict[str, Any]) -> list[str] | None:
        """Every ``sliding_window_pattern``-th layer (default 6th) is full, the others slide."""
        layers, pattern = given["num_hidden_layers"], given.get("sliding_window_pattern", 6)
        if not isinstance(layers, int):
            return None
        if isinstance(pattern, bool) or not isinstance(pattern, int) or pattern < 1:
            raise ConfigError(f"sliding_window_pattern must be a positive int, got {pattern!r}.")
        return [SLIDING if (i + 1) % pattern else FULL for i in range(layers)]

    def rope_settings(self) -> dict[str | None, dict[str, Any]]:
        return dict(self.rope_parameters)

    def layer_rope_kinds(self) -> list[str | None]:
        return list(self.layer_types)


class Phi3Config(DecoderConfig):
    """Llama with fused projections and partial rotary dimensions; rope_type "su" and "yarn" in
    older files mean longrope (as the reference reads them)."""

    model_type: ClassVar[str] = "phi3"
    qkv_bias = False
    windowing = "all"
    fused_projections = True
    partial_rotary = True
    rope_types = ("default", "longrope")
    rope_aliases: ClassVar[dict[str, str]] = {"su": "longrope", "yarn": "longrope"}
    defaults: ClassVar[dict[str, Any]] = {
        **DecoderConfig.defaults, "vocab_size": 32064, "hidden_size": 3072, "intermediate_size": 8192,
        "resid_pdrop": 0.0, "embd_pdrop": 0.0, "max_position_embeddings": 4096,
        "original_max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "bos_token_id": 1,
        "eos_token_id": 32000, "pad_token_id": 32000, "sliding_window": None,
    }


class Olmo2Config(DecoderConfig):
    model_type: ClassVar[str] = "olmo2"
    qk_norm = "full_width"
    norm_placement = "post"
    norm_in_float32 = True
    defaults: ClassVar[dict[str, Any]] = {
        **DecoderConfig.defaults, "vocab_size": 50304, "rms_norm_eps": 1e-5, "pad_token_id": 1,
        "bos_token_id": None, "eos_token_id": 50279,
    }


def rotary_dim(config: DecoderConfig, rope: dict[str, Any]) -> int:
    """How many channels of each head the rotary settings ``rope`` rotate (the first ones)."""
    return int(config.head_dim * rope.get("partial_rotary_factor", 1.0))


# -- rotary positions ---------------------------------------------------------------------------


def rotary_frequencies(
    config: DecoderConfig, seq_len: int, rope: dict[str, Any] | None = None
) -> tuple[torch.Tensor, float]:
    """Inverse frequencies (rotated channels / 2,) and the factor cos/sin are scaled by, for a forward
    whose largest position is ``seq_len - 1`` (dynamic and longrope scaling depend on it). ``rope``:
    the rotary settings (default ``config.rope_parameters``; Gemma 3 has one per layer kind)."""
    rope = config.rope_parameters if rope is None else rope
    kind, base, dim = rope["rope_type"], float(rope["rope_theta"]), rotary_dim(config, rope)
    exponents = torch.arange(0, dim, 2, dtype=torch.int64).float() / dim
    if kind == "dynamic" and seq_len > config.max_position_embeddings:
        # NTK-aware: the base grows with the sequence once it passes the trained length.
        factor = rope["factor"]
        base *= (factor * seq_len / config.max_position_embeddings - (factor - 1)) ** (dim / (dim - 2))
    inv_freq = 1.0 / base**exponents
    if kind == "linear":
        return inv_freq / rope["factor"], 1.0
    if kind == "llama3":
        return _llama3(inv_freq, rope), 1.0
    if kind == "yarn":
        return _yarn(inv_freq, base, dim, config, rope)
    if kind == "longrope":
        original = rope["original_max_position_embeddings"]
        factor = rope.get("factor") or config.max_position_embeddings / original
        scale = rope.get("attention_factor")
        if scale is None:
            scale = 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(original))
        stretch = torch.tensor(rope["long_factor" if seq_len > original else "short_factor"], dtype=torch.float32)
        return 1.0 / (stretch * base**exponents), scale
    return inv_freq, 1.0


def _llama3(inv_freq: torch.Tensor, rope: dict[str, Any]) -> torch.Tensor:
    """Llama 3.1: long wavelengths divided by ``factor``, short ones kept, a smooth blend between."""
    factor, low, high = rope["factor"], rope["low_freq_factor"], rope["high_freq_factor"]
    context = rope["original_max_position_embeddings"]
    wavelength = 2 * math.pi / inv_freq
    scaled = torch.where(wavelength > context / low, inv_freq / factor, inv_freq)
    blend = (context / wavelength - low) / (high - low)
    smoothed = (1 - blend) * scaled / factor + blend * scaled
    medium = (wavelength >= context / high) & (wavelength <= context / low)
    return torch.where(medium, smoothed, scaled)


def _yarn(
    inv_freq: torch.Tensor, base: float, dim: int, config: DecoderConfig, rope: dict[str, Any]
) -> tuple[torch.Tensor, float]:
    """YaRN: interpolate low frequencies, keep high ones, ramp between; scale attention by mscale."""
    original = rope["original_max_position_embeddings"]
    factor = rope.get("factor") or config.max_position_embeddings / original

    def mscale(scale: float, weight: float = 1.0) -> float:
        return 1.0 if scale <= 1 else 0.1 * weight * math.log(scale) + 1.0

    scale = rope.get("attention_factor")
    if scale is None:
        weight, weight_all = rope.get("mscale"), rope.get("mscale_all_dim")
        scale = mscale(factor, weight) / mscale(factor, weight_all) if weight and weight_all else mscale(factor)

    def dimension(rotations: float) -> float:  # the channel that turns ``rotations`` times over the context
        return dim * math.log(original / (rotations * 2 * math.pi)) / (2 * math.log(base))

    low, high = dimension(rope.get("beta_fast") or 32), dimension(rope.get("beta_slow") or 1)
    if rope.get("truncate", True):
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001
    ramp = ((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
    keep = 1 - ramp  # share of the original (extrapolated) frequency
    return (inv_freq / factor) * (1 - keep) + inv_freq * keep, float(scale)


# The rotary types whose frequencies depend on the input's length.
LENGTH_DEPENDENT = ("dynamic", "longrope")


def rotary_tables(
    config: DecoderConfig, position_ids: torch.Tensor, dtype: torch.dtype, rope: dict[str, Any] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin) of shape (batch or 1, 1, seq, rotated channels) in ``dtype``, computed in float32,
    for the rotary settings ``rope`` (default ``config.rope_parameters``)."""
    rope = config.rope_parameters if rope is None else rope
    length_dependent = rope["rope_type"] in LENGTH_DEPENDENT
    # Reading the largest position synchronises with an accelerator: only where it matters.
    inv_freq, scale = rotary_frequencies(config, int(position_ids.max()) + 1 if length_dependent else 0, rope)
    angles = position_ids[..., None].float() * inv_freq.to(position_ids.device)
    angles = torch.cat((angles, angles), dim=-1)[:, None]
    return (angles.cos() * scale).to(dtype), (angles.sin() * scale).to(dtype)


def left_padded_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions counting real tokens only (padding at 0), as the reference's generation loop
    assigns them to left-padded prompts."""
    positions = attention_mask.long().cumsum(-1) - 1
    return positions.masked_fill(attention_mask == 0, 0)


# -- modules ------------------------------------------------------------------------------------


class RMSNorm(nn.Module):
    """x / rms(x) * (offset + weight), normalised in float32. The reference's families differ in
    where the result returns to the input's dtype: Llama casts before scaling, Gemma and OLMo 2 after
    (``in_float32``); Gemma stores the weight as an offset from 1 (``offset`` 1)."""

    def __init__(self, width: int, eps: float, offset: float = 0.0, in_float32: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((width,), 1.0 - offset))
        self.eps, self.offset, self.in_float32 = eps, offset, in_float32

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        dtype = hidden.dtype
        hidden = hidden.float()
        hidden = hidden * torch.rsqrt(hidden.pow(2).mean(-1, keepdim=True) + self.eps)
        if self.in_float32:
            return ((self.offset + self.weight.float()) * hidden).to(dtype)
        weight = self.weight + self.offset if self.offset else self.weight
        return weight * hidden.to(dtype)


def rms_norm(config: DecoderConfig, width: int) -> RMSNorm:
    """The family's RMSNorm over ``width`` channels."""
    return RMSNorm(width, config.rms_norm_eps, config.norm_offset, config.norm_in_float32)


class ScaledEmbedding(nn.Embedding):
    """Token embeddings times sqrt(embedding width), the factor first rounded to the weights' dtype
    (as Gemma's reference does: its bfloat16 models scale by 48.0, not 48.0050...)."""

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return super().forward(input_ids) * torch.tensor(self.embedding_dim**0.5, dtype=self.weight.dtype)


class DecoderAttention(nn.Module):
    """Grouped-query attention with rotary positions; optional q/k norms, a window, a score scale
    and soft-cap, fused projections, and rotation of only the first channels of each head."""

    def __init__(self, config: DecoderConfig, index: int, window: int | None, rope_kind: str | None) -> None:
        super().__init__()
        self.index, self.window, self.rope_kind = index, window, rope_kind
        self.heads, self.kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = config.head_dim
        self.rotated = rotary_dim(config, config.rope_settings()[rope_kind])
        self.scale, self.softcap = config.attention_scale(), config.softcaps()[0]
        qkv_bias, out_bias = config.projection_biases()
        hidden, width, kv_width = config.hidden_size, self.heads * self.head_dim, self.kv_heads * self.head_dim
        self.widths = (width, kv_width, kv_width)
        if config.fused_projections:
            self.qkv_proj = nn.Linear(hidden, width + 2 * kv_width, bias=qkv_bias)
        else:
            self.q_proj = nn.Linear(hidden, width, bias=qkv_bias)
            self.k_proj = nn.Linear(hidden, kv_width, bias=qkv_bias)
            self.v_proj = nn.Linear(hidden, kv_width, bias=qkv_bias)
        self.o_proj = nn.Linear(width, hidden, bias=out_bias)
        self.qk_norm = config.qk_norm
        if config.qk_norm == "per_head":
            self.q_norm = rms_norm(config, self.head_dim)
            self.k_norm = rms_norm(config, self.head_dim)
        elif config.qk_norm == "full_width":
            self.q_norm = rms_norm(config, width)
            self.k_norm = rms_norm(config, kv_width)
        self.dropout = config.attention_dropout

    def forward(
        self, hidden: torch.Tensor, mask: Mask, rotary: dict[str | None, tuple[torch.Tensor, torch.Tensor]],
        cache: KVCache | None, need_weights: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if hasattr(self, "qkv_proj"):
            query, key, value = self.qkv_proj(hidden).split(self.widths, dim=-1)
        else:
            query, key, value = self.q_proj(hidden), self.k_proj(hidden), self.v_proj(hidden)
        if self.qk_norm == "per_head":
            shape = (*hidden.shape[:-1], -1, self.head_dim)
            query = self.q_norm(query.view(shape)).flatten(-2)
            key = self.k_norm(key.view(shape)).flatten(-2)
        elif self.qk_norm == "full_width":
            query, key = self.q_norm(query), self.k_norm(key)
        cos_sin = rotary[self.rope_kind]
        if self.rotated < self.head_dim:
            # attend rotates whole heads; the first ``rotated`` channels are turned here instead.
            query, key = self._rotate_first_channels(query, cos_sin), self._rotate_first_channels(key, cos_sin)
            cos_sin = None
        context, weights = attend(
            query, key, value, mask, heads=self.heads, kv_heads=self.kv_heads, scale=self.scale,
            softcap=self.softcap, window=self.window, dropout=self.dropout if self.training else 0.0,
            need_weights=need_weights, cache=cache, layer=self.index, rotary=cos_sin,
        )
        return self.o_proj(context), weights

    def _rotate_first_channels(self, x: torch.Tensor, cos_sin: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """(batch, seq, heads * head_dim) with each head's first ``rotated`` channels rotated."""
        batch, seq, _ = x.shape
        heads = x.view(batch, seq, -1, self.head_dim).transpose(1, 2)
        turned = rotate(heads[..., : self.rotated], *cos_sin)
        heads = torch.cat((turned, heads[..., self.rotated :]), dim=-1)
        return heads.transpose(1, 2).reshape(batch, seq, -1)


class DecoderMLP(nn.Module):
    """Gated feed-forward: down(act(gate(x)) * up(x)) (SwiGLU with silu, GeGLU with gelu); Phi-3
    keeps gate and up in one ``gate_up_proj``, gate first."""

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        hidden, inner, bias = config.hidden_size, config.intermediate_size, config.mlp_bias
        if config.fused_projections:
            self.gate_up_proj = nn.Linear(hidden, 2 * inner, bias=bias)
        else:
            self.gate_proj = nn.Linear(hidden, inner, bias=bias)
            self.up_proj = nn.Linear(hidden, inner, bias=bias)
        self.down_proj = nn.Linear(inner, hidden, bias=bias)
        self.act = get_activation(getattr(config, config.activation_key), config.activation_key)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "gate_up_proj"):
            gate, up = self.gate_up_proj(hidden).chunk(2, dim=-1)
        else:
            gate, up = self.gate_proj(hidden), self.up_proj(hidden)
        return self.down_proj(self.act(gate) * up)


class DecoderLayer(nn.Module):
    """Attention and feed-forward blocks, each added to the residual stream, with RMSNorms placed by
    ``config.norm_placement``: "pre" normalises each block's input (``input_layernorm``,
    ``post_attention_layernorm``); "sandwich" also each block's output (Gemma 2/3:
    ``post_attention_layernorm`` then normalises the attention output, ``pre_feedforward_layernorm``
    and ``post_feedforward_layernorm`` surround the feed-forward); "post" only the outputs (OLMo 2).
    In training, ``resid_pdrop`` (Phi-3) drops out each block's output before the residual sum."""

    def __init__(self, config: DecoderConfig, index: int, window: int | None, rope_kind: str | None) -> None:
        super().__init__()
        self.placement = placement = config.norm_placement
        width = config.hidden_size
        if placement != "post":
            self.input_layernorm = rms_norm(config, width)
        self.self_attn = DecoderAttention(config, index, window, rope_kind)
        self.post_attention_layernorm = rms_norm(config, width)
        if placement == "sandwich":
            self.pre_feedforward_layernorm = rms_norm(config, width)
        self.mlp = DecoderMLP(config)
        if placement != "pre":
            self.post_feedforward_layernorm = rms_norm(config, width)
        self.residual_dropout = config.get_value("resid_pdrop") or 0.0

    def _dropped(self, block_output: torch.Tensor) -> torch.Tensor:
        if self.residual_dropout and self.training:
            return F.dropout(block_output, self.residual_dropout, training=True)
        return block_output

    def forward(
        self, hidden: torch.Tensor, mask: Mask, rotary: dict[str | None, tuple[torch.Tensor, torch.Tensor]],
        cache: KVCache | None, need_weights: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.placement == "pre":
            attended, weights = self.self_attn(self.input_layernorm(hidden), mask, rotary, cache, need_weights)
            hidden = hidden + self._dropped(attended)
            return hidden + self._dropped(self.mlp(self.post_attention_layernorm(hidden))), weights
        attn_input = hidden if self.placement == "post" else self.input_layernorm(hidden)
        attended, weights = self.self_attn(attn_input, mask, rotary, cache, need_weights)
        hidden = hidden + self.post_attention_layernorm(attended)
        mlp_input = hidden if self.placement == "post" else self.pre_feedforward_layernorm(hidden)
        return hidden + self.post_feedforward_layernorm(self.mlp(mlp_input)), weights


# -- models -------------------------------------------------------------------------------------


class DecoderPreTrainedModel(PreTrainedModel):
    config_class = DecoderConfig
    base_model_prefix = "model"

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, RMSNorm):
            with torch.no_grad():
                module.weight.fill_(1.0 - module.offset)

    def _flags(self, output_attentions, output_hidden_states, return_dict, use_cache) -> tuple[bool, bool, bool, bool]:
        use_cache = bool(self.config.use_cache) if use_cache is None else use_cache
        return (*self._resolve(output_attentions, output_hidden_states, return_dict), use_cache)


class DecoderModel(DecoderPreTrainedModel):
    """Token embeddings (scaled for Gemma: ``inputs_embeds`` given directly are used as they are, as
    in the reference), the decoder layers and a final RMSNorm (the last entry of ``hidden_states`` is
    the normalised one, as in the reference)."""

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__(config)
        embedding = ScaledEmbedding if config.scale_embeddings else nn.Embedding
        self.embed_tokens = embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.rope_kinds = config.layer_rope_kinds()
        self.layers = nn.ModuleList(
            DecoderLayer(config, i, window, kind)
            for i, (window, kind) in enumerate(zip(config.layer_windows(), self.rope_kinds))
        )
        self.norm = rms_norm(config, config.hidden_size)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_key_values: KVCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        *,
        padding_in_output: bool = True,
    ) -> BaseModelOutputWithPast | tuple:
        """``attention_mask`` covers the cached positions and the new ones: (batch, past + seq).
        ``padding_in_output=False`` is for callers that read no padded position of
        ``last_hidden_state`` (generation reads each left-padded row's last token): a padded prompt
        with nothing cached then runs on its real tokens only (``config.unpad_inputs``, see
        modeling/attention.py), filling the cache in the padded layout; padded positions read zero."""
        output_attentions, output_hidden_states, return_dict, use_cache = self._flags(
            output_attentions, output_hidden_states, return_dict, use_cache
        )
        config = self.config
        # Rotary positions have no table: like the reference, run past max_position_embeddings.
        batch, seq = check_text_inputs(input_ids, inputs_embeds, config.hidden_size, sys.maxsize)
        if past_key_values is not None and not isinstance(past_key_values, KVCache):
            raise InputError(
                f"past_key_values must be the KVCache a previous call returned, got {type(past_key_values).__name__}."
            )
        cache = past_key_values if past_key_values is not None or not use_cache else KVCache(len(self.layers))
        past = cache.get_seq_length() if cache is not None else 0
        hidden = embedding_lookup(self.embed_tokens, input_ids, "input_ids") if inputs_embeds is None else inputs_embeds
        check_positions("position_ids", position_ids, batch, seq)
        if position_ids is None:
            position_ids = torch.arange(past, past + seq, device=hidden.device)[None]
        positions, settings = position_ids.to(hidden.device), config.rope_settings()
        packing = self._packing(attention_mask, batch, seq, past, padding_in_output or output_attentions
                                or output_hidden_states, hidden.device)
        if packing is None:
            mask = Mask.padding(attention_mask, batch, past + seq, hidden.device, causal=True, offset=past)
        else:
            mask, hidden = packing, packing.pack(hidden)
            positions = packing.pack(positions.expand(batch, seq)[..., None])[None, :, 0]
        rotary = {kind: rotary_tables(config, positions, hidden.dtype, settings[kind]) for kind in set(self.rope_kinds)}
        if packing is not None:  # (1, 1, slots, dim) -> per slot, broadcast over heads
            rotary = {kind: (cos[0, 0, :, None], sin[0, 0, :, None]) for kind, (cos, sin) in rotary.items()}
        hidden, all_hidden, all_weights = run_layers(
            self.layers, hidden, (mask, rotary, cache), output_attentions, output_hidden_states
        )
        hidden = self.norm(hidden)
        if packing is not None:
            hidden = packing.unpack(hidden)
        if all_hidden is not None:
            all_hidden = all_hidden[:-1] + (hidden,)
        output = BaseModelOutputWithPast(
            last_hidden_state=hidden, past_key_values=cache, hidden_states=all_hidden, attentions=all_weights
        )
        return output if return_dict else output.to_tuple()

    def _packing(
        self, attention_mask: torch.Tensor | None, batch: int, seq: int, past: int, dense_output: bool,
        device: torch.device,
    ) -> PackedBatch | None:
        """The packed form of a padded prompt with nothing cached (see ``forward``), else None."""
        unpad = getattr(self.config, "unpad_inputs", None)
        if unpad is None and dense_output:
            unpad = False
        if past or seq == 1 or attention_mask is None or unpad is False:
            return None
        # Heads rotated only in part are turned in the (batch, seq, width) layout.
        if any(layer.self_attn.rotated < layer.self_attn.head_dim for layer in self.layers):
            return None
        config = self.config
        width, kv_width = config.num_attention_heads * config.head_dim, config.num_key_value_heads * config.head_dim
        macs = config.hidden_size * (2 * width + 2 * kv_width + 3 * config.intermediate_size)
        return pack_batch(attention_mask, batch, seq, device, unpad, macs, causal=True)


class DecoderForCausalLM(GenerationMixin, DecoderPreTrainedModel):
    """The decoder and a vocabulary projection (``lm_head``, tied to the embeddings when
    ``tie_word_embeddings``; Gemma 2/3 soft-cap the logits by ``final_logit_softcapping``);
    ``generate`` and ``generation_config`` come from ``GenerationMixin``."""

    base_model_class: ClassVar[type[DecoderModel]] = DecoderModel
    _tied_weights: ClassVar[dict[str, str]] = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__(config)
        self.model = self.base_model_class(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_key_values: KVCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        logits_to_keep: int = 0,
    ) -> CausalLMOutputWithPast | tuple:
        """``labels`` (batch, seq) are the input ids themselves (shifted here: position t predicts
        t + 1), -100 where no loss is wanted. ``logits_to_keep`` > 0 computes the logits of the last
        that many positions only (generation needs one)."""
        return_dict = self.config.use_return_dict if return_dict is None else return_dict
        check_logits_to_keep(logits_to_keep)
        # Logits of real positions only (a left-padded prompt's last ones) leave the padding unread.
        padding_in_output = (labels is not None or not logits_to_keep or not isinstance(attention_mask, torch.Tensor)
                             or attention_mask.dim() != 2 or not bool(attention_mask[:, -logits_to_keep:].all()))
        outputs = self.model(
            input_ids, attention_mask, position_ids, past_key_values, inputs_embeds, use_cache,
            output_attentions, output_hidden_states, return_dict=True, padding_in_output=padding_in_output,
        )
        hidden = outputs.last_hidden_state
        logits = self.lm_head(hidden[:, -logits_to_keep:] if logits_to_keep else hidden)
        cap = self.config.softcaps()[1]
        if cap is not None:
            logits = torch.tanh(logits / cap) * cap
        loss = None if labels is None else causal_lm_loss(logits, labels)
        output = CausalLMOutputWithPast(
            loss=loss, logits=logits, past_key_values=outputs.past_key_values,
            hidden_states=outputs.hidden_states, attentions=outputs.attentions,
        )
        return output if return_dict else output.to_tuple()


# -- families: a config class and names ---------------------------------------------------------


class LlamaModel(DecoderModel):
    config_class = LlamaConfig


class LlamaForCausalLM(DecoderForCausalLM):
    config_class = LlamaConfig
    base_model_class = LlamaModel


class MistralModel(DecoderModel):
    config_class = MistralConfig


class MistralForCausalLM(DecoderForCausalLM):
    config_class = MistralConfig
    base_model_class = MistralModel


class Qwen2Model(DecoderModel):
    config_class = Qwen2Config


class Qwen2ForCausalLM(DecoderForCausalLM):
    config_class = Qwen2Config
    base_model_class = Qwen2Model


class Qwen3Model(DecoderModel):
    config_class = Qwen3Config


class Qwen3ForCausalLM(DecoderForCausalLM):
    config_class = Qwen3Config
    base_model_class = Qwen3Model


class GemmaModel(DecoderModel):
    config_class = GemmaConfig


class GemmaForCausalLM(DecoderForCausalLM):
    config_class = GemmaConfig
    base_model_class = GemmaModel


class Gemma2Model(DecoderModel):
    config_class = Gemma2Config


class Gemma2ForCausalLM(DecoderForCausalLM):
    config_class = Gemma2Config
    base_model_class = Gemma2Model


class Gemma3TextModel(DecoderModel):
    config_class = Gemma3TextConfig


class Gemma3ForCausalLM(DecoderForCausalLM):
    config_class = Gemma3TextConfig
    base_model_class = Gemma3TextModel


class Phi3Model(DecoderModel):
    config_class = Phi3Config


class Phi3ForCausalLM(DecoderForCausalLM):
    config_class = Phi3Config
    base_model_class = Phi3Model

    def cache_rebuild_length(self) -> int | None:
        """With longrope, keys cached while the sequence was within the original length were rotated
        with the short factors; once it grows past that length, generation recomputes them with the
        long ones (as the reference does): the length, or None when nothing needs recomputing."""
        rope = self.config.rope_parameters
        return rope["original_max_position_embeddings"] if rope["rope_type"] == "longrope" else None


class Olmo2Model(DecoderModel):
    config_class = Olmo2Config


class Olmo2ForCausalLM(DecoderForCausalLM):
    config_class = Olmo2Config
    base_model_class = Olmo2Model


__all__ = [
    "DecoderConfig", "DecoderForCausalLM", "DecoderModel", "Gemma2Config", "Gemma2ForCausalLM", "Gemma2Model",
    "Gemma3ForCausalLM", "Gemma3TextConfig", "Gemma3TextModel", "GemmaConfig", "GemmaForCausalLM", "GemmaModel",
    "LlamaConfig", "LlamaForCausalLM", "LlamaModel", "MistralConfig", "MistralForCausalLM", "MistralModel",
    "Olmo2Config", "Olmo2ForCausalLM", "Olmo2Model", "Phi3Config", "Phi3ForCausalLM", "Phi3Model", "Qwen2Config",
    "Qwen2ForCausalLM", "Qwen2Model", "Qwen3Config", "Qwen3ForCausalLM", "Qwen3Model", "left_padded_positions",
]
