"""SigLIP (Zhai et al., 2023): CLIP's two towers trained with a sigmoid loss, each image-text pair
scored on its own (a learned scale and bias), instead of a softmax over the batch.

The encoder layer is CLIP's (same modules, same keys); what differs: the text tower attends both
ways and pools its last position through a linear ``head``; the image tower has no class token and
pools with a learned probe attending over the patches (``head``, the multi-head attention pooling
of the paper); no projections, and ``logit_bias`` beside ``logit_scale``.

Module paths equal the keys of the files the reference library reads and writes
(``text_model.head.weight``, ``vision_model.head.attention.in_proj_weight``, ``logit_bias``).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..configuration import PretrainedConfig
from ..errors import ConfigError, InputError
from ..modeling.attention import attend
from ..modeling.base import PreTrainedModel
from ..modeling.checks import positive_int
from ..modeling.outputs import BaseModelOutputWithPooling, SiglipOutput
from .clip import (
    CLIPMLP,
    POSITION_IDS,
    CLIPAttention,
    CLIPEncoder,
    CompositeConfig,
    DualEncoder,
    TextTower,
    TextTransformer,
    TowerConfig,
    TowerImageClassifier,
    VisionTower,
    check_image,
    module_name,
    resample_positions,
    validate_tower,
)

# -- configs ------------------------------------------------------------------------------------


class SiglipTextConfig(TowerConfig):
    model_type: ClassVar[str] = "siglip_text_model"
    composite_type: ClassVar[str] = "siglip"
    base_config_key: ClassVar[str] = "text_config"
    defaults: ClassVar[dict[str, Any]] = {
        "vocab_size": 32000,
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "max_position_embeddings": 64,
        "hidden_act": "gelu_pytorch_tanh",
        "layer_norm_eps": 1e-6,
        "attention_dropout": 0.0,
        "pad_token_id": 1,
        "bos_token_id": 49406,
        "eos_token_id": 49407,
        "projection_size": None,
    }

    def __init__(self, **kwargs: Any) -> None:
        # The pooling head's width follows hidden_size unless set; the resolved value is saved.
        if kwargs.get("projection_size") is None:
            kwargs["projection_size"] = kwargs.get("hidden_size", self.defaults["hidden_size"])
        super().__init__(**kwargs)

    def validate(self) -> None:
        validate_tower(self, text=True)
        positive_int("projection_size", self.projection_size)


class SiglipVisionConfig(TowerConfig):
    model_type: ClassVar[str] = "siglip_vision_model"
    composite_type: ClassVar[str] = "siglip"
    base_config_key: ClassVar[str] = "vision_config"
    defaults: ClassVar[dict[str, Any]] = {
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "num_channels": 3,
        "image_size": 224,
        "patch_size": 16,
        "hidden_act": "gelu_pytorch_tanh",
        "layer_norm_eps": 1e-6,
        "attention_dropout": 0.0,
        "vision_use_head": True,
    }

    def validate(self) -> None:
        validate_tower(self, text=False)
        if not isinstance(self.vision_use_head, bool):
            raise ConfigError(f"vision_use_head must be true or false, got {self.vision_use_head!r}.")


class SiglipConfig(CompositeConfig):
    model_type: ClassVar[str] = "siglip"
    sub_configs: ClassVar[dict[str, type[PretrainedConfig]]] = {
        "text_config": SiglipTextConfig,
        "vision_config": SiglipVisionConfig,
    }
    defaults: ClassVar[dict[str, Any]] = {"initializer_factor": 1.0}


# -- modules ------------------------------------------------------------------------------------


class SiglipTextTransformer(TextTransformer):
    """A bidirectional text tower; pooled: the last position through ``head``."""

    causal = False

    def __init__(self, config: SiglipTextConfig) -> None:
        super().__init__(config)
        self.head = nn.Linear(config.hidden_size, config.projection_size)

    def pool(self, hidden: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        # The last position, padded or not: SigLIP's texts are padded to a fixed length in training.
        return self.head(hidden[:, -1])


class SiglipVisionEmbeddings(nn.Module):
    """Patch embeddings plus one position embedding per patch (no class token)."""

    def __init__(self, config: SiglipVisionConfig) -> None:
        super().__init__()
        self.patch_size = config.patch_size
        self.patch_embedding = nn.Conv2d(
            config.num_channels, config.hidden_size, kernel_size=self.patch_size, stride=self.patch_size
        )
        self.num_positions = (config.image_size // self.patch_size) ** 2
        self.position_embedding = nn.Embedding(self.num_positions, config.hidden_size)

    def forward(self, pixel_values: torch.Tensor, interpolate_pos_encoding: bool) -> torch.Tensor:
        height, width = pixel_values.shape[2:]
        patches = self.patch_embedding(pixel_values).flatten(2).transpose(1, 2)
        table = self.position_embedding.weight
        # The reference keeps the table as it is for a square image of the trained patch count.
        if interpolate_pos_encoding and not (patches.shape[1] == self.num_positions and height == width):
            return patches + resample_positions(table, height, width, self.patch_size)
        return patches + table[None]


class SiglipPoolingAttention(nn.Module):
    """Multi-head attention of a few queries over the patches, its weights stored as
    ``torch.nn.MultiheadAttention`` stores them (one fused ``in_proj``), which the checkpoints use."""

    def __init__(self, config: SiglipVisionConfig) -> None:
        super().__init__()
        width = config.hidden_size
        self.heads = config.num_attention_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * width))
        self.out_proj = nn.Linear(width, width)

    def forward(self, query: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        weights, biases = self.in_proj_weight.chunk(3), self.in_proj_bias.chunk(3)
        q = F.linear(query, weights[0], biases[0])
        k = F.linear(hidden, weights[1], biases[1])
        v = F.linear(hidden, weights[2], biases[2])
        context, _ = attend(q, k, v, None, heads=self.heads)
        return self.out_proj(context)


class SiglipMultiheadAttentionPoolingHead(nn.Module):
    """A learned probe attends over the final patch states, then a residual MLP: one vector per image."""

    def __init__(self, config: SiglipVisionConfig) -> None:
        super().__init__()
        self.probe = nn.Parameter(torch.empty(1, 1, config.hidden_size))
        self.attention = SiglipPoolingAttention(config)
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = CLIPMLP(config)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        pooled = self.attention(self.probe.expand(hidden.shape[0], -1, -1), hidden)
        pooled = pooled + self.mlp(self.layernorm(pooled))
        return pooled[:, 0]


class SiglipVisionTransformer(nn.Module):
    """Embeddings, the encoder, a final LayerNorm; pooled by the attention head when the config has one."""

    def __init__(self, config: SiglipVisionConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = SiglipVisionEmbeddings(config)
        self.encoder = CLIPEncoder(config)
        self.post_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.head = SiglipMultiheadAttentionPoolingHead(config) if config.vision_use_head else None

    def forward(
        self, pixel_values: Any, interpolate_pos_encoding: bool, output_attentions: bool, output_hidden_states: bool,
        pooled_only: bool = False,
    ) -> BaseModelOutputWithPooling:
        # pooled_only changes nothing here: the pooling head reads every position's final state
        dtype = self.embeddings.patch_embedding.weight.dtype
        pixel_values = check_image(pixel_values, self.config, dtype, interpolate_pos_encoding)
        hidden = self.embeddings(pixel_values, interpolate_pos_encoding)
        hidden, all_hidden, all_weights = self.encoder(hidden, None, output_attentions, output_hidden_states)
        hidden = self.post_layernorm(hidden)
        return BaseModelOutputWithPooling(
            last_hidden_state=hidden,
            pooler_output=self.head(hidden) if self.head is not None else None,
            hidden_states=all_hidden,
            attentions=all_weights,
        )


# -- models -------------------------------------------------------------------------------------


def _variance_scaling(tensor: torch.Tensor, truncated: bool) -> None:
    """Flax's fan-in variance scaling (unit scale): normal, or a normal truncated at two standard
    deviations and widened to keep the variance."""
    fan_in = tensor.shape[1] * (tensor[0][0].numel() if tensor.dim() > 2 else 1)
    std = math.sqrt(1.0 / fan_in)
    if truncated:
        std /= 0.87962566103423978
        nn.init.trunc_normal_(tensor, std=std, a=-2 * std, b=2 * std)
    else:
        tensor.normal_(0.0, std)


def sigmoid_loss(logits_per_text: torch.Tensor) -> torch.Tensor:
    """Every (text, image) pair a binary decision: matched on the diagonal, unmatched elsewhere."""
    texts, images = logits_per_text.shape
    if texts != images:
        raise InputError(
            f"return_loss needs as many texts as images (pair i is text i with image i), got {texts} texts "
            f"and {images} images."
        )
    signs = 2 * torch.eye(texts, device=logits_per_text.device) - 1
    return -F.logsigmoid(signs * logits_per_text).sum(dim=-1).mean()


class SiglipPreTrainedModel(PreTrainedModel):
    config_class = SiglipConfig
    base_model_prefix = "siglip"
    _ignore_on_load = [POSITION_IDS]

    def _init_weights(self, module: nn.Module) -> None:
        """The reference's SigLIP scheme (Flax's defaults): fan-in scaled normals for embeddings and
        plain linear layers, Xavier for attention and MLPs, zero logit scale and bias."""
        super()._init_weights(module)
        name = module_name(self, module)
        parent = self.get_submodule(name.rpartition(".")[0]) if name else None
        with torch.no_grad():
            if isinstance(module, SiglipModel):
                module.logit_scale.zero_()
                module.logit_bias.zero_()
            elif isinstance(module, SiglipMultiheadAttentionPoolingHead):
                nn.init.xavier_uniform_(module.probe)
            elif isinstance(module, SiglipPoolingAttention):
                nn.init.xavier_uniform_(module.in_proj_weight)
                module.in_proj_bias.zero_()
            elif isinstance(module, nn.Embedding):
                if isinstance(parent, SiglipVisionEmbeddings):
                    module.weight.normal_(0.0, module.weight.shape[1] ** -0.5)
                else:
                    _variance_scaling(module.weight, truncated=False)
            elif isinstance(parent, (CLIPAttention, CLIPMLP)):
                nn.init.xavier_uniform_(module.weight)
                if isinstance(parent, CLIPMLP):
                    module.bias.normal_(0.0, 1e-6)
            elif name == "classifier":
                std = self.config.vision_config.hidden_size**-0.5 * self.config.initializer_factor
                module.weight.normal_(0.0, std)
            elif isinstance(module, (nn.Linear, nn.Conv2d)):
                _variance_scaling(module.weight, truncated=True)
                module.bias.zero_()


class SiglipModel(DualEncoder, SiglipPreTrainedModel):
    """Both towers; logits = scale * cosine similarity + bias, each pair judged alone by a sigmoid."""

    output_class = SiglipOutput

    def __init__(self, config: SiglipConfig) -> None:
        super().__init__(config)
        self.text_model = SiglipTextTransformer(config.text_config)
        self.vision_model = SiglipVisionTransformer(config.vision_config)
        self.logit_scale = nn.Parameter(torch.empty(1))
        self.logit_bias = nn.Parameter(torch.empty(1))

    def check_towers(self) -> None:
        if self.vision_model.head is None:
            raise ConfigError(
                "SiglipModel needs the image tower's pooling head to compare images with texts; this config "
                "has vision_use_head=false."
            )
        text_width, image_width = self.text_model.head.out_features, self.config.vision_config.hidden_size
        if text_width != image_width:
            raise ConfigError(
                f"The text embeddings have {text_width} values (text_config.projection_size) and the image "
                f"embeddings {image_width} (vision_config.hidden_size); they must match to be compared."
            )

    def similarity(self, text_embeds: torch.Tensor, image_embeds: torch.Tensor) -> torch.Tensor:
        return (text_embeds @ image_embeds.t()) * self.logit_scale.exp() + self.logit_bias

    def pair_loss(self, logits_per_text: torch.Tensor) -> torch.Tensor:
        return sigmoid_loss(logits_per_text)


_TEXT_ONLY_EXTRA = [POSITION_IDS, r"^vision_model\.", r"^logit_scale$", r"^logit_bias$"]
_VISION_ONLY_EXTRA = [POSITION_IDS, r"^text_model\.", r"^logit_scale$", r"^logit_bias$"]


class SiglipTextModel(TextTower, SiglipPreTrainedModel):
    """The text tower alone; ``pooler_output`` is the text embedding (unnormalised)."""

    config_class = SiglipTextConfig
    tower = SiglipTextTransformer
    _ignore_on_load = _TEXT_ONLY_EXTRA


class SiglipVisionModel(VisionTower, SiglipPreTrainedModel):
    """The vision tower alone; ``pooler_output`` is the image embedding (None without the head)."""

    config_class = SiglipVisionConfig
    tower = SiglipVisionTransformer
    _ignore_on_load = _VISION_ONLY_EXTRA


class SiglipForImageClassification(TowerImageClassifier, SiglipPreTrainedModel):
    """The vision tower and a linear classifier over the mean of all final patch states. Takes the
    full SiglipConfig."""

    tower = SiglipVisionTransformer
    _ignore_on_load = _VISION_ONLY_EXTRA

    def pool(self, last_hidden_state: torch.Tensor) -> torch.Tensor:
        return last_hidden_state.mean(dim=1)


__all__ = [
    "SiglipConfig",
    "SiglipForImageClassification",
    "SiglipModel",
    "SiglipTextConfig",
    "SiglipTextModel",
    "SiglipVisionConfig",
    "SiglipVisionModel",
]
