"""ViT (Dosovitskiy et al., 2020): an image cut into patches, each patch a token of a pre-norm
Transformer encoder, a learned [CLS] token in front, and its task heads.

Module paths equal the keys of the files the reference library reads and writes
(``vit.encoder.layer.0.attention.attention.query.weight``, ``vit.layernorm.weight``,
``classifier.weight``). The reference's in-memory layout since v5 uses other names
(``vit.layers.0.attention.q_proj.weight``, ``mlp.fc1``); files saved in that layout
(``save_original_format=False``) load through ``_conversion``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..configuration import PretrainedConfig
from ..errors import ConfigError, InputError
from ..modeling.activations import ACTIVATIONS, get_activation
from ..modeling.attention import attend, run_layers
from ..modeling.base import PreTrainedModel
from ..modeling.heads import ForImageClassification
from ..modeling.loading import Conversion
from ..modeling.checks import check_masked_patches, check_pixel_values, pair, positive_int
from ..modeling.outputs import BaseModelOutputWithPooling


class ViTConfig(PretrainedConfig):
    model_type: ClassVar[str] = "vit"
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
        "image_size": 224,
        "patch_size": 16,
        "num_channels": 3,
        "qkv_bias": True,
        "encoder_stride": 16,
        "pooler_output_size": None,
        "pooler_act": "tanh",
    }

    def __init__(self, **kwargs: Any) -> None:
        # The pooler's width follows hidden_size unless set, and the resolved value is what gets saved.
        if not kwargs.get("pooler_output_size"):
            kwargs["pooler_output_size"] = kwargs.get("hidden_size", self.defaults["hidden_size"])
        super().__init__(**kwargs)

    def validate(self) -> None:
        for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "num_channels",
                    "pooler_output_size"):
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
        for key in ("hidden_act", "pooler_act"):
            name = getattr(self, key)
            if not isinstance(name, str) or name not in ACTIVATIONS:
                raise ConfigError(
                    f"{key}={name!r} is not a known activation; use one of: {', '.join(sorted(ACTIVATIONS))}."
                )
        if not self.layer_norm_eps > 0:
            raise ConfigError(f"layer_norm_eps must be positive, got {self.layer_norm_eps!r}.")
        image, patch = pair(self.image_size, "image_size"), pair(self.patch_size, "patch_size")
        if patch[0] > image[0] or patch[1] > image[1]:
            raise ConfigError(f"patch_size {self.patch_size!r} is larger than image_size {self.image_size!r}.")


# -- modules ------------------------------------------------------------------------------------


class ViTPatchEmbeddings(nn.Module):
    """A strided convolution: one ``hidden_size`` vector per non-overlapping patch."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.patch_size = pair(config.patch_size, "patch_size")
        self.projection = nn.Conv2d(
            config.num_channels, config.hidden_size, kernel_size=self.patch_size, stride=self.patch_size
        )

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.projection(pixel_values).flatten(2).transpose(1, 2)


