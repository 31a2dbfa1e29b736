"""One config-driven decoder for the Llama family of causal language models: Llama (and SmolLM),
Mistral, Qwen2 and Qwen3 are the same network with different flags (litgpt's single ``GPT`` class).

What a family changes lives on its config class as data: which projections carry biases, whether
queries and keys are RMS-normalised per head, and which layers attend through a sliding window.
The modules read only the resolved flags, so a new family is a config subclass and two aliases.

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
from ..modeling.attention import KVCache, Mask, attend, run_layers
from ..modeling.base import PreTrainedModel
from ..modeling.checks import (
    check_positions,
    check_text_inputs,
    embedding_lookup,
    positive_int,
)
from ..modeling.generation import GenerationMixin
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

    ``qkv_bias``: True/False fixes the query/key/value biases (Qwen2 always has them), None reads
    ``attention_bias`` (which then covers the output projection too); ``qk_norm``: RMSNorm over each
    head of queries and keys (Qwen3); ``windowing``: "none", "all" (Mistral: every layer windowed
    when ``sliding_window`` is set) or "layer_types" (Qwen: ``use_sliding_window`` and
    ``layer_types``, derived from ``max_window_layers`` when absent).
    """

    qkv_bias: ClassVar[bool | None] = None
    qk_norm: ClassVar[bool] = False
    windowing: ClassVar[str] = "none"
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
        # Older files keep the rotary settings in rope_scaling and the base in rope_theta.
        scaling = kwargs.pop("rope_scaling", None)
        rope = copy.deepcopy(scaling or kwargs.get("rope_parameters") or {})
        if not isinstance(rope, dict):
            raise ConfigError(f"rope_parameters must be a mapping of rotary settings, got {rope!r}.")
        rope.setdefault("rope_type", rope.pop("type", "default"))
        rope.setdefault("rope_theta", kwargs.get("rope_theta", 10000.0))
        if rope["rope_type"] in ("yarn", "llama3", "longrope"):
            original = kwargs.get("original_max_position_embeddings")
            if original is not None:
                rope["original_max_position_embeddings"] = original
            rope.setdefault(
                "original_max_position_embeddings",
                kwargs.get("max_position_embeddings", self.defaults["max_position_embeddings"]),
            )
        kwargs["rope_parameters"] = rope
        given = {**self.defaults, **kwargs}
        if given["num_key_value_heads"] is None:
            kwargs["num_key_value_heads"] = kwargs.get("num_attention_heads", self.defaults["num_attention_heads"])
        if given["head_dim"] is None:
            hidden = kwargs.get("hidden_size", self.defaults["hidden_size"])
            heads = kwargs.get("num_attention_heads", self.defaults["num_attention_heads"])
            if isinstance(hidden, int) and isinstance(heads, int) and heads > 0:
                kwargs["head_dim"] = hidden // heads
        if self.windowing == "layer_types" and kwargs.get("layer_types") is None:
            layers = kwargs.get("num_hidden_layers", self.defaults["num_hidden_layers"])
            windowed = kwargs.get("use_sliding_window", self.defaults["use_sliding_window"]) and kwargs.get(
                "sliding_window", self.defaults["sliding_window"]) is not None
            first = kwargs.get("max_window_layers", self.defaults["max_window_layers"])
            if isinstance(layers, int) and isinstance(first, int):
                kwargs["layer_types"] = [SLIDING if windowed and i >= first else FULL for i in range(layers)]
        super().__init__(**kwargs)

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
        get_activation(self.hidden_act, "hidden_act")
        for key in ("attention_bias", "mlp_bias", "tie_word_embeddings"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"{key} must be true or false, got {getattr(self, key)!r}.")
        dropout = self.attention_dropout
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout <= 1:
            raise ConfigError(f"attention_dropout must be a probability between 0 and 1, got {dropout!r}.")
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
        self._validate_rope()

    def _validate_rope(self) -> None:
        rope = self.rope_parameters
        kind = rope["rope_type"]
        if kind not in ROPE_TYPES:
            raise ConfigError(
                f"rope_type {kind!r} is not supported; use one of: {', '.join(ROPE_TYPES)}."
            )
        theta = rope["rope_theta"]
        if isinstance(theta, bool) or not isinstance(theta, (int, float)) or not theta > 0:
            raise ConfigError(f"rope_parameters['rope_theta'] must be a positive number, got {theta!r}.")
        missing = [key for key in ROPE_TYPES[kind] if rope.get(key) is None]
        if missing:
            raise ConfigError(f"rope_type {kind!r} needs {', '.join(missing)} in rope_parameters (or rope_scaling).")
        factor = rope.get("factor")
        if factor is not None and (isinstance(factor, bool) or not isinstance(factor, (int, float)) or factor <= 0):
            raise ConfigError(f"rope_parameters['factor'] must be a positive number, got {factor!r}.")
        if kind in ("linear", "dynamic", "llama3") and factor < 1:
            raise ConfigError(f"rope_type {kind!r} needs factor >= 1, got {factor!r}.")
        if kind == "llama3" and not rope["high_freq_factor"] > rope["low_freq_factor"]:
            raise ConfigError("rope_type 'llama3' needs high_freq_factor > low_freq_factor.")
        if kind == "longrope":
            for key in ("short_factor", "long_factor"):
                if not isinstance(rope[key], list) or len(rope[key]) != self.head_dim // 2:
                    raise ConfigError(
                        f"rope_parameters[{key!r}] must list {self.head_dim // 2} numbers (head_dim / 2), "
                        f"got {rope[key]!r}."
                    )
        if rope.get("partial_rotary_factor", 1.0) != 1.0:
            raise ConfigError("partial_rotary_factor other than 1.0 is not supported for this model type.")

    def layer_windows(self) -> list[int | None]:
        """Each layer's sliding window (None: attends to every earlier position)."""
        layers = range(self.num_hidden_layers)
        if self.windowing == "all":
            return [self.sliding_window for _ in layers]
        if self.windowing == "layer_types" and self.use_sliding_window:
            return [self.sliding_window if self.layer_types[i] == SLIDING else None for i in layers]
        return [None for _ in layers]

    def projection_biases(self) -> tuple[bool, bool]:
        """(query/key/value bias, output bias)."""
        if self.qkv_bias is None:
            return self.attention_bias, self.attention_bias
        return self.qkv_bias, False


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
    qk_norm = True
    windowing = "layer_types"
    defaults: ClassVar[dict[str, Any]] = {**_QWEN_DEFAULTS, "head_dim": 128}


