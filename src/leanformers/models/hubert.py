"""HuBERT (Hsu et al., 2021): wav2vec 2.0's network trained on masked prediction of clustered targets.

The modules are wav2vec2's (``wav2vec2.py``); the differences are the config, two switches
(``feat_proj_layer_norm``: the feature projection may skip its LayerNorm; ``conv_pos_batch_norm``: the
position convolution may be a plain convolution after a BatchNorm instead of a weight-normalised one),
a base model that returns no ``extract_features``, and the initialisation scheme. Checkpoint keys
start with ``hubert.`` instead of ``wav2vec2.``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from ..modeling.outputs import BaseModelOutput, ModelOutput
from .wav2vec2 import (
    Wav2Vec2Config,
    Wav2Vec2ForCTC,
    Wav2Vec2ForSequenceClassification,
    Wav2Vec2Model,
    Wav2Vec2PositionalConvEmbedding,
    Wav2Vec2PreTrainedModel,
    WeightNormConv1d,
    WeightNormParameters,
    _reset_magnitude,
)


class HubertConfig(Wav2Vec2Config):
    model_type: ClassVar[str] = "hubert"
    defaults: ClassVar[dict[str, Any]] = {
        "vocab_size": 32,
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
        "hidden_act": "gelu",
        "hidden_dropout": 0.1,
        "activation_dropout": 0.1,
        "attention_dropout": 0.1,
        "feat_proj_layer_norm": True,
        "feat_proj_dropout": 0.0,
        "final_dropout": 0.1,
        "layerdrop": 0.1,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-5,
        "feat_extract_norm": "group",
        "feat_extract_activation": "gelu",
        "conv_dim": [512, 512, 512, 512, 512, 512, 512],
        "conv_stride": [5, 2, 2, 2, 2, 2, 2],
        "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
        "conv_bias": False,
        "num_conv_pos_embeddings": 128,
        "num_conv_pos_embedding_groups": 16,
        "conv_pos_batch_norm": False,
        "do_stable_layer_norm": False,
        "apply_spec_augment": True,
        "mask_time_prob": 0.05,
        "mask_time_length": 10,
        "mask_time_min_masks": 2,
        "mask_feature_prob": 0.0,
        "mask_feature_length": 10,
        "mask_feature_min_masks": 0,
        "ctc_loss_reduction": "sum",
        "ctc_zero_infinity": False,
        "use_weighted_layer_sum": False,
        "classifier_proj_size": 256,
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 2,
    }
    _SEQUENCES: ClassVar[tuple[str, ...]] = ("conv_dim", "conv_stride", "conv_kernel")


class HubertPositionalConvEmbedding(Wav2Vec2PositionalConvEmbedding):
    """wav2vec2's position convolution, or with ``conv_pos_batch_norm`` a BatchNorm followed by a plain
    (not weight-normalised) convolution."""

    def __init__(self, config: HubertConfig) -> None:
        conv = None
        if config.conv_pos_batch_norm:
            kernel = config.num_conv_pos_embeddings
            conv = nn.Conv1d(config.hidden_size, config.hidden_size, kernel, padding=kernel // 2,
                             groups=config.num_conv_pos_embedding_groups)
        super().__init__(config, conv)
        self.batch_norm = nn.BatchNorm1d(config.hidden_size) if config.conv_pos_batch_norm else None

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        hidden = hidden.transpose(1, 2)
        if self.batch_norm is not None:
            hidden = self.batch_norm(hidden)
        return self.convolve(hidden).transpose(1, 2)


class HubertPreTrainedModel(Wav2Vec2PreTrainedModel):
    config_class = HubertConfig
    base_model_prefix = "hubert"

    def _new_base_model(self, config: HubertConfig) -> "HubertModel":
        return HubertModel(config)

    def _init_weights(self, module: nn.Module) -> None:
        """The reference's HuBERT scheme: the default, plus Kaiming-normal convolution kernels (the
        position convolution's direction too, its magnitude the direction's norm) with zero biases."""
        super(Wav2Vec2PreTrainedModel, self)._init_weights(module)  # the library default, not wav2vec2's additions
        with torch.no_grad():
            if isinstance(module, nn.Conv1d):
                nn.init.kaiming_normal_(module.weight)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, WeightNormConv1d):
                module.bias.zero_()
            elif isinstance(module, WeightNormParameters):
                nn.init.kaiming_normal_(module.original1)
                _reset_magnitude(module)
            self._init_own_parameters(module)


class HubertModel(HubertPreTrainedModel, Wav2Vec2Model):
    """wav2vec2's base model; the output has no ``extract_features``."""

    positional_embedding_class = HubertPositionalConvEmbedding

    def _output(self, hidden, features, all_hidden, all_weights) -> ModelOutput:
        return BaseModelOutput(last_hidden_state=hidden, hidden_states=all_hidden, attentions=all_weights)


class HubertForSequenceClassification(HubertPreTrainedModel, Wav2Vec2ForSequenceClassification):
    pass


class HubertForCTC(HubertPreTrainedModel, Wav2Vec2ForCTC):
    pass


__all__ = ["HubertConfig", "HubertModel", "HubertForSequenceClassification", "HubertForCTC"]
