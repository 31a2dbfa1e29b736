"""ELECTRA (Clark et al., 2020): a BERT encoder trained to spot replaced tokens, and its heads.

The encoder is BERT's; the embeddings are ``embedding_size`` wide and, when that differs from
``hidden_size``, ``embeddings_project`` maps them to the encoder's width. There is no pooler. The
discriminator head (``ElectraForPreTraining``) scores every token as original or replaced; the
generator head (``ElectraForMaskedLM``) projects to ``embedding_size`` and onto the vocabulary through
the tied word embeddings. Module paths equal the reference's checkpoint keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, InputError
from ..modeling.activations import get_activation
from ..modeling.attention import run_encoder
from ..modeling.checks import check_positions, check_text_inputs, positive_int
from ..modeling.heads import (
    ForMaskedLM,
    ForQuestionAnswering,
    ForSequenceClassification,
    ForTokenClassification,
    TaskHead,
)
from ..modeling.outputs import ModelOutput
from .bert import BertConfig, BertEmbeddings, BertEncoder, BertPreTrainedModel
from .roberta import RobertaClassificationHead


class ElectraConfig(BertConfig):
    model_type: ClassVar[str] = "electra"
    defaults: ClassVar[dict[str, Any]] = {
        **BertConfig.defaults,
        "embedding_size": 128,
        "hidden_size": 256,
        "num_attention_heads": 4,
        "intermediate_size": 1024,
        # Read only by the reference's multiple-choice head (not provided); declared so defaults match it.
        "summary_type": "first",
        "summary_use_proj": True,
        "summary_activation": "gelu",
        "summary_last_dropout": 0.1,
    }

    def validate(self) -> None:
        super().validate()
        positive_int("embedding_size", self.embedding_size)


@dataclass(repr=True)
class BaseModelOutputWithCrossAttentions(ModelOutput):
    """The base model's output: no pooler, and no cache (the encoder keeps none)."""

    last_hidden_state: Any = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None
    cross_attentions: tuple | None = None


@dataclass(repr=True)
class ElectraForPreTrainingOutput(ModelOutput):
    loss: Any = None
    logits: Any = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None


# -- modules ------------------------------------------------------------------------------------


class ElectraEmbeddings(BertEmbeddings):
    """BERT's embeddings, ``embedding_size`` wide."""

    def __init__(self, config: ElectraConfig) -> None:
        super().__init__(config, width=config.embedding_size)


class ElectraDiscriminatorPredictions(nn.Module):
    """dense -> hidden_act -> one logit per token (replaced or not)."""

    def __init__(self, config: ElectraConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = get_activation(config.hidden_act)
        self.dense_prediction = nn.Linear(config.hidden_size, 1)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.dense_prediction(self.activation(self.dense(hidden))).squeeze(-1)


class ElectraGeneratorPredictions(nn.Module):
    """dense down to ``embedding_size`` -> GELU (fixed, whatever ``hidden_act`` says) -> LayerNorm."""

    def __init__(self, config: ElectraConfig) -> None:
        super().__init__()
        self.activation = get_activation("gelu")
        self.LayerNorm = nn.LayerNorm(config.embedding_size, eps=config.layer_norm_eps)
        self.dense = nn.Linear(config.hidden_size, config.embedding_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.activation(self.dense(hidden)))


def replaced_token_loss(
    logits: torch.Tensor, labels: torch.Tensor, attention_mask: torch.Tensor | None
) -> torch.Tensor:
    """Binary cross-entropy of "this token was replaced" (label 1) over the attended positions."""
    if not isinstance(labels, torch.Tensor) or labels.shape != logits.shape:
        got = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise InputError(
            f"labels must be a (batch, sequence) tensor of 0 (original) and 1 (replaced) like input_ids, "
            f"shape {tuple(logits.shape)}; got {got}."
        )
    labels = labels.to(device=logits.device, dtype=logits.dtype)
    if attention_mask is not None:
        active = attention_mask.to(logits.device).view(logits.shape) == 1
        logits, labels = logits[active], labels[active]
    return F.binary_cross_entropy_with_logits(logits, labels)


# -- models -------------------------------------------------------------------------------------


class ElectraPreTrainedModel(BertPreTrainedModel):
    config_class = ElectraConfig
    base_model_prefix = "electra"


class ElectraModel(ElectraPreTrainedModel):
    """Embeddings, their projection to ``hidden_size`` (when the widths differ), BERT's encoder."""

    def __init__(self, config: ElectraConfig) -> None:
        super().__init__(config)
        for flag in ("is_decoder", "add_cross_attention"):
            if getattr(config, flag, False):
                raise ConfigError(
                    f"This config sets {flag}=True, but leanformers implements ELECTRA only as an encoder "
                    "(no causal decoder, cross-attention or cache). Set it to False to use the encoder."
                )
        self.embeddings = ElectraEmbeddings(config)
        self.embeddings_project = (
            nn.Linear(config.embedding_size, config.hidden_size)
            if config.embedding_size != config.hidden_size
            else None
        )
        self.encoder = BertEncoder(config)

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
    ) -> BaseModelOutputWithCrossAttentions | tuple:
        """``inputs_embeds`` are ``embedding_size`` wide (they enter before the projection);
        ``padding_in_output`` as for ``BertModel``."""
        output_attentions, output_hidden_states, return_dict = self._resolve(
            output_attentions, output_hidden_states, return_dict
        )
        config = self.config
        batch, seq = check_text_inputs(input_ids, inputs_embeds, config.embedding_size, config.max_position_embeddings)
        check_positions("token_type_ids", token_type_ids, batch, seq)
        check_positions("position_ids", position_ids, batch, seq)
        hidden = self.embeddings(input_ids, token_type_ids, position_ids, inputs_embeds)
        if self.embeddings_project is not None:
            hidden = self.embeddings_project(hidden)
        hidden, all_hidden, all_weights = run_encoder(
            self.encoder, hidden, attention_mask, output_attentions, output_hidden_states,
            unpad_inputs=getattr(config, "unpad_inputs", None),
            macs_per_token=config.hidden_size * (4 * config.hidden_size + 2 * config.intermediate_size),
            padding_in_output=padding_in_output,
        )
        output = BaseModelOutputWithCrossAttentions(
            last_hidden_state=hidden,
            hidden_states=all_hidden,
            attentions=all_weights,
            # The reference reports an empty cross_attentions tuple whenever attentions are asked for.
            cross_attentions=() if output_attentions else None,
        )
        return output if return_dict else output.to_tuple()


