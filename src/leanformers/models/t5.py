"""T5 (Raffel et al., 2019): an encoder-decoder Transformer with relative position buckets.

What sets it apart from BART-style models: no absolute positions, a learned per-head bias for each
(bucketed) query-key distance, held by the first layer of each stack and shared by the others;
unscaled dot products; RMS layer norms (no mean, no bias) before each sub-layer; projections without
biases. ``feed_forward_proj`` "relu" is the original feed-forward, "gated-gelu" the gated one of
T5 v1.1 and FLAN-T5.

Module paths equal the reference's checkpoint keys (``encoder.block.0.layer.0.SelfAttention.q.weight``).
The embedding ``shared`` is tied to both stacks' ``embed_tokens`` and, as the reference decides, to
``lm_head``: tied unless the checkpoint holds an ``lm_head.weight`` of its own (FLAN-T5). Decoder
outputs are scaled by d_model ** -0.5 before ``lm_head`` when ``scale_decoder_outputs`` (derived, as
in the reference, from ``tie_word_embeddings`` not being False in the original config).

Decoding state is a ``Seq2SeqCache`` (modeling/seq2seq.py): self-attention keys and values in a
``KVCache``, cross-attention projections of the encoder output computed once.
"""

from __future__ import annotations

import math
import sys
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..configuration import PretrainedConfig
from ..errors import ConfigError, InputError
from ..modeling.activations import get_activation
from ..modeling.attention import Mask, attend
from ..modeling.base import PreTrainedModel
from ..modeling.checks import check_text_inputs, embedding_lookup, positive_int
from ..modeling.generation import GenerationMixin
from ..modeling.losses import masked_lm_loss
from ..modeling.outputs import (
    BaseModelOutput,
    BaseModelOutputWithPastAndCrossAttentions,
    Seq2SeqLMOutput,
    Seq2SeqModelOutput,
)
from ..modeling.seq2seq import (
    Seq2SeqCache,
    check_cache,
    encoder_outputs_of,
    head_output,
    model_output,
    shift_tokens_right,
)


