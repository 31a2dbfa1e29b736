"""GPT-2: a pre-norm decoder with learned absolute positions and fused query/key/value projections.

Module paths equal the hub's checkpoint keys: the base model holds ``wte``, ``wpe``, ``h.{i}`` and
``ln_f``; heads keep it under ``transformer`` (``transformer.h.0.attn.c_attn.weight``) and the LM
head's ``lm_head`` is tied to ``wte``. The original checkpoints store the base model's keys with no
prefix; the loader's base-model-prefix handling maps them either way.

GPT-2's projections are ``Conv1D`` layers: a linear map whose weight is stored (in, out), the
transpose of ``nn.Linear``'s. They are kept as they are stored, so state dicts equal the hub's
tensor for tensor and nothing is transposed on load or save. ``c_attn`` computes queries, keys and
values in one product and is split afterwards. Old checkpoints also carry the causal-mask buffers
``attn.bias`` and ``attn.masked_bias``; the mask is built per call instead and those are dropped.

Positions come from a table of ``n_positions`` rows, so an input cannot reach past it (unlike the
rotary decoders): that is an InputError. As in the reference's forward, positions default to 0, 1,
... after the cached ones whatever the padding; ``generate`` passes positions that count real tokens
only, which is what left-padded prompts need.
"""

from __future__ import annotations

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
    check_logits_to_keep,
    check_positions,
    check_text_inputs,
    embedding_lookup,
    validate_encoder_config,
)
from ..modeling.generation import GenerationMixin
from ..modeling.heads import ForTokenClassification
from ..modeling.losses import causal_lm_loss, sequence_classification_loss
from ..modeling.outputs import (
    BaseModelOutputWithPast,
    CausalLMOutputWithPast,
    ModelOutput,
    SequenceClassifierOutputWithPast,
)


class GPT2Config(PretrainedConfig):
    """GPT-2's settings under the names its files use (``n_embd``, ``n_layer``, ``n_head``,
    ``n_positions``); the usual names (``hidden_size``, ``num_hidden_layers``,
    ``num_attention_heads``, ``max_position_embeddings``) read and write the same values.
    ``n_inner`` None means 4 x ``n_embd``. The ``summary_*`` keys belong to the reference's
    multiple-choice head and are kept for round trips."""

    model_type: ClassVar[str] = "gpt2"
    attribute_map: ClassVar[dict[str, str]] = {
        "hidden_size": "n_embd",
        "max_position_embeddings": "n_positions",
        "num_attention_heads": "n_head",
        "num_hidden_layers": "n_layer",
    }
    defaults: ClassVar[dict[str, Any]] = {
        "vocab_size": 50257,
        "n_positions": 1024,
        "n_embd": 768,
        "n_layer": 12,
        "n_head": 12,
        "n_inner": None,
        "activation_function": "gelu_new",
        "resid_pdrop": 0.1,
        "embd_pdrop": 0.1,
        "attn_pdrop": 0.1,
        "layer_norm_epsilon": 1e-5,
        "initializer_range": 0.02,
        "summary_type": "cls_index",
        "summary_use_proj": True,
        "summary_activation": None,
        "summary_proj_to_labels": True,
        "summary_first_dropout": 0.1,
        "scale_attn_weights": True,
        "use_cache": True,
        "bos_token_id": 50256,
        "eos_token_id": 50256,
        "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False,
        "add_cross_attention": False,
        "tie_word_embeddings": True,
    }

    def validate(self) -> None:
        validate_encoder_config(
            self, ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head"),
            ("resid_pdrop", "embd_pdrop", "attn_pdrop"), "activation_function",
        )
        inner = self.n_inner
        if inner is not None and (isinstance(inner, bool) or not isinstance(inner, int) or inner < 1):
            raise ConfigError(f"n_inner must be a positive integer, or null for 4 x n_embd, got {inner!r}.")
        eps = self.layer_norm_epsilon
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
            raise ConfigError(f"layer_norm_epsilon must be a positive number, got {eps!r}.")
        for key in ("scale_attn_weights", "scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn",
                    "add_cross_attention", "tie_word_embeddings"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"{key} must be true or false, got {getattr(self, key)!r}.")

    @property
    def inner_size(self) -> int:
        """The feed-forward width."""
        return self.n_inner if self.n_inner is not None else 4 * self.n_embd


