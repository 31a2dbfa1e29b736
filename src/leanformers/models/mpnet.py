"""MPNet (Song et al., 2020): a BERT-shaped encoder with RoBERTa-style positions and a T5-style
relative position bias shared by every layer, and its task heads.

Module paths equal the reference library's checkpoint keys (``mpnet.encoder.layer.0.attention.attn.q.
weight``, ``mpnet.encoder.relative_attention_bias.weight``, ``lm_head.decoder.weight``); a base-model
checkpoint such as sentence-transformers' all-mpnet-base-v2 stores the same keys without ``mpnet.``.
The relative bias depends on positions only, so unpadded (packed) execution computes it per
length bucket; padded batches run packed as BERT's do (``config.unpad_inputs``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..configuration import PretrainedConfig
from ..errors import ConfigError
from ..modeling.attention import Mask, PackedBatch, attend, run_encoder, run_layers
from ..modeling.base import PreTrainedModel
from ..modeling.checks import check_positions, check_text_inputs, embedding_lookup, validate_encoder_config
from ..modeling.heads import ForMaskedLM, ForQuestionAnswering, ForSequenceClassification, ForTokenClassification
from ..modeling.outputs import BaseModelOutputWithPooling, ModelOutput
from .bert import BertIntermediate, BertOutput, BertPooler
from .roberta import RobertaLMHead

# The reference fixes these whatever the config says: padding id 1 for the word and position tables
# (positions count from 2), and 32 buckets up to distance 128 for the relative bias.
PADDING_IDX = 1
# The relative bias as a dense term, or (packed) as a function of a bucket's queries and keys.
Bias = torch.Tensor | Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
BUCKETS = 32
MAX_DISTANCE = 128


class MPNetConfig(PretrainedConfig):
    model_type: ClassVar[str] = "mpnet"
    defaults: ClassVar[dict[str, Any]] = {
        "vocab_size": 30527,
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": 512,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-12,
        "relative_attention_num_buckets": 32,
        "pad_token_id": 1,
        "bos_token_id": 0,
        "eos_token_id": 2,
    }

    def validate(self) -> None:
        validate_encoder_config(
            self,
            sizes=(
                "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "max_position_embeddings", "relative_attention_num_buckets",
            ),
            dropouts=("hidden_dropout_prob", "attention_probs_dropout_prob"),
            activation="hidden_act",
        )
        if not self.layer_norm_eps > 0:
            raise ConfigError(f"layer_norm_eps must be positive, got {self.layer_norm_eps!r}.")
        if self.relative_attention_num_buckets < BUCKETS:
            raise ConfigError(
                f"relative_attention_num_buckets={self.relative_attention_num_buckets} is too small: MPNet looks "
                f"relative positions up in {BUCKETS} buckets, so the table needs at least {BUCKETS} rows."
            )
        if self.max_position_embeddings <= PADDING_IDX + 1:
            raise ConfigError(
                f"max_position_embeddings={self.max_position_embeddings} leaves no position: MPNet's positions "
                f"start at {PADDING_IDX + 1}."
            )


def relative_buckets(length: int, device: torch.device) -> torch.Tensor:
    """(length, length) bucket ids of (query - key) distances: exact up to 8, log-spaced up to
    ``MAX_DISTANCE``, the sign in the upper half of the ids."""
    positions = torch.arange(length, device=device)
    distance = positions[:, None] - positions[None, :]
    half = BUCKETS // 2
    exact = half // 2
    buckets = (distance < 0).long() * half
    distance = distance.abs()
    # Same float32 operations as the reference, so every id agrees; distances below ``exact`` take
    # the exact branch, and clamping them keeps log() finite.
    far = exact + (
        torch.log(distance.clamp(min=exact).float() / exact) / math.log(MAX_DISTANCE / exact) * (half - exact)
    ).long()
    return buckets + torch.where(distance < exact, distance, far.clamp(max=half - 1))


# -- modules ------------------------------------------------------------------------------------


class MPNetEmbeddings(nn.Module):
    """word + position embeddings (positions count the non-padding tokens from 2), LayerNorm, dropout."""

    def __init__(self, config: MPNetConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=PADDING_IDX)
        self.position_embeddings = nn.Embedding(
            config.max_position_embeddings, config.hidden_size, padding_idx=PADDING_IDX
        )
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = config.hidden_dropout_prob

    def forward(
        self, input_ids: torch.Tensor | None, position_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None
    ) -> torch.Tensor:
        if position_ids is None:
            if input_ids is not None:
                # Padding tokens keep the padding position, every other token counts up from it.
                real = input_ids.ne(PADDING_IDX).long()
                position_ids = torch.cumsum(real, dim=1) * real + PADDING_IDX
            else:
                seq = inputs_embeds.shape[1]
                position_ids = torch.arange(PADDING_IDX + 1, seq + PADDING_IDX + 1, device=inputs_embeds.device)[None]
        if inputs_embeds is None:
            inputs_embeds = embedding_lookup(self.word_embeddings, input_ids, "input_ids")
        positions = embedding_lookup(self.position_embeddings, position_ids, "position_ids")
        return F.dropout(self.LayerNorm(inputs_embeds + positions), self.dropout, self.training)


class MPNetSelfAttention(nn.Module):
    def __init__(self, config: MPNetConfig) -> None:
        super().__init__()
        self.heads = config.num_attention_heads
        self.q = nn.Linear(config.hidden_size, config.hidden_size)
        self.k = nn.Linear(config.hidden_size, config.hidden_size)
        self.v = nn.Linear(config.hidden_size, config.hidden_size)
        self.o = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = config.attention_probs_dropout_prob

    def forward(
        self, hidden: torch.Tensor, bias: Bias, packing: PackedBatch | None, need_weights: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        context, weights = attend(
            self.q(hidden), self.k(hidden), self.v(hidden), packing, heads=self.heads, bias=bias,
            dropout=self.dropout if self.training else 0.0, need_weights=need_weights,
        )
        return self.o(context), weights


class MPNetAttention(nn.Module):
    def __init__(self, config: MPNetConfig) -> None:
        super().__init__()
        self.attn = MPNetSelfAttention(config)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = config.hidden_dropout_prob

    def forward(
        self, hidden: torch.Tensor, bias: Bias, packing: PackedBatch | None, need_weights: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, weights = self.attn(hidden, bias, packing, need_weights)
        return self.LayerNorm(F.dropout(attended, self.dropout, self.training) + hidden), weights


class MPNetLayer(nn.Module):
    def __init__(self, config: MPNetConfig) -> None:
        super().__init__()
        self.attention = MPNetAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)

    def forward(
        self, hidden: torch.Tensor, bias: Bias, packing: PackedBatch | None, need_weights: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, weights = self.attention(hidden, bias, packing, need_weights)
        return self.output(self.intermediate(attended), attended), weights


class MPNetEncoder(nn.Module):
    """The layers, and the relative position bias table they all share."""

    def __init__(self, config: MPNetConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(MPNetLayer(config) for _ in range(config.num_hidden_layers))
        self.relative_attention_bias = nn.Embedding(config.relative_attention_num_buckets, config.num_attention_heads)

    def position_bias(self, length: int, device: torch.device) -> torch.Tensor:
        """(1, heads, length, length): the learnt bias of each query-key distance."""
        return self.relative_attention_bias(relative_buckets(length, device)).permute(2, 0, 1)[None]

    def forward(
        self, hidden: torch.Tensor, mask: Mask | PackedBatch | None, output_attentions: bool,
        output_hidden_states: bool,
    ) -> tuple[torch.Tensor, tuple | None, tuple | None]:
        if isinstance(mask, PackedBatch):
            # Per bucket length, computed once for all layers.
            biases: dict[int, torch.Tensor] = {}

            def bias(query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
                length = query.shape[-2]
                if length not in biases:
                    biases[length] = self.position_bias(length, hidden.device)
                return biases[length]

            return run_layers(self.layer, hidden, (bias, mask), output_attentions, output_hidden_states)
        seq = hidden.shape[1]
        # Computed once; padding folded in here rather than in every layer.
        bias = self.position_bias(seq, hidden.device)
        if mask is not None:
            bias = bias.masked_fill(~mask.grid(seq, seq, None, hidden.device), torch.finfo(bias.dtype).min)
        return run_layers(self.layer, hidden, (bias, None), output_attentions, output_hidden_states)


class MPNetClassificationHead(nn.Module):
    """First token -> dropout -> dense -> tanh -> dropout -> out_proj."""

    def __init__(self, config: MPNetConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.out_proj = nn.Linear(config.hidden_size, config.num_labels)
        self.dropout = config.hidden_dropout_prob

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        features = F.dropout(hidden[:, 0], self.dropout, self.training)
        features = torch.tanh(self.dense(features))
        return self.out_proj(F.dropout(features, self.dropout, self.training))


class MPNetPreTrainedModel(PreTrainedModel):
    config_class = MPNetConfig
    base_model_prefix = "mpnet"
    # Older checkpoints saved this index buffer; it is recomputed, never loaded.
    _ignore_on_load = [r"(^|\.)embeddings\.position_ids$"]

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, RobertaLMHead):
            with torch.no_grad():
                module.bias.zero_()


class MPNetModel(MPNetPreTrainedModel):
    """The encoder: embeddings, Transformer layers with the shared relative bias, and (optionally)
    the pooler over the first token."""

    def __init__(self, config: MPNetConfig, add_pooling_layer: bool = True) -> None:
        super().__init__(config)
        self.embeddings = MPNetEmbeddings(config)
        self.encoder = MPNetEncoder(config)
        self.pooler = BertPooler(config) if add_pooling_layer else None

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        token_type_ids: torch.Tensor | None = None,
        *,
        padding_in_output: bool = True,
    ) -> BaseModelOutputWithPooling | tuple:
        """``token_type_ids`` is accepted and ignored, as the reference does (MPNet has no segment
        embeddings). ``padding_in_output=False``: see BertModel."""
        config = self.config
        output_attentions, output_hidden_states, return_dict = self._resolve(
            output_attentions, output_hidden_states, return_dict
        )
        batch, seq = check_text_inputs(
            input_ids, inputs_embeds, config.hidden_size, config.max_position_embeddings - PADDING_IDX - 1
        )
        check_positions("position_ids", position_ids, batch, seq)
        hidden = self.embeddings(input_ids, position_ids, inputs_embeds)
        hidden, all_hidden, all_weights = run_encoder(
            self.encoder, hidden, attention_mask, output_attentions, output_hidden_states,
            unpad_inputs=getattr(config, "unpad_inputs", None),
            macs_per_token=config.hidden_size * (4 * config.hidden_size + 2 * config.intermediate_size),
            padding_in_output=padding_in_output,
        )
        output = BaseModelOutputWithPooling(
            last_hidden_state=hidden,
            pooler_output=self.pooler(hidden) if self.pooler is not None else None,
            hidden_states=all_hidden,
            attentions=all_weights,
        )
        return output if return_dict else output.to_tuple()


class MPNetForSequenceClassification(ForSequenceClassification, MPNetPreTrainedModel):
    """First token -> MPNetClassificationHead (``classifier.dense``, ``classifier.out_proj``)."""

    base_model_class = MPNetModel
    base_model_kwargs = {"add_pooling_layer": False}

    def build_head(self, config: MPNetConfig) -> None:
        self.num_labels = config.num_labels
        self.classifier = MPNetClassificationHead(config)

    def classify(self, outputs: ModelOutput) -> torch.Tensor:
        return self.classifier(outputs.last_hidden_state)


class MPNetForTokenClassification(ForTokenClassification, MPNetPreTrainedModel):
    base_model_class = MPNetModel
    base_model_kwargs = {"add_pooling_layer": False}
    dropout_keys = ("hidden_dropout_prob",)


class MPNetForQuestionAnswering(ForQuestionAnswering, MPNetPreTrainedModel):
    base_model_class = MPNetModel
    base_model_kwargs = {"add_pooling_layer": False}


class MPNetForMaskedLM(ForMaskedLM, MPNetPreTrainedModel):
    """Masked-token prediction over the vocabulary, the output matrix tied to the word embeddings."""

    base_model_class = MPNetModel
    base_model_kwargs = {"add_pooling_layer": False}
    lm_head_name, lm_head_class = "lm_head", RobertaLMHead
    _tied_weights = {
        "lm_head.decoder.weight": "mpnet.embeddings.word_embeddings.weight",
        "lm_head.decoder.bias": "lm_head.bias",
    }


__all__ = [
    "MPNetConfig",
    "MPNetForMaskedLM",
    "MPNetForQuestionAnswering",
    "MPNetForSequenceClassification",
    "MPNetForTokenClassification",
    "MPNetModel",
]