class T5Config(PretrainedConfig):
    """T5's settings under its files' names; ``hidden_size``, ``num_attention_heads``,
    ``num_hidden_layers`` and ``head_dim`` read ``d_model``, ``num_heads``, ``num_layers``, ``d_kv``.

    As in the reference, ``dense_act_fn`` and ``is_gated_act`` are derived from ``feed_forward_proj``,
    ``num_decoder_layers`` defaults to ``num_layers``, and ``tie_word_embeddings`` always reads True
    (the input embeddings are always shared) while a given ``tie_word_embeddings=False`` only turns
    off ``scale_decoder_outputs``."""

    model_type: ClassVar[str] = "t5"
    attribute_map: ClassVar[dict[str, str]] = {
        "hidden_size": "d_model",
        "num_attention_heads": "num_heads",
        "num_hidden_layers": "num_layers",
        "head_dim": "d_kv",
    }
    defaults: ClassVar[dict[str, Any]] = {
        "vocab_size": 32128,
        "d_model": 512,
        "d_kv": 64,
        "d_ff": 2048,
        "num_layers": 6,
        "num_decoder_layers": None,
        "num_heads": 8,
        "relative_attention_num_buckets": 32,
        "relative_attention_max_distance": 128,
        "dropout_rate": 0.1,
        "layer_norm_epsilon": 1e-6,
        "initializer_factor": 1.0,
        "feed_forward_proj": "relu",
        "is_encoder_decoder": True,
        "use_cache": True,
        "pad_token_id": 0,
        "eos_token_id": 1,
        "classifier_dropout": 0.0,
        "is_decoder": False,
    }

    def __init__(self, **kwargs: Any) -> None:
        kwargs = dict(kwargs)
        if "scale_decoder_outputs" not in kwargs:
            kwargs["scale_decoder_outputs"] = kwargs.get("tie_word_embeddings") is not False
        kwargs["tie_word_embeddings"] = True
        projection = kwargs.get("feed_forward_proj", self.defaults["feed_forward_proj"])
        if isinstance(projection, str):
            parts = projection.split("-")
            kwargs["is_gated_act"] = parts[0] == "gated"
            kwargs["dense_act_fn"] = "gelu_new" if projection == "gated-gelu" else parts[-1]
        super().__init__(**kwargs)
        if self.num_decoder_layers is None:
            self.num_decoder_layers = self.num_layers

    def validate(self) -> None:
        for key in ("vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_heads",
                    "relative_attention_num_buckets", "relative_attention_max_distance"):
            positive_int(key, getattr(self, key))
        if self.num_decoder_layers is not None:
            positive_int("num_decoder_layers", self.num_decoder_layers)
        projection = self.feed_forward_proj
        parts = projection.split("-") if isinstance(projection, str) else []
        if not parts or len(parts) > 2 or (len(parts) == 2 and parts[0] != "gated"):
            raise ConfigError(
                f"feed_forward_proj={projection!r} is not valid; use an activation name ('relu') or "
                "'gated-' and one ('gated-gelu')."
            )
        get_activation(self.dense_act_fn, "feed_forward_proj")
        buckets = self.relative_attention_num_buckets
        # The encoder splits the buckets between two directions and each direction keeps half of its
        # buckets for exact distances; the rest are log-spaced up to max_distance.
        if buckets < 4 or self.relative_attention_max_distance <= buckets // 2:
            raise ConfigError(
                f"relative_attention_num_buckets={buckets} and relative_attention_max_distance="
                f"{self.relative_attention_max_distance} leave no log-spaced buckets; use at least 4 buckets and "
                "a max distance above half the bucket count (the defaults are 32 and 128)."
            )
        rate = self.dropout_rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
            raise ConfigError(f"dropout_rate must be a probability between 0 and 1, got {rate!r}.")
        if not (isinstance(self.layer_norm_epsilon, (int, float)) and self.layer_norm_epsilon > 0):
            raise ConfigError(f"layer_norm_epsilon must be positive, got {self.layer_norm_epsilon!r}.")
        pad = self.pad_token_id
        if pad is not None and (isinstance(pad, bool) or not isinstance(pad, int) or not 0 <= pad < self.vocab_size):
            raise ConfigError(f"pad_token_id={pad!r} is not a token id of a vocabulary of {self.vocab_size}.")


# -- modules ------------------------------------------------------------------------------------


def _init_std(config: T5Config, wi: nn.Linear | None = None, wo: nn.Linear | None = None) -> None:
    """Record the feed-forward matrices' initial standard deviations (fan-in ** -0.5)."""
    if wi is not None:
        wi.init_std = config.d_model**-0.5
    if wo is not None:
        wo.init_std = config.d_ff**-0.5


def _clamp_half(hidden: torch.Tensor) -> torch.Tensor:
    """In float16, keep activations finite (pre-trained T5 weights overflow it), as the reference does."""
    if hidden.dtype != torch.float16:
        return hidden
    largest = torch.finfo(torch.float16).max
    limit = largest - 1000 if bool(torch.isinf(hidden).any()) else largest
    return hidden.clamp(-limit, limit)