class ElectraForSequenceClassification(ForSequenceClassification, ElectraPreTrainedModel):
    base_model_class = ElectraModel

    def build_head(self, config: ElectraConfig) -> None:
        self.num_labels = config.num_labels
        # RoBERTa's head, with the GELU the ELECTRA authors used where RoBERTa has tanh.
        self.classifier = RobertaClassificationHead(config, get_activation("gelu"))

    def classify(self, outputs: ModelOutput) -> torch.Tensor:
        return self.classifier(outputs.last_hidden_state)


class ElectraForTokenClassification(ForTokenClassification, ElectraPreTrainedModel):
    base_model_class = ElectraModel
    dropout_keys = ("classifier_dropout", "hidden_dropout_prob")


class ElectraForQuestionAnswering(ForQuestionAnswering, ElectraPreTrainedModel):
    base_model_class = ElectraModel


class ElectraForMaskedLM(ForMaskedLM, ElectraPreTrainedModel):
    """The generator: predictions at ``embedding_size``, then the vocabulary through the tied embeddings."""

    base_model_class = ElectraModel
    _tied_weights = {"generator_lm_head.weight": "electra.embeddings.word_embeddings.weight"}

    def build_head(self, config: ElectraConfig) -> None:
        self.generator_predictions = ElectraGeneratorPredictions(config)
        self.generator_lm_head = nn.Linear(config.embedding_size, config.vocab_size)

    def predict(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.generator_lm_head(self.generator_predictions(hidden))


class ElectraForPreTraining(TaskHead, ElectraPreTrainedModel):
    """The discriminator: one logit per token, positive for a token it judges replaced."""

    base_model_class = ElectraModel

    def build_head(self, config: ElectraConfig) -> None:
        self.discriminator_predictions = ElectraDiscriminatorPredictions(config)

    def forward(
        self, *args: Any, labels: torch.Tensor | None = None, return_dict: bool | None = None,
        padding_in_output: bool = True, **kwargs: Any,
    ) -> ElectraForPreTrainingOutput | tuple:
        outputs = self.run_base(args, kwargs, padding_in_output)
        logits = self.discriminator_predictions(outputs.last_hidden_state)
        loss = None
        if labels is not None:
            attention_mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)
            loss = replaced_token_loss(logits, labels, attention_mask)
        return self.finish(ElectraForPreTrainingOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        ), return_dict)


__all__ = [
    "ElectraConfig",
    "ElectraForMaskedLM",
    "ElectraForPreTraining",
    "ElectraForQuestionAnswering",
    "ElectraForSequenceClassification",
    "ElectraForTokenClassification",
    "ElectraModel",
]
