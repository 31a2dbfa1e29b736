"""DistilBERT (Sanh et al., 2019): BERT distilled to half the layers, without token types or pooler.

Module paths equal the reference's checkpoint keys (``distilbert.transformer.layer.0.attention.q_lin.
weight``, ``vocab_projector.weight``). The config uses its own names (``dim``, ``n_heads``,
``n_layers``, ``hidden_dim``, ``activation``); the usual ones are aliases.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..configuration import PretrainedConfig
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
from ..modeling.outputs import BaseModelOutput, ModelOutput

# DistilBERT's LayerNorms use a fixed epsilon; its config has no key for it.
LAYER_NORM_EPS = 1e-12


class DistilBertConfig(PretrainedConfig):
    model_type: ClassVar[str] = "distilbert"
    attribute_map: ClassVar[dict[str, str]] = {
        "hidden_size": "dim",
        "num_attention_heads": "n_heads",
        "num_hidden_layers": "n_layers",
    }
    defaults: ClassVar[dict[str, Any]] = {
        "vocab_size": 30522,
        "max_position_embeddings": 512,
        "sinusoidal_pos_embds": False,
        "n_layers": 6,
        "n_heads": 12,
        "dim": 768,
        "hidden_dim": 4 * 768,
        "dropout": 0.1,
        "attention_dropout": 0.1,
        "activation": "gelu",
        "initializer_range": 0.02,
        "qa_dropout": 0.1,
        "seq_classif_dropout": 0.2,
        "pad_token_id": 0,
    }

    def validate(self) -> None:
        validate_encoder_config(
            self,
            sizes=("vocab_size", "dim", "n_layers", "n_heads", "hidden_dim", "max_position_embeddings"),
            dropouts=("dropout", "attention_dropout", "qa_dropout", "seq_classif_dropout"),
            activation="activation",
        )


def sinusoidal_positions(n_positions: int, dim: int) -> torch.Tensor:
    """The fixed table of Vaswani et al.: sin on even channels, cos on odd, computed in float64."""
    position = torch.arange(n_positions, dtype=torch.float64)[:, None]
    exponent = torch.tensor([2 * (j // 2) / dim for j in range(dim)], dtype=torch.float64)
    angles = position / torch.pow(10000.0, exponent)
    table = torch.empty(n_positions, dim, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angles[:, 0::2])
    table[:, 1::2] = torch.cos(angles[:, 1::2])
    return table.float()


# -- modules ------------------------------------------------------------------------------------


class Embeddings(nn.Module):
    """word + position embeddings, LayerNorm, dropout."""

    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.dim, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.dim)
        # Marks the table _init_weights fills with sinusoids instead of random values.
        self.position_embeddings.sinusoidal = bool(config.sinusoidal_pos_embds)
        self.LayerNorm = nn.LayerNorm(config.dim, eps=LAYER_NORM_EPS)
        self.dropout = config.dropout

    def forward(
        self, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None, position_ids: torch.Tensor | None
    ) -> torch.Tensor:
        if input_ids is not None:
            inputs_embeds = embedding_lookup(self.word_embeddings, input_ids, "input_ids")
        if position_ids is None:
            positions = self.position_embeddings.weight[: inputs_embeds.shape[1]]
        else:
            positions = embedding_lookup(self.position_embeddings, position_ids, "position_ids")
        embeddings = self.LayerNorm(inputs_embeds + positions)
        return F.dropout(embeddings, self.dropout, self.training)


class DistilBertSelfAttention(nn.Module):
    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__()
        self.heads = config.n_heads
        self.q_lin = nn.Linear(config.dim, config.dim)
        self.k_lin = nn.Linear(config.dim, config.dim)
        self.v_lin = nn.Linear(config.dim, config.dim)
        self.out_lin = nn.Linear(config.dim, config.dim)
        self.dropout = config.attention_dropout

    def forward(
        self, hidden: torch.Tensor, mask: Mask | PackedBatch | None, need_weights: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        context, weights = attend(
            self.q_lin(hidden), self.k_lin(hidden), self.v_lin(hidden), mask, heads=self.heads,
            dropout=self.dropout if self.training else 0.0, need_weights=need_weights,
        )
        return self.out_lin(context), weights


class FFN(nn.Module):
    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__()
        self.lin1 = nn.Linear(config.dim, config.hidden_dim)
        self.lin2 = nn.Linear(config.hidden_dim, config.dim)
        self.act = get_activation(config.activation, "activation")
        self.dropout = config.dropout

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return F.dropout(self.lin2(self.act(self.lin1(hidden))), self.dropout, self.training)


class TransformerBlock(nn.Module):
    """Post-norm block: attention + residual + LayerNorm, then feed-forward + residual + LayerNorm."""

    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__()
        self.attention = DistilBertSelfAttention(config)
        self.sa_layer_norm = nn.LayerNorm(config.dim, eps=LAYER_NORM_EPS)
        self.ffn = FFN(config)
        self.output_layer_norm = nn.LayerNorm(config.dim, eps=LAYER_NORM_EPS)

    def forward(
        self, hidden: torch.Tensor, mask: Mask | PackedBatch | None, need_weights: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, weights = self.attention(hidden, mask, need_weights)
        attended = self.sa_layer_norm(attended + hidden)
        return self.output_layer_norm(self.ffn(attended) + attended), weights


class Transformer(nn.Module):
    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(TransformerBlock(config) for _ in range(config.n_layers))

    def forward(
        self,
        hidden: torch.Tensor,
        mask: Mask | PackedBatch | None,
        output_attentions: bool,
        output_hidden_states: bool,
    ) -> tuple[torch.Tensor, tuple | None, tuple | None]:
        return run_layers(self.layer, hidden, (mask,), output_attentions, output_hidden_states)


# -- models -------------------------------------------------------------------------------------


class DistilBertPreTrainedModel(PreTrainedModel):
    config_class = DistilBertConfig
    base_model_prefix = "distilbert"
    # Older checkpoints saved the position index buffer; it is recomputed, never loaded.
    _ignore_on_load = [r"(^|\.)embeddings\.position_ids$"]

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, nn.Embedding) and getattr(module, "sinusoidal", False):
            with torch.no_grad():
                module.weight.copy_(sinusoidal_positions(module.num_embeddings, module.embedding_dim))


class DistilBertModel(DistilBertPreTrainedModel):
    """The encoder: embeddings and Transformer blocks; no pooler."""

    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__(config)
        self.embeddings = Embeddings(config)
        self.transformer = Transformer(config)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        token_type_ids: torch.Tensor | None = None,
        *,
        padding_in_output: bool = True,
    ) -> BaseModelOutput | tuple:
        """``token_type_ids`` is accepted and ignored, as the reference does: DistilBERT has no segment
        embeddings, but BERT tokenizers hand them out and callers pass ``**tokenizer(...)`` on.
        ``padding_in_output=False`` is for heads that read no padded position of
        ``last_hidden_state``: it lets the automatic ``config.unpad_inputs`` run the encoder on the
        real tokens only (see modeling/attention.py)."""
        config = self.config
        output_attentions, output_hidden_states, return_dict = self._resolve(
            output_attentions, output_hidden_states, return_dict
        )
        batch, seq = check_text_inputs(input_ids, inputs_embeds, config.dim, config.max_position_embeddings)
        check_positions("position_ids", position_ids, batch, seq)
        hidden = self.embeddings(input_ids, inputs_embeds, position_ids)
        hidden, all_hidden, all_weights = run_encoder(
            self.transformer, hidden, attention_mask, output_attentions, output_hidden_states,
            unpad_inputs=getattr(config, "unpad_inputs", None),
            macs_per_token=config.dim * (4 * config.dim + 2 * config.hidden_dim),
            padding_in_output=padding_in_output,
        )
        output = BaseModelOutput(last_hidden_state=hidden, hidden_states=all_hidden, attentions=all_weights)
        return output if return_dict else output.to_tuple()


class DistilBertForSequenceClassification(ForSequenceClassification, DistilBertPreTrainedModel):
    """First token -> pre_classifier -> ReLU -> dropout -> classifier."""

    base_model_class = DistilBertModel
    dropout_keys = ("seq_classif_dropout",)

    def build_head(self, config: DistilBertConfig) -> None:
        self.pre_classifier = nn.Linear(config.dim, config.dim)
        super().build_head(config)

    def classify(self, outputs: ModelOutput) -> torch.Tensor:
        pooled = F.relu(self.pre_classifier(outputs.last_hidden_state[:, 0]))
        return self.classifier(F.dropout(pooled, self.dropout, self.training))


class DistilBertForTokenClassification(ForTokenClassification, DistilBertPreTrainedModel):
    base_model_class = DistilBertModel
    dropout_keys = ("dropout",)


class DistilBertForQuestionAnswering(ForQuestionAnswering, DistilBertPreTrainedModel):
    base_model_class = DistilBertModel
    dropout_keys = ("qa_dropout",)


class DistilBertForMaskedLM(ForMaskedLM, DistilBertPreTrainedModel):
    """vocab_transform -> activation -> vocab_layer_norm -> vocab_projector (tied to the word embeddings);
    the three layers sit at the top level, as the checkpoint keys have them."""

    base_model_class = DistilBertModel
    _tied_weights = {"vocab_projector.weight": "distilbert.embeddings.word_embeddings.weight"}

    def build_head(self, config: DistilBertConfig) -> None:
        self.act = get_activation(config.activation, "activation")
        self.vocab_transform = nn.Linear(config.dim, config.dim)
        self.vocab_layer_norm = nn.LayerNorm(config.dim, eps=LAYER_NORM_EPS)
        self.vocab_projector = nn.Linear(config.dim, config.vocab_size)

    def predict(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.vocab_projector(self.vocab_layer_norm(self.act(self.vocab_transform(hidden))))


__all__ = [
    "DistilBertConfig",
    "DistilBertForMaskedLM",
    "DistilBertForQuestionAnswering",
    "DistilBertForSequenceClassification",
    "DistilBertForTokenClassification",
    "DistilBertModel",
]