# -- rotary positions ---------------------------------------------------------------------------


def rotary_frequencies(config: DecoderConfig, seq_len: int) -> tuple[torch.Tensor, float]:
    """Inverse frequencies (head_dim / 2,) and the factor cos/sin are scaled by, for a forward whose
    largest position is ``seq_len - 1`` (dynamic and longrope scaling depend on it)."""
    rope = config.rope_parameters
    kind, base, dim = rope["rope_type"], float(rope["rope_theta"]), config.head_dim
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
        return _yarn(inv_freq, base, dim, config)
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


def _yarn(inv_freq: torch.Tensor, base: float, dim: int, config: DecoderConfig) -> tuple[torch.Tensor, float]:
    """YaRN: interpolate low frequencies, keep high ones, ramp between; scale attention by mscale."""
    rope = config.rope_parameters
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
    config: DecoderConfig, position_ids: torch.Tensor, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin) of shape (batch or 1, 1, seq, head_dim) in ``dtype``, computed in float32."""
    length_dependent = config.rope_parameters["rope_type"] in LENGTH_DEPENDENT
    # Reading the largest position synchronises with an accelerator: only where it matters.
    inv_freq, scale = rotary_frequencies(config, int(position_ids.max()) + 1 if length_dependent else 0)
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
    """x / rms(x) * weight, normalised in float32 and scaled in the input's dtype (as the reference)."""

    def __init__(self, width: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.eps = eps

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        dtype = hidden.dtype
        hidden = hidden.float()
        hidden = hidden * torch.rsqrt(hidden.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * hidden.to(dtype)


class DecoderAttention(nn.Module):
    """Grouped-query attention with rotary positions; optional per-head q/k norms and a window."""

    def __init__(self, config: DecoderConfig, index: int, window: int | None) -> None:
        super().__init__()
        self.index, self.window = index, window
        self.heads, self.kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = config.head_dim
        qkv_bias, out_bias = config.projection_biases()
        hidden, width, kv_width = config.hidden_size, self.heads * self.head_dim, self.kv_heads * self.head_dim
        self.q_proj = nn.Linear(hidden, width, bias=qkv_bias)
        self.k_proj = nn.Linear(hidden, kv_width, bias=qkv_bias)
        self.v_proj = nn.Linear(hidden, kv_width, bias=qkv_bias)
        self.o_proj = nn.Linear(width, hidden, bias=out_bias)
        if config.qk_norm:
            self.q_norm = RMSNorm(self.head_dim, config.rms_norm_eps)
            self.k_norm = RMSNorm(self.head_dim, config.rms_norm_eps)
        self.dropout = config.attention_dropout

    def forward(
        self, hidden: torch.Tensor, mask: Mask, rotary: tuple[torch.Tensor, torch.Tensor], cache: KVCache | None,
        need_weights: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        query, key, value = self.q_proj(hidden), self.k_proj(hidden), self.v_proj(hidden)
        if hasattr(self, "q_norm"):
            shape = (*hidden.shape[:-1], -1, self.head_dim)
            query = self.q_norm(query.view(shape)).flatten(-2)
            key = self.k_norm(key.view(shape)).flatten(-2)
        context, weights = attend(
            query, key, value, mask, heads=self.heads, kv_heads=self.kv_heads, window=self.window,
            dropout=self.dropout if self.training else 0.0, need_weights=need_weights, cache=cache,
            layer=self.index, rotary=rotary,
        )
        return self.o_proj(context), weights


class DecoderMLP(nn.Module):
    """Gated feed-forward: down(act(gate(x)) * up(x)) (SwiGLU with silu)."""

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        hidden, inner, bias = config.hidden_size, config.intermediate_size, config.mlp_bias
        self.gate_proj = nn.Linear(hidden, inner, bias=bias)
        self.up_proj = nn.Linear(hidden, inner, bias=bias)
        self.down_proj = nn.Linear(inner, hidden, bias=bias)
        self.act = get_activation(config.hidden_act, "hidden_act")

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act(self.gate_proj(hidden)) * self.up_proj(hidden))


class DecoderLayer(nn.Module):
    """Pre-norm attention and feed-forward blocks, each added to the residual stream."""

    def __init__(self, config: DecoderConfig, index: int, window: int | None) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = DecoderAttention(config, index, window)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = DecoderMLP(config)

    def forward(
        self, hidden: torch.Tensor, mask: Mask, rotary: tuple[torch.Tensor, torch.Tensor], cache: KVCache | None,
        need_weights: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, weights = self.self_attn(self.input_layernorm(hidden), mask, rotary, cache, need_weights)
        hidden = hidden + attended
        return hidden + self.mlp(self.post_attention_layernorm(hidden)), weights


# -- models -------------------------------------------------------------------------------------


class DecoderPreTrainedModel(PreTrainedModel):
    config_class = DecoderConfig
    base_model_prefix = "model"

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, RMSNorm):
            with torch.no_grad():
                module.weight.fill_(1.0)

    def _flags(self, output_attentions, output_hidden_states, return_dict, use_cache) -> tuple[bool, bool, bool, bool]:
        use_cache = bool(self.config.use_cache) if use_cache is None else use_cache
        return (*self._resolve(output_attentions, output_hidden_states, return_dict), use_cache)


class DecoderModel(DecoderPreTrainedModel):
    """Token embeddings, the decoder layers and a final RMSNorm (the last entry of ``hidden_states``
    is the normalised one, as in the reference)."""

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.layers = nn.ModuleList(
            DecoderLayer(config, i, window) for i, window in enumerate(config.layer_windows())
        )
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)

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
    ) -> BaseModelOutputWithPast | tuple:
        """``attention_mask`` covers the cached positions and the new ones: (batch, past + seq)."""
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
        mask = Mask.padding(attention_mask, batch, past + seq, hidden.device, causal=True, offset=past)
        rotary = rotary_tables(config, position_ids.to(hidden.device), hidden.dtype)
        hidden, all_hidden, all_weights = run_layers(
            self.layers, hidden, (mask, rotary, cache), output_attentions, output_hidden_states
        )
        hidden = self.norm(hidden)
        if all_hidden is not None:
            all_hidden = all_hidden[:-1] + (hidden,)
        output = BaseModelOutputWithPast(
            last_hidden_state=hidden, past_key_values=cache, hidden_states=all_hidden, attentions=all_weights
        )
        return output if return_dict else output.to_tuple()


