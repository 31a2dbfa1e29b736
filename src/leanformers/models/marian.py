"""Marian (Junczys-Dowmunt et al., 2018): the OPUS-MT translation models.

BART's post-norm encoder-decoder (whose modules and checkpoint keys this reuses) with three
differences: fixed sinusoidal positions (sines in the first half of each vector, cosines in the
second; computed, never stored in files), no embedding norm, and, where
``share_encoder_decoder_embeddings`` is off, a target vocabulary of its own
(``decoder_vocab_size``) for the decoder's embeddings and the output head. The decoder scales
given ``decoder_inputs_embeds`` by sqrt(d_model) too (when ``scale_embedding``), as the reference does.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import nn

from ..errors import ConfigError
from ..modeling.checks import embedding_lookup
from .bart import (
    BartConfig,
    BartDecoder,
    BartEncoder,
    BartForConditionalGeneration,
    BartModel,
    BartPreTrainedModel,
    BartScaledWordEmbedding,
)


class MarianConfig(BartConfig):
    """Marian's settings: BART's keys with OPUS-MT defaults, ``decoder_vocab_size`` (defaults to
    ``vocab_size``) and ``share_encoder_decoder_embeddings``."""

    model_type: ClassVar[str] = "marian"
    defaults: ClassVar[dict[str, Any]] = {
        "vocab_size": 58101,
        "decoder_vocab_size": None,
        "max_position_embeddings": 1024,
        "encoder_layers": 12,
        "encoder_ffn_dim": 4096,
        "encoder_attention_heads": 16,
        "decoder_layers": 12,
        "decoder_ffn_dim": 4096,
        "decoder_attention_heads": 16,
        "encoder_layerdrop": 0.0,
        "decoder_layerdrop": 0.0,
        "use_cache": True,
        "is_encoder_decoder": True,
        "activation_function": "gelu",
        "d_model": 1024,
        "dropout": 0.1,
        "attention_dropout": 0.0,
        "activation_dropout": 0.0,
        "init_std": 0.02,
        "decoder_start_token_id": 58100,
        "scale_embedding": False,
        "pad_token_id": 58100,
        "eos_token_id": 0,
        "bos_token_id": None,
        "forced_eos_token_id": 0,
        "share_encoder_decoder_embeddings": True,
        "is_decoder": False,
        "tie_word_embeddings": True,
    }
    default_num_labels: ClassVar[int] = 2

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not self.decoder_vocab_size:
            self.decoder_vocab_size = self.vocab_size

    def validate(self) -> None:
        super().validate()
        size = self.decoder_vocab_size
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            raise ConfigError(f"decoder_vocab_size must be a positive integer (or None for vocab_size), got {size!r}.")
        if self.share_encoder_decoder_embeddings and size not in (None, 0, self.vocab_size):
            raise ConfigError(
                f"share_encoder_decoder_embeddings=True needs one vocabulary, but decoder_vocab_size={size} differs "
                f"from vocab_size={self.vocab_size}; set share_encoder_decoder_embeddings=False."
            )


class MarianSinusoidalPositionalEmbedding(nn.Module):
    """The fixed table: position p, feature i < width/2 is sin(p / 10000^(2i/width)), the second half
    the matching cosines (the sines take the extra feature when the width is odd)."""

    def __init__(self, positions: int, width: int) -> None:
        super().__init__()
        # Not a checkpoint tensor: computed here, and again after a meta-device build.
        self.register_buffer("weight", self.table(positions, width), persistent=False)

    @staticmethod
    def table(positions: int, width: int) -> torch.Tensor:
        exponents = torch.arange(width, dtype=torch.float64).div(2, rounding_mode="floor").mul(2 / width)
        angles = torch.arange(positions, dtype=torch.float64)[:, None] / torch.pow(10000.0, exponents)[None, :]
        return torch.cat([torch.sin(angles[:, 0::2]), torch.cos(angles[:, 1::2])], dim=1).float()

    def forward(self, start: int, length: int) -> torch.Tensor:
        """(length, width) embeddings of positions ``start`` ... ``start + length - 1``."""
        return self.weight[start : start + length]


class MarianEncoder(BartEncoder):
    def __init__(self, config: MarianConfig) -> None:
        super().__init__(config, MarianSinusoidalPositionalEmbedding(config.max_position_embeddings, config.d_model),
                         layernorm_embedding=False)


class MarianDecoder(BartDecoder):
    def __init__(self, config: MarianConfig) -> None:
        super().__init__(config, MarianSinusoidalPositionalEmbedding(config.max_position_embeddings, config.d_model),
                         layernorm_embedding=False, vocab=config.decoder_vocab_size)

    def _token_embeddings(self, input_ids, inputs_embeds, name: str) -> torch.Tensor:
        if inputs_embeds is None:
            return embedding_lookup(self.embed_tokens, input_ids, name)
        return inputs_embeds * self.embed_tokens.embed_scale


class MarianPreTrainedModel(BartPreTrainedModel):
    config_class = MarianConfig
    # Older files stored the sinusoidal tables; they are computed instead.
    _ignore_on_load: ClassVar[list[str]] = [
        *BartPreTrainedModel._ignore_on_load, r"(^|\.)(encoder|decoder)\.embed_positions\.weight$",
    ]

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, MarianSinusoidalPositionalEmbedding):
            with torch.no_grad():
                module.weight = module.table(*module.weight.shape).to(module.weight.device)
            return
        super()._init_weights(module)


def _embedding_ties(config: MarianConfig, prefix: str, head: bool) -> dict[str, str]:
    """What is tied to what: one shared matrix for both stacks (and the head), or the head to the
    decoder's own embeddings."""
    ties = {}
    if config.share_encoder_decoder_embeddings:
        ties = {f"{prefix}encoder.embed_tokens.weight": f"{prefix}shared.weight",
                f"{prefix}decoder.embed_tokens.weight": f"{prefix}shared.weight"}
        if head:
            ties["lm_head.weight"] = f"{prefix}shared.weight"
    elif head:
        ties["lm_head.weight"] = f"{prefix}decoder.embed_tokens.weight"
    return ties


class MarianModel(MarianPreTrainedModel, BartModel):
    """Encoder and decoder; returns the decoder's last hidden state. Decoder inputs are required
    (the decoder never reads the source shifted)."""

    decoder_reads_shifted_source: ClassVar[bool] = False

    def __init__(self, config: MarianConfig) -> None:
        BartPreTrainedModel.__init__(self, config)
        if config.share_encoder_decoder_embeddings:
            scale = math.sqrt(config.d_model) if config.scale_embedding else 1.0
            self.shared = BartScaledWordEmbedding(config.vocab_size, config.d_model, config.pad_token_id, scale)
        self._tied_weights = _embedding_ties(config, "", head=False)
        self.encoder = MarianEncoder(config)
        self.decoder = MarianDecoder(config)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.encoder.embed_tokens


class MarianMTModel(MarianPreTrainedModel, BartForConditionalGeneration):
    """Marian with its translation head: logits over the target vocabulary plus ``final_logits_bias``."""

    base_model_class: ClassVar[type[BartModel]] = MarianModel

    def __init__(self, config: MarianConfig) -> None:
        super().__init__(config)
        self._tied_weights = _embedding_ties(config, "model.", head=True)


__all__ = ["MarianConfig", "MarianMTModel", "MarianModel"]