class ViTEmbeddings(nn.Module):
    """[CLS] token + patch embeddings (masked patches replaced by ``mask_token``) + position embeddings."""

    def __init__(self, config: ViTConfig, use_mask_token: bool = False) -> None:
        super().__init__()
        image = pair(config.image_size, "image_size")
        patch = pair(config.patch_size, "patch_size")
        self.image_size = image
        self.grid = (image[0] // patch[0], image[1] // patch[1])
        self.cls_token = nn.Parameter(torch.empty(1, 1, config.hidden_size))
        self.mask_token = nn.Parameter(torch.empty(1, 1, config.hidden_size)) if use_mask_token else None
        self.patch_embeddings = ViTPatchEmbeddings(config)
        self.position_embeddings = nn.Parameter(torch.empty(1, self.grid[0] * self.grid[1] + 1, config.hidden_size))
        self.dropout = config.hidden_dropout_prob

    def positions_for(self, grid: tuple[int, int]) -> torch.Tensor:
        """The position table resized to a patch grid of another shape: the patch positions are
        treated as an image and resampled bicubically (half-pixel centres), the [CLS] position kept."""
        table = self.position_embeddings
        if grid == self.grid:
            return table
        dim = table.shape[-1]
        patches = table[:, 1:].reshape(1, *self.grid, dim).permute(0, 3, 1, 2)
        patches = F.interpolate(patches, size=grid, mode="bicubic", align_corners=False)
        return torch.cat((table[:, :1], patches.permute(0, 2, 3, 1).reshape(1, -1, dim)), dim=1)

    def forward(
        self, pixel_values: torch.Tensor, bool_masked_pos: torch.Tensor | None, interpolate_pos_encoding: bool
    ) -> torch.Tensor:
        batch = pixel_values.shape[0]
        patches = self.patch_embeddings(pixel_values)
        if bool_masked_pos is not None:
            masked = bool_masked_pos.unsqueeze(-1).to(patches.dtype)
            patches = patches * (1.0 - masked) + self.mask_token * masked
        patch_h, patch_w = self.patch_embeddings.patch_size
        grid = (pixel_values.shape[2] // patch_h, pixel_values.shape[3] // patch_w)
        embeddings = torch.cat((self.cls_token.expand(batch, -1, -1), patches), dim=1)
        positions = self.positions_for(grid) if interpolate_pos_encoding else self.position_embeddings
        return F.dropout(embeddings + positions, self.dropout, self.training)


def attention_width(config: ViTConfig) -> tuple[int, int]:
    """(width of one head, width of all heads): ``head_dim`` when the config sets it, as in the reference."""
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return head_dim, head_dim * config.num_attention_heads


class ViTSelfAttention(nn.Module):
    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.heads = config.num_attention_heads
        _, inner = attention_width(config)
        self.query = nn.Linear(config.hidden_size, inner, bias=config.qkv_bias)
        self.key = nn.Linear(config.hidden_size, inner, bias=config.qkv_bias)
        self.value = nn.Linear(config.hidden_size, inner, bias=config.qkv_bias)
        self.dropout = config.attention_probs_dropout_prob

    def forward(self, hidden: torch.Tensor, need_weights: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        return attend(
            self.query(hidden), self.key(hidden), self.value(hidden), None, heads=self.heads,
            dropout=self.dropout if self.training else 0.0, need_weights=need_weights,
        )


class ViTOutput(nn.Module):
    """A projection back to ``hidden_size``, dropout, plus the residual."""

    def __init__(self, config: ViTConfig, in_features: int | None = None) -> None:
        super().__init__()
        self.dense = nn.Linear(in_features or config.intermediate_size, config.hidden_size)
        self.dropout = config.hidden_dropout_prob

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return F.dropout(self.dense(hidden), self.dropout, self.training) + residual


class ViTSelfOutput(ViTOutput):
    """The attention context's projection, dropout, plus the residual."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__(config, attention_width(config)[1])


class ViTAttention(nn.Module):
    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.attention = ViTSelfAttention(config)
        self.output = ViTSelfOutput(config)

    def forward(
        self, hidden: torch.Tensor, need_weights: bool, residual: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        context, weights = self.attention(hidden, need_weights)
        return self.output(context, residual), weights


class ViTIntermediate(nn.Module):
    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = get_activation(config.hidden_act)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.act(self.dense(hidden))


class ViTLayer(nn.Module):
    """Pre-norm block: x + attention(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.attention = ViTAttention(config)
        self.intermediate = ViTIntermediate(config)
        self.output = ViTOutput(config)
        self.layernorm_before = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.layernorm_after = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden: torch.Tensor, need_weights: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        hidden, weights = self.attention(self.layernorm_before(hidden), need_weights, residual=hidden)
        return self.output(self.intermediate(self.layernorm_after(hidden)), hidden), weights


class ViTEncoder(nn.Module):
    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(ViTLayer(config) for _ in range(config.num_hidden_layers))

    def forward(
        self, hidden: torch.Tensor, output_attentions: bool, output_hidden_states: bool
    ) -> tuple[torch.Tensor, tuple | None, tuple | None]:
        return run_layers(self.layer, hidden, (), output_attentions, output_hidden_states)


class ViTPooler(nn.Module):
    """activation(dense(final hidden state of the [CLS] token))."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.pooler_output_size)
        self.act = get_activation(config.pooler_act, "pooler_act")

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.act(self.dense(hidden[:, 0]))


# -- models -------------------------------------------------------------------------------------


class ViTPreTrainedModel(PreTrainedModel):
    config_class = ViTConfig
    base_model_prefix = "vit"
    # The reference's in-memory names (written with save_original_format=False) -> the file names.
    _conversion = Conversion(renames=(
        (r"(^|\.)layers\.(\d+)\.", r"\1encoder.layer.\2."),
        (r"\.attention\.q_proj\.", ".attention.attention.query."),
        (r"\.attention\.k_proj\.", ".attention.attention.key."),
        (r"\.attention\.v_proj\.", ".attention.attention.value."),
        (r"\.attention\.o_proj\.", ".attention.output.dense."),
        (r"\.mlp\.fc1\.", ".intermediate.dense."),
        (r"\.mlp\.fc2\.", ".output.dense."),
    ))

    def _init_weights(self, module: nn.Module) -> None:
        """The default scheme, plus truncated normals for the [CLS] token and position table and a
        zero mask token, as in the reference."""
        super()._init_weights(module)
        if isinstance(module, ViTEmbeddings):
            std = self.config.initializer_range
            with torch.no_grad():
                nn.init.trunc_normal_(module.position_embeddings, mean=0.0, std=std)
                nn.init.trunc_normal_(module.cls_token, mean=0.0, std=std)
                if module.mask_token is not None:
                    module.mask_token.zero_()


class ViTModel(ViTPreTrainedModel):
    """Patch embeddings, the encoder, a final LayerNorm and (optionally) the pooler over [CLS].

    ``use_mask_token`` adds the learned token that replaces the patches ``bool_masked_pos`` marks.
    """

    def __init__(self, config: ViTConfig, add_pooling_layer: bool = True, use_mask_token: bool = False) -> None:
        super().__init__(config)
        self.embeddings = ViTEmbeddings(config, use_mask_token=use_mask_token)
        self.encoder = ViTEncoder(config)
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.pooler = ViTPooler(config) if add_pooling_layer else None

    def get_input_embeddings(self) -> ViTPatchEmbeddings:
        return self.embeddings.patch_embeddings

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        interpolate_pos_encoding: bool | None = None,
        return_dict: bool | None = None,
    ) -> BaseModelOutputWithPooling | tuple:
        output_attentions, output_hidden_states, return_dict = self._resolve(
            output_attentions, output_hidden_states, return_dict
        )
        pixel_values = self._check_pixels(pixel_values, bool(interpolate_pos_encoding))
        if bool_masked_pos is not None:
            self._check_mask(bool_masked_pos, pixel_values)
        hidden = self.embeddings(pixel_values, bool_masked_pos, bool(interpolate_pos_encoding))
        hidden, all_hidden, all_weights = self.encoder(hidden, output_attentions, output_hidden_states)
        hidden = self.layernorm(hidden)
        output = BaseModelOutputWithPooling(
            last_hidden_state=hidden,
            pooler_output=self.pooler(hidden) if self.pooler is not None else None,
            hidden_states=all_hidden,
            attentions=all_weights,
        )
        return output if return_dict else output.to_tuple()

    def _check_pixels(self, pixel_values: Any, interpolate: bool) -> torch.Tensor:
        """The shared pixel checks (integer pixels are cast, as the reference casts them), then the
        size: the trained one, or with ``interpolate`` at least one patch."""
        height, width = self.embeddings.image_size
        dtype = self.embeddings.patch_embeddings.projection.weight.dtype
        pixel_values = check_pixel_values(
            pixel_values, self.config.num_channels, dtype, size=(height, width), cast_integers=True
        )
        shape = tuple(pixel_values.shape)
        patch_h, patch_w = self.embeddings.patch_embeddings.patch_size
        if interpolate:
            if shape[2] < patch_h or shape[3] < patch_w:
                raise InputError(
                    f"The image ({shape[2]}x{shape[3]}) is smaller than one {patch_h}x{patch_w} patch."
                )
        elif shape[2:] != (height, width):
            raise InputError(
                f"The image is {shape[2]}x{shape[3]} (height x width), but this model was trained on "
                f"{height}x{width} images: resize it, or pass interpolate_pos_encoding=True to resample the "
                "position embeddings to the new size."
            )
        return pixel_values

    def _check_mask(self, bool_masked_pos: Any, pixel_values: torch.Tensor) -> None:
        patch = self.embeddings.patch_embeddings.patch_size
        batch, _, height, width = pixel_values.shape
        patches = (height // patch[0]) * (width // patch[1])
        check_masked_patches(bool_masked_pos, self.embeddings.mask_token is not None, batch, patches, "ViTModel")


class ViTForImageClassification(ForImageClassification, ViTPreTrainedModel):
    """A linear classifier (or regressor when num_labels == 1) over the final [CLS] hidden state."""

    base_model_class = ViTModel
    base_model_kwargs = {"add_pooling_layer": False}


__all__ = ["ViTConfig", "ViTModel", "ViTForImageClassification"]