class T5LayerNorm(nn.Module):
    """RMS norm: scale by the root mean square, computed in float32; no mean, no bias."""

    def __init__(self, width: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.variance_epsilon = eps

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        variance = hidden.to(torch.float32).pow(2).mean(-1, keepdim=True)
        hidden = hidden * torch.rsqrt(variance + self.variance_epsilon)
        if self.weight.dtype in (torch.float16, torch.bfloat16):
            hidden = hidden.to(self.weight.dtype)
        return self.weight * hidden


class T5DenseActDense(nn.Module):
    def __init__(self, config: T5Config) -> None:
        super().__init__()
        self.wi = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.wo = nn.Linear(config.d_ff, config.d_model, bias=False)
        _init_std(config, wi=self.wi, wo=self.wo)
        self.act = get_activation(config.dense_act_fn, "feed_forward_proj")
        self.dropout = config.dropout_rate

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        hidden = F.dropout(self.act(self.wi(hidden)), self.dropout, self.training)
        # ``wo`` may be kept in float32 while the rest runs in half precision.
        return self.wo(hidden.to(self.wo.weight.dtype))


class T5DenseGatedActDense(nn.Module):
    def __init__(self, config: T5Config) -> None:
        super().__init__()
        self.wi_0 = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.wi_1 = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.wo = nn.Linear(config.d_ff, config.d_model, bias=False)
        _init_std(config, wi=self.wi_0, wo=self.wo)
        _init_std(config, wi=self.wi_1)
        self.act = get_activation(config.dense_act_fn, "feed_forward_proj")
        self.dropout = config.dropout_rate

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        hidden = self.act(self.wi_0(hidden)) * self.wi_1(hidden)
        hidden = F.dropout(hidden, self.dropout, self.training)
        return self.wo(hidden.to(self.wo.weight.dtype))


class T5LayerFF(nn.Module):
    def __init__(self, config: T5Config) -> None:
        super().__init__()
        self.DenseReluDense = (T5DenseGatedActDense if config.is_gated_act else T5DenseActDense)(config)
        self.layer_norm = T5LayerNorm(config.d_model, config.layer_norm_epsilon)
        self.dropout = config.dropout_rate

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        update = self.DenseReluDense(self.layer_norm(hidden))
        return hidden + F.dropout(update, self.dropout, self.training)


def relative_position_bucket(relative: torch.Tensor, bidirectional: bool, buckets: int, max_distance: int) -> torch.Tensor:
    """Bucket of each key-minus-query distance: exact for small distances, log-spaced up to
    ``max_distance``, the last bucket beyond. Bidirectional buckets keep later keys apart from
    earlier ones; causal ones count only earlier keys (later ones share bucket 0)."""
    offset = torch.zeros_like(relative)
    if bidirectional:
        buckets //= 2
        offset = (relative > 0).long() * buckets
        distance = relative.abs()
    else:
        distance = (-relative).clamp(min=0)
    exact = buckets // 2
    # Distances below ``exact`` never use this value (log(0) is -inf there).
    spaced = exact + (
        torch.log(distance.float() / exact) / math.log(max_distance / exact) * (buckets - exact)
    ).long()
    spaced = spaced.clamp(max=buckets - 1)
    return offset + torch.where(distance < exact, distance, spaced)


class T5Attention(nn.Module):
    """Unscaled multi-head attention; with ``relative_attention_bias`` it also computes the
    per-head position bias its stack shares."""

    def __init__(self, config: T5Config, has_relative_attention_bias: bool, bidirectional: bool) -> None:
        super().__init__()
        self.heads = config.num_heads
        inner = config.num_heads * config.d_kv
        self.q = nn.Linear(config.d_model, inner, bias=False)
        self.k = nn.Linear(config.d_model, inner, bias=False)
        self.v = nn.Linear(config.d_model, inner, bias=False)
        self.o = nn.Linear(inner, config.d_model, bias=False)
        self.bidirectional = bidirectional
        self.buckets = config.relative_attention_num_buckets
        self.max_distance = config.relative_attention_max_distance
        self.dropout = config.dropout_rate
        d_model, d_kv = config.d_model, config.d_kv
        self.q.init_std = (d_model * d_kv) ** -0.5
        self.k.init_std = self.v.init_std = d_model**-0.5
        self.o.init_std = inner**-0.5
        if has_relative_attention_bias:
            self.relative_attention_bias = nn.Embedding(self.buckets, config.num_heads)
            self.relative_attention_bias.init_std = d_model**-0.5

    def position_bias(self, queries: int, keys: int, offset: int, device: torch.device) -> torch.Tensor:
        """(1, heads, queries, keys) bias for queries at ``offset``, ``offset + 1``, ... and keys at 0, 1, ...."""
        query_positions = torch.arange(offset, offset + queries, device=device)[:, None]
        key_positions = torch.arange(keys, device=device)[None, :]
        bucket = relative_position_bucket(key_positions - query_positions, self.bidirectional, self.buckets,
                                          self.max_distance)
        return self.relative_attention_bias(bucket).permute(2, 0, 1)[None]

    def forward(
        self,
        hidden: torch.Tensor,
        mask: Mask | None,
        bias: torch.Tensor | None,
        need_weights: bool,
        keys_values: tuple[torch.Tensor, torch.Tensor] | None = None,
        cache: Any = None,
        layer: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Self-attention over ``hidden`` (appending to the ``KVCache`` ``cache``), or cross-attention
        over projected encoder ``keys_values``."""
        key, value = keys_values if keys_values is not None else (self.k(hidden), self.v(hidden))
        context, weights = attend(
            self.q(hidden), key, value, mask, heads=self.heads, scale=1.0, bias=bias,
            dropout=self.dropout if self.training else 0.0, need_weights=need_weights, cache=cache, layer=layer,
        )
        return self.o(context), weights


class T5LayerSelfAttention(nn.Module):
    def __init__(self, config: T5Config, has_relative_attention_bias: bool, bidirectional: bool) -> None:
        super().__init__()
        self.SelfAttention = T5Attention(config, has_relative_attention_bias, bidirectional)
        self.layer_norm = T5LayerNorm(config.d_model, config.layer_norm_epsilon)
        self.dropout = config.dropout_rate

    def forward(self, hidden, mask, bias, need_weights, cache, layer):
        update, weights = self.SelfAttention(self.layer_norm(hidden), mask, bias, need_weights, cache=cache, layer=layer)
        return hidden + F.dropout(update, self.dropout, self.training), weights


class T5LayerCrossAttention(nn.Module):
    def __init__(self, config: T5Config) -> None:
        super().__init__()
        self.EncDecAttention = T5Attention(config, has_relative_attention_bias=False, bidirectional=True)
        self.layer_norm = T5LayerNorm(config.d_model, config.layer_norm_epsilon)
        self.dropout = config.dropout_rate

    def forward(self, hidden, encoder_hidden, mask, need_weights, cache, layer):
        attention = self.EncDecAttention

        def project() -> tuple[torch.Tensor, torch.Tensor]:
            return attention.k(encoder_hidden), attention.v(encoder_hidden)

        keys_values = project() if cache is None else cache.cross_keys_values(layer, project)
        update, weights = attention(self.layer_norm(hidden), mask, None, need_weights, keys_values)
        return hidden + F.dropout(update, self.dropout, self.training), weights


class T5Block(nn.Module):
    """Self-attention, cross-attention (decoder only) and feed-forward, each pre-normed and residual."""

    def __init__(self, config: T5Config, has_relative_attention_bias: bool, is_decoder: bool) -> None:
        super().__init__()
        self.layer = nn.ModuleList([T5LayerSelfAttention(config, has_relative_attention_bias, not is_decoder)])
        if is_decoder:
            self.layer.append(T5LayerCrossAttention(config))
        self.layer.append(T5LayerFF(config))


class T5Stack(nn.Module):
    """The encoder or the decoder: embedding lookup, blocks, final RMS norm. Called like the
    reference's stack (``encoder(input_ids=..., attention_mask=...)``) it returns an output object."""

    def __init__(self, config: T5Config, is_decoder: bool) -> None:
        super().__init__()
        self.config, self.is_decoder = config, is_decoder
        layers = config.num_decoder_layers if is_decoder else config.num_layers
        self.embed_tokens = nn.Embedding(config.vocab_size, config.d_model)
        self.block = nn.ModuleList(T5Block(config, i == 0, is_decoder) for i in range(layers))
        self.final_layer_norm = T5LayerNorm(config.d_model, config.layer_norm_epsilon)
        self.dropout = config.dropout_rate

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        past_key_values: Seq2SeqCache | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> BaseModelOutputWithPastAndCrossAttentions | tuple:
        config = self.config
        output_attentions = config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = config.output_hidden_states if output_hidden_states is None else output_hidden_states
        return_dict = config.use_return_dict if return_dict is None else return_dict
        name = "decoder_input_ids" if self.is_decoder else "input_ids"
        batch, seq = check_text_inputs(input_ids, inputs_embeds, config.d_model, sys.maxsize)
        if inputs_embeds is None:
            inputs_embeds = embedding_lookup(self.embed_tokens, input_ids, name)
        device = inputs_embeds.device
        cache = None
        if self.is_decoder:
            use_cache = config.use_cache if use_cache is None else use_cache
            cache = check_cache(past_key_values, len(self.block))
            if cache is None and use_cache:
                cache = Seq2SeqCache(len(self.block))
        elif past_key_values is not None or use_cache:
            raise InputError("The T5 encoder keeps no cache; past_key_values and use_cache are for the decoder.")
        past = 0 if cache is None else cache.get_seq_length()
        mask = Mask.padding(attention_mask, batch, past + seq, device, causal=self.is_decoder, offset=past)
        cross_mask = None
        if self.is_decoder:
            if encoder_hidden_states is None:
                raise InputError("The T5 decoder needs encoder_hidden_states (the encoder's last_hidden_state).")
            if encoder_hidden_states.dim() != 3 or encoder_hidden_states.shape[0] != batch:
                raise InputError(
                    f"encoder_hidden_states must be (batch {batch}, source length, {config.d_model}), got "
                    f"{tuple(encoder_hidden_states.shape)}."
                )
            cross_mask = Mask.padding(encoder_attention_mask, batch, encoder_hidden_states.shape[1], device)
        bias = self.block[0].layer[0].SelfAttention.position_bias(seq, past + seq, past, device)
        hidden = F.dropout(inputs_embeds, self.dropout, self.training)
        all_hidden = (hidden,) if output_hidden_states else None
        self_weights = () if output_attentions else None
        # The reference's encoder also reports an empty cross_attentions tuple when asked for attentions.
        cross_weights = () if output_attentions else None
        attention_cache = None if cache is None else cache.self_attention
        for index, block in enumerate(self.block):
            hidden, weights = block.layer[0](hidden, mask, bias, output_attentions, attention_cache, index)
            hidden = _clamp_half(hidden)
            if self.is_decoder:
                hidden, crossed = block.layer[1](
                    hidden, encoder_hidden_states, cross_mask, output_attentions, cache, index
                )
                hidden = _clamp_half(hidden)
                if output_attentions:
                    cross_weights += (crossed,)
            hidden = _clamp_half(block.layer[-1](hidden))
            if output_hidden_states:
                all_hidden += (hidden,)
            if output_attentions:
                self_weights += (weights,)
        hidden = F.dropout(self.final_layer_norm(hidden), self.dropout, self.training)
        if output_hidden_states:
            # As in the reference: the last entry is the normalised output, not the last block's.
            all_hidden = all_hidden[:-1] + (hidden,)
        output = BaseModelOutputWithPastAndCrossAttentions(hidden, cache, all_hidden, self_weights, cross_weights)
        return output if return_dict else output.to_tuple()


# -- models -------------------------------------------------------------------------------------


class T5PreTrainedModel(PreTrainedModel):
    config_class = T5Config
    base_model_prefix = "transformer"
    # Older files carry a relative bias table for the first cross-attention, which never uses one.
    _ignore_on_load: ClassVar[list[str]] = [r"^decoder\.block\.0\.layer\.1\.EncDecAttention\.relative_attention_bias\."]

    def _init_weights(self, module: nn.Module) -> None:
        """The reference's scheme: each matrix normal with the standard deviation its module set
        (``init_std``, the fan-in ** -0.5), embeddings with 1, norms 1, all times ``initializer_factor``."""
        factor = self.config.initializer_factor
        with torch.no_grad():
            if isinstance(module, T5LayerNorm):
                module.weight.fill_(factor)
            elif isinstance(module, (nn.Linear, nn.Embedding)):
                module.weight.normal_(0.0, factor * getattr(module, "init_std", 1.0))

    def _load_checkpoint(self, tensors, dtype: torch.dtype, ignore_mismatched_sizes: bool):
        report = super()._load_checkpoint(tensors, dtype, ignore_mismatched_sizes)
        if dtype == torch.float16:
            # As the reference: the feed-forward output projections stay float32 in a float16 model,
            # read from the file at full precision (pre-trained T5's activations there overflow float16).
            for name, module in self.named_modules():
                if isinstance(module, (T5DenseActDense, T5DenseGatedActDense)):
                    key = f"{name}.wo.weight"
                    weight = tensors.get(key, module.wo.weight)
                    module.wo.weight = nn.Parameter(weight.to(module.wo.weight.device, torch.float32))
        return report

    def get_input_embeddings(self) -> nn.Embedding:
        return self.shared

    def get_encoder(self) -> T5Stack:
        return self.encoder

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """Teacher-forcing decoder inputs: labels shifted right after ``decoder_start_token_id``."""
        return shift_tokens_right(labels, self.config.pad_token_id, getattr(self.config, "decoder_start_token_id", None))

    _shift_right = prepare_decoder_input_ids_from_labels

    def _encode(self, input_ids, attention_mask, inputs_embeds, encoder_outputs, output_attentions,
                output_hidden_states) -> BaseModelOutput | BaseModelOutputWithPastAndCrossAttentions:
        if encoder_outputs is None:
            return self.encoder(input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds,
                                output_attentions=output_attentions, output_hidden_states=output_hidden_states,
                                return_dict=True)
        return encoder_outputs_of(encoder_outputs)

    def _seq2seq(
        self, input_ids, attention_mask, decoder_input_ids, decoder_attention_mask, encoder_outputs,
        past_key_values, inputs_embeds, decoder_inputs_embeds, use_cache, output_attentions, output_hidden_states,
    ) -> tuple[Any, BaseModelOutputWithPastAndCrossAttentions]:
        encoded = self._encode(input_ids, attention_mask, inputs_embeds, encoder_outputs, output_attentions,
                               output_hidden_states)
        if decoder_input_ids is None and decoder_inputs_embeds is None:
            raise InputError(
                "T5 needs decoder_input_ids (start with config.decoder_start_token_id) or decoder_inputs_embeds, "
                "or labels to derive them from."
            )
        decoded = self.decoder(
            input_ids=decoder_input_ids, attention_mask=decoder_attention_mask, inputs_embeds=decoder_inputs_embeds,
            encoder_hidden_states=encoded.last_hidden_state, encoder_attention_mask=attention_mask,
            past_key_values=past_key_values, use_cache=use_cache, output_attentions=output_attentions,
            output_hidden_states=output_hidden_states, return_dict=True,
        )
        return encoded, decoded


_EMBEDDING_TIES = {"encoder.embed_tokens.weight": "shared.weight", "decoder.embed_tokens.weight": "shared.weight"}


class T5Model(T5PreTrainedModel):
    """Encoder and decoder over one shared embedding; returns the decoder's last hidden state."""

    _tied_weights: ClassVar[dict[str, str]] = _EMBEDDING_TIES

    def __init__(self, config: T5Config) -> None:
        super().__init__(config)
        self.shared = nn.Embedding(config.vocab_size, config.d_model)
        self.encoder = T5Stack(config, is_decoder=False)
        self.decoder = T5Stack(config, is_decoder=True)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: Any = None,
        past_key_values: Seq2SeqCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> Seq2SeqModelOutput | tuple:
        output_attentions, output_hidden_states, return_dict = self._resolve(
            output_attentions, output_hidden_states, return_dict
        )
        encoded, decoded = self._seq2seq(
            input_ids, attention_mask, decoder_input_ids, decoder_attention_mask, encoder_outputs, past_key_values,
            inputs_embeds, decoder_inputs_embeds, use_cache, output_attentions, output_hidden_states,
        )
        output = model_output(encoded, decoded)
        return output if return_dict else output.to_tuple()


class T5ForConditionalGeneration(GenerationMixin, T5Model):
    """T5 with its language-model head: next-token logits for every decoder position."""

    _tied_weights: ClassVar[dict[str, str]] = {**_EMBEDDING_TIES, "lm_head.weight": "shared.weight"}

    def __init__(self, config: T5Config) -> None:
        super().__init__(config)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)

    def _load_checkpoint(self, tensors, dtype: torch.dtype, ignore_mismatched_sizes: bool):
        # A checkpoint with its own output matrix (FLAN-T5, T5 v1.1) keeps it: the head is untied.
        if "lm_head.weight" in tensors and "shared.weight" in tensors and not torch.equal(
            tensors["lm_head.weight"], tensors["shared.weight"]
        ):
            self._tied_weights = dict(_EMBEDDING_TIES)
        return super()._load_checkpoint(tensors, dtype, ignore_mismatched_sizes)

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: Any = None,
        past_key_values: Seq2SeqCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> Seq2SeqLMOutput | tuple:
        """``labels`` (batch, target length), -100 where ignored, give the mean cross-entropy ``loss``
        and, when no decoder inputs are given, the decoder inputs (labels shifted right)."""
        output_attentions, output_hidden_states, return_dict = self._resolve(
            output_attentions, output_hidden_states, return_dict
        )
        if labels is not None and decoder_input_ids is None and decoder_inputs_embeds is None:
            decoder_input_ids = self.prepare_decoder_input_ids_from_labels(labels)
        encoded, decoded = self._seq2seq(
            input_ids, attention_mask, decoder_input_ids, decoder_attention_mask, encoder_outputs, past_key_values,
            inputs_embeds, decoder_inputs_embeds, use_cache, output_attentions, output_hidden_states,
        )
        hidden = decoded.last_hidden_state
        if self.config.scale_decoder_outputs:
            hidden = hidden * self.config.d_model**-0.5
        logits = self.lm_head(hidden)
        loss = None
        if labels is not None:
            if not isinstance(labels, torch.Tensor) or labels.shape != logits.shape[:2]:
                got = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
                raise InputError(f"labels must be a {tuple(logits.shape[:2])} tensor of token ids like the decoder "
                                 f"inputs, got {got}.")
            loss = masked_lm_loss(logits, labels)
        output = head_output(Seq2SeqLMOutput, loss, logits, model_output(encoded, decoded))
        return output if return_dict else output.to_tuple()


class T5EncoderModel(T5PreTrainedModel):
    """The encoder alone (sentence embeddings, T5-based text encoders); a full checkpoint's decoder
    and head are skipped on load."""

    _tied_weights: ClassVar[dict[str, str]] = {"encoder.embed_tokens.weight": "shared.weight"}
    _ignore_on_load: ClassVar[list[str]] = [r"^decoder\.", r"^lm_head\."]

    def __init__(self, config: T5Config) -> None:
        super().__init__(config)
        self.shared = nn.Embedding(config.vocab_size, config.d_model)
        self.encoder = T5Stack(config, is_decoder=False)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> BaseModelOutputWithPastAndCrossAttentions | tuple:
        output_attentions, output_hidden_states, return_dict = self._resolve(
            output_attentions, output_hidden_states, return_dict
        )
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds,
                            output_attentions=output_attentions, output_hidden_states=output_hidden_states,
                            return_dict=return_dict)


__all__ = ["T5Config", "T5EncoderModel", "T5ForConditionalGeneration", "T5Model"]
