"""BERT (Devlin et al., 2018): a bidirectional Transformer encoder and its task heads.

Module paths equal the checkpoint keys of the reference library (``bert.encoder.layer.0.attention.
self.query.weight``, ``cls.predictions.decoder.weight``), so weights load by name with no rename table.
Only the encoder is provided: decoder use (``is_decoder``, cross-attention, a key/value cache) is refused.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..configuration import PretrainedConfig
from ..errors import ConfigError
from ..modeling.activations import get_activation
from ..modeling.attention import Mask, PackedBatch, attend, run_encoder, run_layers
from ..modeling.base import PreTrainedModel
from ..modeling.checks import (
    check_positions,
    check_text_inputs,
    embedding_lookup,
    validate_encoder_config,
)
from ..modeling.heads import ForMaskedLM, ForQuestionAnswering, ForSequenceClassification, ForTokenClassification
from ..modeling.outputs import BaseModelOutputWithPoolingAndCrossAttentions


class BertConfig(PretrainedConfig):
    model_type: ClassVar[str] = "bert"
    defaults: ClassVar[dict[str, Any]] = {
        "vocab_size": 30522,
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": 512,
        "type_vocab_size": 2,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0,
        "use_cache": True,
        "classifier_dropout": None,
        "is_decoder": False,
        "add_cross_attention": False,
    }

    def validate(self) -> None:
        validate_encoder_config(
            self,
            sizes=(
                "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "max_position_embeddings", "type_vocab_size",
            ),
            dropouts=("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout"),
            activation="hidden_act",
        )
        if not self.layer_norm_eps > 0:
            raise ConfigError(f"layer_norm_eps must be positive, got {self.layer_norm_eps!r}.")
        position_type = getattr(self, "position_embedding_type", "absolute")
        if position_type not in (None, "absolute"):
            raise ConfigError(
                f"position_embedding_type={position_type!r} is not supported; only absolute position "
                "embeddings are (as in the reference library, which no longer implements relative ones)."
            )


# -- modules ------------------------------------------------------------------------------------


class BertEmbeddings(nn.Module):
    """word + token-type + position embeddings, LayerNorm, dropout."""

    def __init__(self, config: BertConfig, width: int | None = None) -> None:
        super().__init__()
        width = width or config.hidden_size  # ELECTRA's tables are narrower than its encoder
        self.word_embeddings = nn.Embedding(config.vocab_size, width, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, width)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, width)
        self.LayerNorm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.dropout = config.hidden_dropout_prob

    def forward(
        self,
        input_ids: torch.Tensor | None,
        token_type_ids: torch.Tensor | None,
        position_ids: torch.Tensor | None,
        inputs_embeds: torch.Tensor | None,
    ) -> torch.Tensor:
        if inputs_embeds is None:
            inputs_embeds = embedding_lookup(self.word_embeddings, input_ids, "input_ids")
        seq = inputs_embeds.shape[1]
        # Without explicit ids every row uses type 0 and positions 0..seq-1: rows of the tables broadcast
        # over the batch give the same numbers as a lookup, without building index tensors.
        if token_type_ids is None:
            token_types = self.token_type_embeddings.weight[0]
        else:
            token_types = embedding_lookup(self.token_type_embeddings, token_type_ids, "token_type_ids")
        if position_ids is None:
            positions = self.position_embeddings.weight[:seq]
        else:
            positions = embedding_lookup(self.position_embeddings, position_ids, "position_ids")
        embeddings = inputs_embeds + token_types
        embeddings = embeddings + positions
        embeddings = self.LayerNorm(embeddings)
        return F.dropout(embeddings, self.dropout, self.training)


class BertSelfAttention(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.heads = config.num_attention_heads
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = config.attention_probs_dropout_prob

    def forward(
        self, hidden: torch.Tensor, mask: Mask | PackedBatch | None, need_weights: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        return attend(
            self.query(hidden), self.key(hidden), self.value(hidden), mask, heads=self.heads,
            dropout=self.dropout if self.training else 0.0, need_weights=need_weights,
        )


class BertSelfOutput(nn.Module):
    """Projection of the attention context, dropout, residual and LayerNorm."""

    def __init__(self, config: BertConfig, in_features: int | None = None) -> None:
        super().__init__()
        self.dense = nn.Linear(in_features or config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = config.hidden_dropout_prob

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(F.dropout(self.dense(hidden), self.dropout, self.training) + residual)


class BertAttention(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.self = BertSelfAttention(config)
        self.output = BertSelfOutput(config)

    def forward(
        self, hidden: torch.Tensor, mask: Mask | PackedBatch | None, need_weights: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        context, weights = self.self(hidden, mask, need_weights)
        return self.output(context, hidden), weights


class BertIntermediate(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = get_activation(config.hidden_act)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.act(self.dense(hidden))


class BertOutput(BertSelfOutput):
    """The feed-forward block's down projection, dropout, residual and LayerNorm."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config, config.intermediate_size)