# -- modules ------------------------------------------------------------------------------------


class Conv1D(nn.Module):
    """``x @ weight + bias`` with ``weight`` stored (in, out), as GPT-2's checkpoints hold it.

    ``residual`` marks the projections back into the residual stream (``c_proj``), which start
    with a smaller spread (the GPT-2 paper's 1 / sqrt(2 x layers) scaling)."""

    def __init__(self, in_features: int, out_features: int, residual: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight)
        return out.view(*x.shape[:-1], out.shape[-1])


class GPT2Attention(nn.Module):
    """Causal multi-head self-attention; queries, keys and values from one fused projection."""

    def __init__(self, config: GPT2Config, index: int) -> None:
        super().__init__()
        width = config.hidden_size
        self.index, self.width, self.heads = index, width, config.num_attention_heads
        self.c_attn = Conv1D(width, 3 * width)
        self.c_proj = Conv1D(width, width, residual=True)
        scale = (width // self.heads) ** -0.5 if config.scale_attn_weights else 1.0
        self.scale = scale / (index + 1) if config.scale_attn_by_inverse_layer_idx else scale
        # Half-precision scores can overflow in deep models; this flag computes attention in float32
        # (the cache then holds those layers' keys and values in float32 too).
        self.upcast = config.reorder_and_upcast_attn
        self.attn_dropout, self.resid_dropout = config.attn_pdrop, config.resid_pdrop

    def forward(
        self, hidden: torch.Tensor, mask: Mask | None, cache: KVCache | None, need_weights: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        query, key, value = self.c_attn(hidden).split(self.width, dim=-1)
        dtype = query.dtype
        if self.upcast and dtype.itemsize < 4:
            query, key, value = query.float(), key.float(), value.float()
        context, weights = attend(
            query, key, value, mask, heads=self.heads, scale=self.scale,
            dropout=self.attn_dropout if self.training else 0.0, need_weights=need_weights, cache=cache,
            layer=self.index,
        )
        if weights is not None:
            weights = weights.to(dtype)
        output = self.c_proj(context.to(dtype))
        return F.dropout(output, self.resid_dropout, self.training), weights


class GPT2MLP(nn.Module):
    def __init__(self, config: GPT2Config) -> None:
        super().__init__()
        self.c_fc = Conv1D(config.hidden_size, config.inner_size)
        self.c_proj = Conv1D(config.inner_size, config.hidden_size, residual=True)
        self.act = get_activation(config.activation_function, "activation_function")
        self.dropout = config.resid_pdrop

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return F.dropout(self.c_proj(self.act(self.c_fc(hidden))), self.dropout, self.training)


class GPT2Block(nn.Module):
    """Pre-norm attention and feed-forward blocks, each added to the residual stream."""

    def __init__(self, config: GPT2Config, index: int) -> None:
        super().__init__()
        eps = config.layer_norm_epsilon
        self.ln_1 = nn.LayerNorm(config.hidden_size, eps=eps)
        self.attn = GPT2Attention(config, index)
        self.ln_2 = nn.LayerNorm(config.hidden_size, eps=eps)
        self.mlp = GPT2MLP(config)

    def forward(
        self, hidden: torch.Tensor, mask: Mask | None, cache: KVCache | None, need_weights: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, weights = self.attn(self.ln_1(hidden), mask, cache, need_weights)
        hidden = hidden + attended
        return hidden + self.mlp(self.ln_2(hidden)), weights


# -- models -------------------------------------------------------------------------------------


class GPT2PreTrainedModel(PreTrainedModel):
    config_class = GPT2Config
    base_model_prefix = "transformer"
    # The causal-mask buffers older files carry (the mask is built per call).
    _ignore_on_load: ClassVar[list[str]] = [r"(^|\.)(attn|crossattention)\.(masked_)?bias$"]

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, Conv1D):
            std = self.config.initializer_range
            if module.residual:
                std /= (2 * self.config.num_hidden_layers) ** 0.5
            with torch.no_grad():
                module.weight.normal_(0.0, std)
                module.bias.zero_()


class GPT2Model(GPT2PreTrainedModel):
    """Token and position embeddings, the blocks and a final LayerNorm (the last entry of
    ``hidden_states`` is the normalised one, as in the reference)."""

    def __init__(self, config: GPT2Config) -> None:
        super().__init__(config)
        if config.add_cross_attention:
            raise ConfigError(
                "This config sets add_cross_attention=True, but leanformers implements GPT-2 as a decoder-only "
                "model (no cross-attention to an encoder). Set it to False to use the decoder on its own."
            )
        self.wte = nn.Embedding(config.vocab_size, config.hidden_size)
        self.wpe = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.h = nn.ModuleList(GPT2Block(config, i) for i in range(config.num_hidden_layers))
        self.ln_f = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_epsilon)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.wte

    def _position_embeddings(self, position_ids: torch.Tensor | None, past: int, seq: int,
                             device: torch.device) -> torch.Tensor:
        limit = self.wpe.num_embeddings
        if position_ids is None:
            if past + seq > limit:
                raise InputError(self._out_of_range(0, past + seq - 1))
            return self.wpe(torch.arange(past, past + seq, device=device)[None])
        position_ids = position_ids.to(device)
        # An out-of-range index on an accelerator is an unrecoverable device assert: check first there.
        if position_ids.device.type != "cpu" and bool(((position_ids < 0) | (position_ids >= limit)).any()):
            raise InputError(self._out_of_range(int(position_ids.min()), int(position_ids.max())))
        try:
            return self.wpe(position_ids)
        except IndexError:
            raise InputError(self._out_of_range(int(position_ids.min()), int(position_ids.max()))) from None

    def _out_of_range(self, low: int, high: int) -> str:
        limit = self.wpe.num_embeddings
        if low < 0:
            return f"position_ids must not be negative, got {low}."
        return (
            f"The input reaches position {high}, but this model learned position embeddings for n_positions={limit} "
            f"positions (0 to {limit - 1}) only, and learned positions cannot be extrapolated. Truncate the input "
            f"(e.g. tokenizer(..., truncation=True, max_length={limit})) or generate fewer new tokens."
        )

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        past_key_values: KVCache | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> BaseModelOutputWithPast | tuple:
        """``attention_mask`` covers the cached positions and the new ones: (batch, past + seq).
        ``token_type_ids`` are looked up in the token embeddings and added, as in the reference."""
        output_attentions, output_hidden_states, return_dict = self._resolve(
            output_attentions, output_hidden_states, return_dict
        )
        use_cache = bool(self.config.use_cache) if use_cache is None else use_cache
        # The position table's length is checked below, where the cache's length is known.
        batch, seq = check_text_inputs(input_ids, inputs_embeds, self.config.hidden_size, sys.maxsize)
        if past_key_values is not None and not isinstance(past_key_values, KVCache):
            raise InputError(
                f"past_key_values must be the KVCache a previous call returned, got {type(past_key_values).__name__}."
            )
        cache = past_key_values if past_key_values is not None or not use_cache else KVCache(len(self.h))
        past = cache.get_seq_length() if cache is not None else 0
        for name, ids in (("token_type_ids", token_type_ids), ("position_ids", position_ids)):
            check_positions(name, ids, batch, seq)
            if ids is not None and (ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool):
                raise InputError(f"{name} must hold integer indices, got dtype {ids.dtype}.")
        hidden = embedding_lookup(self.wte, input_ids, "input_ids") if inputs_embeds is None else inputs_embeds
        hidden = hidden + self._position_embeddings(position_ids, past, seq, hidden.device)
        if token_type_ids is not None:
            hidden = hidden + embedding_lookup(self.wte, token_type_ids.to(hidden.device), "token_type_ids")
        hidden = F.dropout(hidden, self.config.embd_pdrop, self.training)
        mask = Mask.padding(attention_mask, batch, past + seq, hidden.device, causal=True, offset=past)
        hidden, all_hidden, all_weights = run_layers(
            self.h, hidden, (mask, cache), output_attentions, output_hidden_states
        )
        hidden = self.ln_f(hidden)
        if all_hidden is not None:
            all_hidden = all_hidden[:-1] + (hidden,)
        output = BaseModelOutputWithPast(
            last_hidden_state=hidden, past_key_values=cache, hidden_states=all_hidden, attentions=all_weights
        )
        return output if return_dict else output.to_tuple()


class GPT2LMHeadModel(GenerationMixin, GPT2PreTrainedModel):
    """The base model and a vocabulary projection tied to the token embeddings; ``generate`` and
    ``generation_config`` come from ``GenerationMixin``."""

    _tied_weights: ClassVar[dict[str, str]] = {"lm_head.weight": "transformer.wte.weight"}

    def __init__(self, config: GPT2Config) -> None:
        super().__init__(config)
        self.transformer = GPT2Model(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        past_key_values: KVCache | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
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
        outputs = self.transformer(
            input_ids, past_key_values, attention_mask, token_type_ids, position_ids, inputs_embeds, use_cache,
            output_attentions, output_hidden_states, return_dict=True,
        )
        hidden = outputs.last_hidden_state
        logits = self.lm_head(hidden[:, -logits_to_keep:] if logits_to_keep else hidden)
        loss = None if labels is None else causal_lm_loss(logits, labels)
        output = CausalLMOutputWithPast(
            loss=loss, logits=logits, past_key_values=outputs.past_key_values,
            hidden_states=outputs.hidden_states, attentions=outputs.attentions,
        )
        return output if return_dict else output.to_tuple()


class GPT2ForSequenceClassification(GPT2PreTrainedModel):
    """Classifies each row by its last token that is not ``config.pad_token_id`` (left or right
    padding alike), through a bias-free linear layer ``score``. Without a pad id only a single row
    can be classified (by its last position), as in the reference; with ``inputs_embeds`` the last
    position is used, since padding cannot be recognised there."""

    def __init__(self, config: GPT2Config) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.transformer = GPT2Model(config)
        self.score = nn.Linear(config.hidden_size, config.num_labels, bias=False)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        past_key_values: KVCache | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> SequenceClassifierOutputWithPast | tuple:
        return_dict = self.config.use_return_dict if return_dict is None else return_dict
        outputs = self.transformer(
            input_ids, past_key_values, attention_mask, token_type_ids, position_ids, inputs_embeds, use_cache,
            output_attentions, output_hidden_states, return_dict=True,
        )
        hidden = outputs.last_hidden_state
        batch, seq = hidden.shape[:2]
        pad = self.config.pad_token_id
        if pad is None and batch != 1:
            raise InputError(
                f"{type(self).__name__} classifies each row by its last token that is not padding, which needs "
                f"config.pad_token_id; it is unset, so only one row at a time can be classified (got {batch}). Set "
                "config.pad_token_id (e.g. to the tokenizer's pad or eos id) or pass one row per call."
            )
        if pad is None or input_ids is None:
            last = torch.full((batch,), seq - 1, device=hidden.device)
        else:
            real = (input_ids != pad).to(hidden.device, torch.int32)
            last = (torch.arange(seq, device=hidden.device, dtype=torch.int32) * real).argmax(-1)
        logits = self.score(hidden[torch.arange(batch, device=hidden.device), last])
        loss = sequence_classification_loss(logits, labels, self.config) if labels is not None else None
        output = SequenceClassifierOutputWithPast(
            loss=loss, logits=logits, past_key_values=outputs.past_key_values,
            hidden_states=outputs.hidden_states, attentions=outputs.attentions,
        )
        return output if return_dict else output.to_tuple()


class GPT2ForTokenClassification(ForTokenClassification, GPT2PreTrainedModel):
    """Every token's hidden state -> dropout -> linear classifier. Positional arguments follow
    ``GPT2Model.forward``."""

    base_model_class = GPT2Model
    dropout_keys = ("classifier_dropout", "hidden_dropout")

    def build_head(self, config: GPT2Config) -> None:
        super().build_head(config)
        if all(getattr(config, key, None) is None for key in self.dropout_keys):
            self.dropout = 0.1  # the reference's classifier dropout when the config names none

    def run_base(self, args: tuple, kwargs: dict[str, Any], padding_in_output: bool) -> ModelOutput:
        # A decoder runs padded either way; the cache is skipped unless asked for (nothing returns it).
        return self.base_model(*args, return_dict=True, **{"use_cache": False, **kwargs})


__all__ = [
    "GPT2Config", "GPT2ForSequenceClassification", "GPT2ForTokenClassification", "GPT2LMHeadModel", "GPT2Model",
    "GPT2PreTrainedModel",
]
