"""AST, the Audio Spectrogram Transformer (Gong et al., 2021): a log-mel spectrogram cut into
overlapping square patches (strided separately along frequency and time), each patch a token of
a ViT encoder, with DeiT's two learned tokens ([CLS] and distillation) in front; the classifier
reads the mean of those two tokens.

The encoder is ViT's, unchanged (same modules, same checkpoint keys:
``audio_spectrogram_transformer.encoder.layer.0.attention.attention.query.weight``), so it comes
from ``vit.py``, and so does the rename table for files in the reference's v5 in-memory layout
(``layers.0.attention.q_proj``); what differs is the patch embedding, the two tokens and the head.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..configuration import PretrainedConfig
from ..errors import ConfigError, InputError
from ..modeling.activations import ACTIVATIONS
from ..modeling.base import PreTrainedModel
from ..modeling.checks import positive_int
from ..modeling.losses import sequence_classification_loss
from ..modeling.outputs import BaseModelOutputWithPooling, SequenceClassifierOutput
from .vit import ViTEncoder, ViTPreTrainedModel


class ASTConfig(PretrainedConfig):
    model_type: ClassVar[str] = "audio-spectrogram-transformer"
    defaults: ClassVar[dict[str, Any]] = {
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-12,
        "patch_size": 16,
        "qkv_bias": True,
        "frequency_stride": 10,
        "time_stride": 10,
        "max_length": 1024,
        "num_mel_bins": 128,
    }

    def validate(self) -> None:
        sizes = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "patch_size",
                 "frequency_stride", "time_stride", "max_length", "num_mel_bins")
        for key in sizes:
            positive_int(key, getattr(self, key))
        if self.hidden_size % self.num_attention_heads and "head_dim" not in self:
            raise ConfigError(
                f"hidden_size ({self.hidden_size}) must be a multiple of num_attention_heads "
                f"({self.num_attention_heads}) so that every head gets the same width."
            )
        for key in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ConfigError(f"{key} must be a probability between 0 and 1, got {value!r}.")
        if not isinstance(self.hidden_act, str) or self.hidden_act not in ACTIVATIONS:
            raise ConfigError(
                f"hidden_act={self.hidden_act!r} is not a known activation; use one of: "
                f"{', '.join(sorted(ACTIVATIONS))}."
            )
        if isinstance(self.layer_norm_eps, bool) or not isinstance(self.layer_norm_eps, (int, float)) or not (
            self.layer_norm_eps > 0
        ):
            raise ConfigError(f"layer_norm_eps must be a positive number, got {self.layer_norm_eps!r}.")
        for length_key in ("num_mel_bins", "max_length"):
            if self.patch_size > getattr(self, length_key):
                raise ConfigError(
                    f"patch_size ({self.patch_size}) is larger than {length_key} ({getattr(self, length_key)}): "
                    f"the spectrogram would hold no whole patch. Use a smaller patch_size or a larger {length_key}."
                )


def patch_grid(config: ASTConfig) -> tuple[int, int]:
    """(patches along frequency, patches along time) of a (max_length, num_mel_bins) spectrogram."""
    frequency = (config.num_mel_bins - config.patch_size) // config.frequency_stride + 1
    time = (config.max_length - config.patch_size) // config.time_stride + 1
    return frequency, time


# -- modules ------------------------------------------------------------------------------------


class ASTPatchEmbeddings(nn.Module):
    """A convolution over the spectrogram seen as a one-channel (frequency, time) image: square
    patches, overlapping when the strides are smaller than the patch."""

    def __init__(self, config: ASTConfig) -> None:
        super().__init__()
        size = config.patch_size
        self.projection = nn.Conv2d(
            1, config.hidden_size, kernel_size=(size, size), stride=(config.frequency_stride, config.time_stride)
        )

    def forward(self, input_values: torch.Tensor) -> torch.Tensor:
        # (batch, time, frequency) -> (batch, 1, frequency, time); tokens run frequency-major.
        spectrogram = input_values.unsqueeze(1).transpose(2, 3)
        return self.projection(spectrogram).flatten(2).transpose(1, 2)


class ASTEmbeddings(nn.Module):
    """[CLS] and distillation tokens + patch embeddings, plus a learned position for each."""

    def __init__(self, config: ASTConfig) -> None:
        super().__init__()
        frequency, time = patch_grid(config)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        self.distillation_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        self.patch_embeddings = ASTPatchEmbeddings(config)
        self.position_embeddings = nn.Parameter(torch.zeros(1, frequency * time + 2, config.hidden_size))
        self.dropout = config.hidden_dropout_prob

    def forward(self, input_values: torch.Tensor) -> torch.Tensor:
        batch = input_values.shape[0]
        tokens = torch.cat(
            (
                self.cls_token.expand(batch, -1, -1),
                self.distillation_token.expand(batch, -1, -1),
                self.patch_embeddings(input_values),
            ),
            dim=1,
        )
        return F.dropout(tokens + self.position_embeddings, self.dropout, self.training)


class ASTMLPHead(nn.Module):
    """LayerNorm, then the classifier (absent when num_labels is 0: the normed features come out)."""

    def __init__(self, config: ASTConfig) -> None:
        super().__init__()
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dense = nn.Linear(config.hidden_size, config.num_labels) if config.num_labels > 0 else nn.Identity()

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.dense(self.layernorm(pooled))


# -- models -------------------------------------------------------------------------------------


class ASTPreTrainedModel(PreTrainedModel):
    config_class = ASTConfig
    base_model_prefix = "audio_spectrogram_transformer"
    main_input_name = "input_values"
    # The encoder's keys are ViT's, so are the reference's in-memory names for them.
    _conversion = ViTPreTrainedModel._conversion

    def _init_weights(self, module: nn.Module) -> None:
        """The default scheme; the two tokens and the position table start at zero, as in the reference."""
        super()._init_weights(module)
        if isinstance(module, ASTEmbeddings):
            with torch.no_grad():
                module.cls_token.zero_()
                module.distillation_token.zero_()
                module.position_embeddings.zero_()


class ASTModel(ASTPreTrainedModel):
    """Embeddings, the ViT encoder and a final LayerNorm; ``pooler_output`` is the mean of the
    final [CLS] and distillation states."""

    def __init__(self, config: ASTConfig) -> None:
        super().__init__(config)
        self.embeddings = ASTEmbeddings(config)
        self.encoder = ViTEncoder(config)
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def get_input_embeddings(self) -> ASTPatchEmbeddings:
        return self.embeddings.patch_embeddings

    def forward(
        self,
        input_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> BaseModelOutputWithPooling | tuple:
        output_attentions, output_hidden_states, return_dict = self._resolve(
            output_attentions, output_hidden_states, return_dict
        )
        if attention_mask is not None:
            raise InputError(
                "ASTModel attends over every patch of the fixed-length spectrogram and takes no attention_mask; "
                "drop it (the feature extractor pads or cuts every clip to max_length frames)."
            )
        input_values = self._check_input_values(input_values)
        hidden = self.embeddings(input_values)
        hidden, all_hidden, all_weights = self.encoder(hidden, output_attentions, output_hidden_states)
        hidden = self.layernorm(hidden)
        output = BaseModelOutputWithPooling(
            last_hidden_state=hidden,
            pooler_output=(hidden[:, 0] + hidden[:, 1]) / 2,
            hidden_states=all_hidden,
            attentions=all_weights,
        )
        return output if return_dict else output.to_tuple()

    def _check_input_values(self, input_values: Any) -> torch.Tensor:
        """A float (batch, max_length, num_mel_bins) tensor in the model's dtype, or an InputError."""
        frames, bins = self.config.max_length, self.config.num_mel_bins
        expected = f"(batch, {frames} frames, {bins} mel bins)"
        if input_values is None:
            raise InputError(
                f"ASTModel needs input_values: log-mel filter banks of shape {expected}, as the AST feature "
                f"extractor returns them (feature_extractor(audio, sampling_rate=16000, return_tensors='pt'))."
            )
        if not isinstance(input_values, torch.Tensor):
            raise InputError(
                f"input_values must be a torch.Tensor of shape {expected}, got {type(input_values).__name__}; "
                f"pass return_tensors='pt' to the feature extractor."
            )
        if not input_values.is_floating_point():
            raise InputError(f"input_values must hold floats (log-mel energies), got dtype {input_values.dtype}.")
        shape = tuple(input_values.shape)
        if input_values.dim() == 2 and shape == (frames, bins):
            raise InputError(
                f"input_values has shape {shape}, one spectrogram without a batch dimension; "
                f"use input_values.unsqueeze(0) for a batch of one."
            )
        if input_values.dim() != 3 or shape[1:] != (frames, bins) or shape[0] == 0:
            hint = ""
            if input_values.dim() == 3 and shape[1:] == (bins, frames):
                hint = " It looks transposed: the feature extractor's layout is (batch, frames, mel bins)."
            elif input_values.dim() == 2:
                hint = " Raw waveforms go through the feature extractor first."
            raise InputError(
                f"input_values has shape {shape}, but this model takes {expected} (max_length and "
                f"num_mel_bins of its config).{hint}"
            )
        return input_values.to(self.embeddings.patch_embeddings.projection.weight.dtype)


class ASTForAudioClassification(ASTPreTrainedModel):
    """The pooled output (mean of the [CLS] and distillation states) -> LayerNorm -> linear
    classifier; cross-entropy, BCE or MSE loss by ``problem_type``, as in the reference."""

    def __init__(self, config: ASTConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.audio_spectrogram_transformer = ASTModel(config)
        self.classifier = ASTMLPHead(config)

    def forward(
        self,
        input_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> SequenceClassifierOutput | tuple:
        return_dict = self.config.use_return_dict if return_dict is None else return_dict
        outputs = self.audio_spectrogram_transformer(
            input_values,
            attention_mask=attention_mask,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits = self.classifier(outputs.pooler_output)
        loss = sequence_classification_loss(logits, labels, self.config) if labels is not None else None
        output = SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return output if return_dict else output.to_tuple()


__all__ = ["ASTConfig", "ASTForAudioClassification", "ASTModel"]