class BertLayer(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)

    def forward(
        self, hidden: torch.Tensor, mask: Mask | PackedBatch | None, need_weights: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, weights = self.attention(hidden, mask, need_weights)
        return self.output(self.intermediate(attended), attended), weights


class BertEncoder(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(config) for _ in range(config.num_hidden_layers))

    def forward(
        self,
        hidden: torch.Tensor,
        mask: Mask | PackedBatch | None,
        output_attentions: bool,
        output_hidden_states: bool,
    ) -> tuple[torch.Tensor, tuple | None, tuple | None]:
        return run_layers(self.layer, hidden, (mask,), output_attentions, output_hidden_states)


class BertPooler(nn.Module):
    """tanh(dense(hidden state of the first token))."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(hidden[:, 0]))


class BertPredictionHeadTransform(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = get_activation(config.hidden_act)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.act(self.dense(hidden)))


class BertLMPredictionHead(nn.Module):
    """Transform, then project onto the vocabulary. ``decoder`` shares the word embedding matrix and
    ``bias`` when the config ties word embeddings (the checkpoint then stores neither)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.transform = BertPredictionHeadTransform(config)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform(hidden))


class BertOnlyMLMHead(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.predictions = BertLMPredictionHead(config)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.predictions(hidden)


# -- models -------------------------------------------------------------------------------------


class BertPreTrainedModel(PreTrainedModel):
    config_class = BertConfig
    base_model_prefix = "bert"
    # Older checkpoints saved these index buffers; they are recomputed, never loaded.
    _ignore_on_load = [r"(^|\.)embeddings\.position_ids$", r"(^|\.)embeddings\.token_type_ids$"]

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, BertLMPredictionHead):
            with torch.no_grad():
                module.bias.zero_()


class BertModel(BertPreTrainedModel):
    """The encoder: embeddings, Transformer layers and (optionally) the pooler over the first token."""

    def __init__(self, config: BertConfig, add_pooling_layer: bool = True) -> None:
        super().__init__(config)
        for flag in ("is_decoder", "add_cross_attention"):
            if getattr(config, flag, False):
                raise ConfigError(
                    f"This config sets {flag}=True, but leanformers implements {config.model_type} only as an encoder "
                    "(no causal decoder, cross-attention or cache). Set it to False to use the encoder."
                )
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config) if add_pooling_layer else None

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        *,
        padding_in_output: bool = True,
    ) -> BaseModelOutputWithPoolingAndCrossAttentions | tuple:
        """``padding_in_output=False`` is for heads that read no padded position of
        ``last_hidden_state``: it lets the automatic ``config.unpad_inputs`` run the encoder on the
        real tokens only (see modeling/attention.py)."""
        output_attentions, output_hidden_states, return_dict = self._resolve(
            output_attentions, output_hidden_states, return_dict
        )
        config = self.config
        batch, seq = check_text_inputs(input_ids, inputs_embeds, config.hidden_size, config.max_position_embeddings)
        check_positions("token_type_ids", token_type_ids, batch, seq)
        check_positions("position_ids", position_ids, batch, seq)
        hidden = self.embeddings(input_ids, token_type_ids, position_ids, inputs_embeds)
        hidden, all_hidden, all_weights = run_encoder(
            self.encoder, hidden, attention_mask, output_attentions, output_hidden_states,
            unpad_inputs=getattr(config, "unpad_inputs", None),
            macs_per_token=config.hidden_size * (4 * config.hidden_size + 2 * config.intermediate_size),
            padding_in_output=padding_in_output,
        )
        output = BaseModelOutputWithPoolingAndCrossAttentions(
            last_hidden_state=hidden,
            pooler_output=self.pooler(hidden) if self.pooler is not None else None,
            hidden_states=all_hidden,
            attentions=all_weights,
            # The reference reports an empty cross_attentions tuple whenever attentions are asked for.
            cross_attentions=() if output_attentions else None,
        )
        return output if return_dict else output.to_tuple()


class BertForSequenceClassification(ForSequenceClassification, BertPreTrainedModel):
    base_model_class = BertModel
    dropout_keys = ("classifier_dropout", "hidden_dropout_prob")


class BertForTokenClassification(ForTokenClassification, BertPreTrainedModel):
    base_model_class = BertModel
    base_model_kwargs = {"add_pooling_layer": False}
    dropout_keys = ("classifier_dropout", "hidden_dropout_prob")


class BertForQuestionAnswering(ForQuestionAnswering, BertPreTrainedModel):
    base_model_class = BertModel
    base_model_kwargs = {"add_pooling_layer": False}


class BertForMaskedLM(ForMaskedLM, BertPreTrainedModel):
    """Masked-token prediction over the vocabulary, the output matrix tied to the word embeddings."""

    base_model_class = BertModel
    base_model_kwargs = {"add_pooling_layer": False}
    lm_head_name, lm_head_class = "cls", BertOnlyMLMHead
    _tied_weights = {
        "cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
        "cls.predictions.decoder.bias": "cls.predictions.bias",
    }


__all__ = [
    "BertConfig",
    "BertForMaskedLM",
    "BertForQuestionAnswering",
    "BertForSequenceClassification",
    "BertForTokenClassification",
    "BertModel",
]