class DecoderForCausalLM(GenerationMixin, DecoderPreTrainedModel):
    """The decoder and a vocabulary projection (``lm_head``, tied to the embeddings when
    ``tie_word_embeddings``); ``generate`` and ``generation_config`` come from ``GenerationMixin``."""

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
        outputs = self.model(
            input_ids, attention_mask, position_ids, past_key_values, inputs_embeds, use_cache,
            output_attentions, output_hidden_states, return_dict=True,
        )
        hidden = outputs.last_hidden_state
        if isinstance(logits_to_keep, bool) or not isinstance(logits_to_keep, int) or logits_to_keep < 0:
            raise InputError(f"logits_to_keep must be a non-negative int (0: every position), got {logits_to_keep!r}.")
        logits = self.lm_head(hidden[:, -logits_to_keep:] if logits_to_keep else hidden)
        loss = None if labels is None else causal_lm_loss(logits, labels)
        output = CausalLMOutputWithPast(
            loss=loss, logits=logits, past_key_values=outputs.past_key_values,
            hidden_states=outputs.hidden_states, attentions=outputs.attentions,
        )
        return output if return_dict else output.to_tuple()


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy (in float32) of each position's logits against the next label; -100 ignored."""
    if not isinstance(labels, torch.Tensor) or labels.shape != logits.shape[:2]:
        got = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise InputError(
            f"labels must be a (batch, seq) tensor of token ids like the logits' {tuple(logits.shape[:2])}, got {got}."
        )
    targets = labels[:, 1:].to(logits.device)
    return F.cross_entropy(logits[:, :-1].float().flatten(0, 1), targets.flatten(), ignore_index=-100)


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


__all__ = [
    "DecoderConfig", "DecoderForCausalLM", "DecoderModel",
    "LlamaConfig", "LlamaForCausalLM", "LlamaModel", "MistralConfig", "MistralForCausalLM", "MistralModel",
    "Qwen2Config", "Qwen2ForCausalLM", "Qwen2Model", "Qwen3Config", "Qwen3ForCausalLM", "Qwen3Model",
    "left_padded_positions",
]
