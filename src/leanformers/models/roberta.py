"""RoBERTa (Liu et al., 2019): BERT's encoder with fairseq's padding-offset positions and its own heads.

The encoder is BERT's modules unchanged; what differs is data and heads. Positions count from
``pad_token_id + 1`` and padding tokens take position ``pad_token_id`` (so a checkpoint's position
table has ``pad_token_id + 1`` more rows than its longest input), the sentence classifier is a small
MLP on the first token (``classifier.dense``, ``classifier.out_proj``), and the masked-LM head is
``lm_head.{dense,layer_norm,decoder}``. Module paths equal the reference's checkpoint keys.
XLM-RoBERTa and CamemBERT are this model under other names (xlm_roberta.py, camembert.py).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..modeling.activations import Activation, get_activation
from ..modeling.checks import check_text_inputs
from ..modeling.heads import (
    ForMaskedLM,
    ForQuestionAnswering,
    ForSequenceClassification,
    ForTokenClassification,
)
from ..modeling.outputs import BaseModelOutputWithPoolingAndCrossAttentions, ModelOutput
from .bert import BertConfig, BertModel, BertPreTrainedModel


class RobertaConfig(BertConfig):
    model_type: ClassVar[str] = "roberta"
    defaults: ClassVar[dict[str, Any]] = {
        **BertConfig.defaults,
        "vocab_size": 50265,
        "pad_token_id": 1,
        "bos_token_id": 0,
        "eos_token_id": 2,
    }

    def validate(self) -> None:
        super().validate()
        pad = self.pad_token_id
        # Positions are offsets from the padding id, so it must be a real row of the position table
        # with room for at least one position after it.
        if isinstance(pad, bool) or not isinstance(pad, int) or not 0 <= pad < self.max_position_embeddings - 1:
            raise ConfigError(
                f"pad_token_id={pad!r}: {self.model_type} numbers positions from pad_token_id + 1, so it needs a "
                f"non-negative pad_token_id below max_position_embeddings - 1 ({self.max_position_embeddings - 1})."
            )


# -- modules ------------------------------------------------------------------------------------


class RobertaLMHead(nn.Module):
    """dense -> GELU -> LayerNorm -> vocabulary projection. The GELU is fixed, whatever ``hidden_act``
    says, as in the original; ``decoder`` shares the word embeddings and ``bias`` when tied."""

    def __init__(self, config: RobertaConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.act = get_activation("gelu")

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.layer_norm(self.act(self.dense(hidden))))


class RobertaClassificationHead(nn.Module):
    """First token -> dropout -> dense -> activation -> dropout -> out_proj. RoBERTa's activation is
    tanh; ELECTRA uses the same head with GELU."""

    def __init__(self, config: Any, activation: Activation = torch.tanh) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.out_proj = nn.Linear(config.hidden_size, config.num_labels)
        self.activation = activation
        self.dropout = config.hidden_dropout_prob if config.classifier_dropout is None else config.classifier_dropout

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        x = F.dropout(hidden[:, 0], self.dropout, self.training)
        x = F.dropout(self.activation(self.dense(x)), self.dropout, self.training)
        return self.out_proj(x)


# -- models -------------------------------------------------------------------------------------


class RobertaPreTrainedModel(BertPreTrainedModel):
    config_class = RobertaConfig
    base_model_prefix = "roberta"

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, RobertaLMHead):
            with torch.no_grad():
                module.bias.zero_()


class RobertaModel(RobertaPreTrainedModel, BertModel):
    """BERT's encoder (and pooler) with positions numbered from the padding id."""

    def __init__(self, config: RobertaConfig, add_pooling_layer: bool = True) -> None:
        super().__init__(config, add_pooling_layer)
        # The reference's position table has a padding row: it starts at zero and gets no gradient.
        self.embeddings.position_embeddings.padding_idx = config.pad_token_id

    def padding_offset_positions(
        self, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None
    ) -> torch.Tensor:
        """Token i of a row (counting real tokens only) at ``pad + i``, padding tokens at ``pad``;
        from ``inputs_embeds`` nothing tells padding apart, so every row counts from ``pad + 1``."""
        config = self.config
        pad = config.pad_token_id
        check_text_inputs(input_ids, inputs_embeds, config.hidden_size, config.max_position_embeddings - pad - 1)
        if input_ids is None:
            seq = inputs_embeds.shape[1]
            return torch.arange(pad + 1, seq + pad + 1, device=inputs_embeds.device)[None]
        real = input_ids != pad
        return real.cumsum(1) * real + pad

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
        if position_ids is None:
            position_ids = self.padding_offset_positions(input_ids, inputs_embeds)
        return super().forward(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, output_attentions,
            output_hidden_states, return_dict, padding_in_output=padding_in_output,
        )


class RobertaForSequenceClassification(ForSequenceClassification, RobertaPreTrainedModel):
    base_model_class = RobertaModel
    base_model_kwargs = {"add_pooling_layer": False}

    def build_head(self, config: RobertaConfig) -> None:
        self.num_labels = config.num_labels
        self.classifier = RobertaClassificationHead(config)

    def classify(self, outputs: ModelOutput) -> torch.Tensor:
        return self.classifier(outputs.last_hidden_state)


class RobertaForTokenClassification(ForTokenClassification, RobertaPreTrainedModel):
    base_model_class = RobertaModel
    base_model_kwargs = {"add_pooling_layer": False}
    dropout_keys = ("classifier_dropout", "hidden_dropout_prob")


class RobertaForQuestionAnswering(ForQuestionAnswering, RobertaPreTrainedModel):
    base_model_class = RobertaModel
    base_model_kwargs = {"add_pooling_layer": False}


class RobertaForMaskedLM(ForMaskedLM, RobertaPreTrainedModel):
    base_model_class = RobertaModel
    base_model_kwargs = {"add_pooling_layer": False}
    lm_head_class = RobertaLMHead
    _tied_weights = {
        "lm_head.decoder.weight": "roberta.embeddings.word_embeddings.weight",
        "lm_head.decoder.bias": "lm_head.bias",
    }


__all__ = [
    "RobertaConfig",
    "RobertaForMaskedLM",
    "RobertaForQuestionAnswering",
    "RobertaForSequenceClassification",
    "RobertaForTokenClassification",
    "RobertaModel",
]
