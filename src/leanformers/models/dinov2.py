"""DINOv2 (Oquab et al., 2023): a ViT trained by self-distillation, with layer scale, an optional
SwiGLU feed-forward, position embeddings resampled to any image size, its classifier and its backbone.

Module paths equal the keys of the files the reference library writes
(``embeddings.mask_token``, ``encoder.layer.0.attention.attention.query.weight``,
``encoder.layer.0.layer_scale1.lambda1``, ``encoder.layer.0.mlp.fc1.weight``). The SwiGLU
feed-forward keeps its gate and up projections apart in memory; files hold them stacked as
``mlp.weights_in`` (gate first), which ``_conversion`` splits on load and stacks on save. Files in
the reference's in-memory layout (``attention.q_proj``, ``mlp.down_proj``) load too.

The backbone's stages are the embedding output ("stem") and every layer's output ("stage1", ...),
chosen through the shared mechanism in ``modeling.backbone``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..configuration import PretrainedConfig
from ..errors import ConfigError, InputError
from ..modeling.activations import ACTIVATIONS, get_activation
from ..modeling.attention import Mask, attend, run_layers
from ..modeling.backbone import (
    BackboneConfigMixin,
    BackboneMixin,
    BackboneOutput,
    align_backbone_config,
)
from ..modeling.base import PreTrainedModel
from ..modeling.checks import (
    check_masked_patches,
    check_pixel_values,
    pair,
    positive_int,
)
from ..modeling.heads import ForImageClassification
from ..modeling.loading import Conversion
from ..modeling.outputs import BaseModelOutputWithPooling, ModelOutput
from .swin import drop_path
from .vit import ViTSelfAttention, attention_width


class Dinov2Config(BackboneConfigMixin, PretrainedConfig):
    model_type: ClassVar[str] = "dinov2"
    # The reference's defaults: DINOv2-base (facebook/dinov2-base).
    defaults: ClassVar[dict[str, Any]] = {
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "mlp_ratio": 4,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-6,
        "image_size": 224,
        "patch_size": 14,
        "num_channels": 3,
        "qkv_bias": True,
        "layerscale_value": 1.0,
        "drop_path_rate": 0.0,
        "use_swiglu_ffn": False,
        "apply_layernorm": True,
        "reshape_hidden_states": True,
        "use_mask_token": True,
        "out_features": None,
        "out_indices": None,
    }

    def validate(self) -> None:
        for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_channels"):
            positive_int(key, getattr(self, key))
        if self.hidden_size % self.num_attention_heads and "head_dim" not in self:
            raise ConfigError(
                f"hidden_size ({self.hidden_size}) must be a multiple of num_attention_heads "
                f"({self.num_attention_heads}) so that every head gets the same width."
            )
        ratio = self.mlp_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or int(self.hidden_size * ratio) < 1:
            raise ConfigError(
                f"mlp_ratio must be a positive number (the MLP is int(hidden_size * mlp_ratio) wide), got {ratio!r}."
            )
        for key in ("hidden_dropout_prob", "attention_probs_dropout_prob", "drop_path_rate"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ConfigError(f"{key} must be a probability between 0 and 1, got {value!r}.")
        if not isinstance(self.hidden_act, str) or self.hidden_act not in ACTIVATIONS:
            known = ", ".join(sorted(ACTIVATIONS))
            raise ConfigError(f"hidden_act={self.hidden_act!r} is not a known activation; use one of: {known}.")
        for key in ("layer_norm_eps", "layerscale_value"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{key} must be a number, got {value!r}.")
        if not self.layer_norm_eps > 0:
            raise ConfigError(f"layer_norm_eps must be positive, got {self.layer_norm_eps!r}.")
        for key in ("qkv_bias", "use_swiglu_ffn", "apply_layernorm", "reshape_hidden_states", "use_mask_token"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"{key} must be true or false, got {getattr(self, key)!r}.")
        image, patch = pair(self.image_size, "image_size"), pair(self.patch_size, "patch_size")
        if patch[0] > image[0] or patch[1] > image[1]:
            raise ConfigError(f"patch_size {self.patch_size!r} is larger than image_size {self.image_size!r}.")
        patches = (image[0] // patch[0]) * (image[1] // patch[1])
        if math.isqrt(patches) ** 2 != patches:
            # The position table is resampled as a square grid (as in the reference), so it must be one.
            raise ConfigError(
                f"image_size {self.image_size!r} / patch_size {self.patch_size!r} gives {patches} patches, which "
                "is not a square grid; DINOv2's position embeddings need image_size // patch_size patches on "
                "each side of a square."
            )
        # Derived from num_hidden_layers on every load, as the reference does, whatever the file stores.
        self.stage_names = ["stem"] + [f"stage{i}" for i in range(1, self.num_hidden_layers + 1)]
        align_backbone_config(self)


# -- modules ------------------------------------------------------------------------------------


class Dinov2PatchEmbeddings(nn.Module):
    """A strided convolution: one ``hidden_size`` vector per non-overlapping patch."""

    def __init__(self, config: Dinov2Config) -> None:
        super().__init__()
        self.patch_size = pair(config.patch_size, "patch_size")
        self.projection = nn.Conv2d(
            config.num_channels, config.hidden_size, kernel_size=self.patch_size, stride=self.patch_size
        )

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.projection(pixel_values).flatten(2).transpose(1, 2)


class Dinov2Embeddings(nn.Module):
    """[CLS] token + patch embeddings (masked patches replaced by ``mask_token``) + position
    embeddings, resampled to the image's patch grid whenever it differs from the trained one."""

    def __init__(self, config: Dinov2Config) -> None:
        super().__init__()
        image = pair(config.image_size, "image_size")
        self.patch_embeddings = Dinov2PatchEmbeddings(config)
        patch = self.patch_embeddings.patch_size
        positions = (image[0] // patch[0]) * (image[1] // patch[1])
        self.table_side = math.isqrt(positions)
        self.cls_token = nn.Parameter(torch.empty(1, 1, config.hidden_size))
        self.mask_token = nn.Parameter(torch.empty(1, config.hidden_size)) if config.use_mask_token else None
        self.position_embeddings = nn.Parameter(torch.empty(1, positions + 1, config.hidden_size))
        self.dropout = config.hidden_dropout_prob

    def positions_for(self, height: int, width: int) -> torch.Tensor:
        """The position table for an image of ``height`` x ``width`` pixels.

        The reference keeps the table only for a square image with the trained patch count and
        otherwise resamples the patch positions bicubically (half-pixel centres, in float32) to the
        image's grid; the same rule here keeps the numbers equal in every case."""
        table = self.position_embeddings
        patch_h, patch_w = self.patch_embeddings.patch_size
        grid = (height // patch_h, width // patch_w)
        if grid[0] * grid[1] == table.shape[1] - 1 and height == width:
            return table
        dim = table.shape[-1]
        side = self.table_side
        patches = table[:, 1:].reshape(1, side, side, dim).permute(0, 3, 1, 2)
        patches = F.interpolate(patches.float(), size=grid, mode="bicubic", align_corners=False).to(table.dtype)
        return torch.cat((table[:, :1], patches.permute(0, 2, 3, 1).reshape(1, -1, dim)), dim=1)

    def forward(self, pixel_values: torch.Tensor, bool_masked_pos: torch.Tensor | None) -> torch.Tensor:
        patches = self.patch_embeddings(pixel_values)
        if bool_masked_pos is not None:
            masked = bool_masked_pos.unsqueeze(-1).to(patches.dtype)
            patches = patches * (1.0 - masked) + self.mask_token * masked
        embeddings = torch.cat((self.cls_token.expand(patches.shape[0], -1, -1), patches), dim=1)
        embeddings = embeddings + self.positions_for(*pixel_values.shape[2:])
        return F.dropout(embeddings, self.dropout, self.training)


class Dinov2SelfOutput(nn.Module):
    """The attention context's projection back to ``hidden_size`` (no residual: layer scale comes first)."""

    def __init__(self, config: Dinov2Config) -> None:
        super().__init__()
        self.dense = nn.Linear(attention_width(config)[1], config.hidden_size)

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        return self.dense(context)


class Dinov2SelfAttention(ViTSelfAttention):
    """ViT's query/key/value self-attention (same keys, same numbers), over the keys ``mask`` keeps."""

    def forward(
        self, hidden: torch.Tensor, mask: Mask | None, need_weights: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        return attend(
            self.query(hidden), self.key(hidden), self.value(hidden), mask, heads=self.heads,
            dropout=self.dropout if self.training else 0.0, need_weights=need_weights,
        )


class Dinov2Attention(nn.Module):
    def __init__(self, config: Dinov2Config) -> None:
        super().__init__()
        self.attention = Dinov2SelfAttention(config)
        self.output = Dinov2SelfOutput(config)

    def forward(
        self, hidden: torch.Tensor, mask: Mask | None, need_weights: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        context, weights = self.attention(hidden, mask, need_weights)
        return self.output(context), weights


class Dinov2LayerScale(nn.Module):
    """A learned per-channel scale on a residual branch."""

    def __init__(self, config: Dinov2Config) -> None:
        super().__init__()
        self.lambda1 = nn.Parameter(torch.empty(config.hidden_size))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden * self.lambda1


class Dinov2MLP(nn.Module):
    def __init__(self, config: Dinov2Config) -> None:
        super().__init__()
        width = int(config.hidden_size * config.mlp_ratio)
        self.fc1 = nn.Linear(config.hidden_size, width)
        self.activation = get_activation(config.hidden_act)
        self.fc2 = nn.Linear(width, config.hidden_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.activation(self.fc1(hidden)))


def swiglu_width(config: Dinov2Config) -> int:
    """The SwiGLU inner width: two thirds of the MLP's, rounded up to a multiple of 8, as trained."""
    return (int(int(config.hidden_size * config.mlp_ratio) * 2 / 3) + 7) // 8 * 8


class Dinov2SwiGLUFFN(nn.Module):
    """silu(gate(x)) * up(x), projected back; SiLU whatever ``hidden_act`` says, as in the reference."""

    def __init__(self, config: Dinov2Config) -> None:
        super().__init__()
        width = swiglu_width(config)
        self.gate_proj = nn.Linear(config.hidden_size, width)
        self.up_proj = nn.Linear(config.hidden_size, width)
        self.weights_out = nn.Linear(width, config.hidden_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.weights_out(F.silu(self.gate_proj(hidden)) * self.up_proj(hidden))


class Dinov2Layer(nn.Module):
    """Pre-norm block with layer scale: x + ls1(attention(LN(x))), then x + ls2(MLP(LN(x)));
    each branch dropped per sample with ``drop_path_rate`` in training."""

    def __init__(self, config: Dinov2Config) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attention = Dinov2Attention(config)
        self.layer_scale1 = Dinov2LayerScale(config)
        self.norm2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = Dinov2SwiGLUFFN(config) if config.use_swiglu_ffn else Dinov2MLP(config)
        self.layer_scale2 = Dinov2LayerScale(config)
        self.drop_path_rate = config.drop_path_rate

    def forward(
        self, hidden: torch.Tensor, mask: Mask | None, need_weights: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, weights = self.attention(self.norm1(hidden), mask, need_weights)
        hidden = hidden + drop_path(self.layer_scale1(attended), self.drop_path_rate, self.training)
        mixed = self.layer_scale2(self.mlp(self.norm2(hidden)))
        return hidden + drop_path(mixed, self.drop_path_rate, self.training), weights


class Dinov2Encoder(nn.Module):
    def __init__(self, config: Dinov2Config) -> None:
        super().__init__()
        self.layer = nn.ModuleList(Dinov2Layer(config) for _ in range(config.num_hidden_layers))

    def forward(
        self, hidden: torch.Tensor, mask: Mask | None, output_attentions: bool, output_hidden_states: bool
    ) -> tuple[torch.Tensor, tuple | None, tuple | None]:
        return run_layers(self.layer, hidden, (mask,), output_attentions, output_hidden_states)


# -- models -------------------------------------------------------------------------------------


class Dinov2PreTrainedModel(PreTrainedModel):
    config_class = Dinov2Config
    base_model_prefix = "dinov2"
    _conversion = Conversion(
        # The reference's in-memory names (written with save_original_format=False) -> the file names.
        renames=(
            (r"\.attention\.q_proj\.", ".attention.attention.query."),
            (r"\.attention\.k_proj\.", ".attention.attention.key."),
            (r"\.attention\.v_proj\.", ".attention.attention.value."),
            (r"\.attention\.o_proj\.", ".attention.output.dense."),
            (r"\.mlp\.down_proj\.", ".mlp.weights_out."),
        ),
        fused=(("weights_in", ("gate_proj", "up_proj"), 0),),
    )

    def _init_weights(self, module: nn.Module) -> None:
        """The reference's scheme: truncated normals for linear and convolution weights, the [CLS]
        token and the position table; zero biases and mask token; layer scales at
        ``layerscale_value``; unit norms."""
        std = self.config.initializer_range
        with torch.no_grad():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                nn.init.trunc_normal_(module.weight, mean=0.0, std=std)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, Dinov2Embeddings):
                nn.init.trunc_normal_(module.position_embeddings, mean=0.0, std=std)
                nn.init.trunc_normal_(module.cls_token, mean=0.0, std=std)
                if module.mask_token is not None:
                    module.mask_token.zero_()
            elif isinstance(module, Dinov2LayerScale):
                module.lambda1.fill_(self.config.layerscale_value)
            else:
                super()._init_weights(module)

    def _check_pixels(self, pixel_values: Any) -> torch.Tensor:
        """The shared pixel checks (integer pixels are cast, as the reference casts them); any size
        of at least one patch, since the position table is resampled to the image's grid."""
        embeddings = self.embeddings
        pixel_values = check_pixel_values(
            pixel_values, self.config.num_channels, embeddings.patch_embeddings.projection.weight.dtype,
            cast_integers=True,
        )
        patch_h, patch_w = embeddings.patch_embeddings.patch_size
        height, width = pixel_values.shape[2:]
        if height < patch_h or width < patch_w:
            raise InputError(
                f"The image ({height}x{width}, height x width) is smaller than one {patch_h}x{patch_w} patch; "
                "resize it (the image processor does)."
            )
        return pixel_values

    def _embed(
        self, pixel_values: Any, bool_masked_pos: Any = None, attention_mask: Any = None
    ) -> tuple[torch.Tensor, torch.Tensor, Mask | None]:
        """(checked pixels, embedding output, the keys attention may see)."""
        pixel_values = self._check_pixels(pixel_values)
        if bool_masked_pos is not None:
            patch_h, patch_w = self.embeddings.patch_embeddings.patch_size
            batch, _, height, width = pixel_values.shape
            patches = (height // patch_h) * (width // patch_w)
            check_masked_patches(
                bool_masked_pos, self.embeddings.mask_token is not None, batch, patches, type(self).__name__
            )
        hidden = self.embeddings(pixel_values, bool_masked_pos)
        return pixel_values, hidden, Mask.padding(attention_mask, *hidden.shape[:2], hidden.device)


class Dinov2Model(Dinov2PreTrainedModel):
    """Embeddings, the encoder and a final LayerNorm; ``pooler_output`` is the normalised [CLS] state.

    ``bool_masked_pos`` (batch, patches) replaces the marked patches by the learned mask token
    (``use_mask_token``, on by default); ``attention_mask`` (batch, 1 + patches), 0 for a token no
    other token may attend to."""

    def __init__(self, config: Dinov2Config) -> None:
        super().__init__(config)
        self.embeddings = Dinov2Embeddings(config)
        self.encoder = Dinov2Encoder(config)
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def get_input_embeddings(self) -> Dinov2PatchEmbeddings:
        return self.embeddings.patch_embeddings

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> BaseModelOutputWithPooling | tuple:
        output_attentions, output_hidden_states, return_dict = self._resolve(
            output_attentions, output_hidden_states, return_dict
        )
        _, hidden, mask = self._embed(pixel_values, bool_masked_pos, attention_mask)
        hidden, all_hidden, all_weights = self.encoder(hidden, mask, output_attentions, output_hidden_states)
        hidden = self.layernorm(hidden)
        output = BaseModelOutputWithPooling(
            last_hidden_state=hidden, pooler_output=hidden[:, 0], hidden_states=all_hidden, attentions=all_weights
        )
        return output if return_dict else output.to_tuple()


class Dinov2ForImageClassification(ForImageClassification, Dinov2PreTrainedModel):
    """A linear classifier (or regressor when num_labels == 1) over the final [CLS] state joined
    with the mean of the patch states."""

    base_model_class = Dinov2Model

    def features_width(self, config: Dinov2Config) -> int:
        return 2 * config.hidden_size

    @staticmethod
    def pooled(outputs: ModelOutput) -> torch.Tensor:
        hidden = outputs.last_hidden_state
        return torch.cat((hidden[:, 0], hidden[:, 1:].mean(dim=1)), dim=1)


class Dinov2Backbone(BackboneMixin, Dinov2PreTrainedModel):
    """The hidden states of the chosen stages (``out_features`` / ``out_indices``; the embedding
    output is "stem", layer i's output "stage{i}"), each normalised by the final LayerNorm
    (``apply_layernorm``) and, with ``reshape_hidden_states``, without [CLS] as a
    (batch, hidden, rows, columns) map of patches."""

    def __init__(self, config: Dinov2Config) -> None:
        super().__init__(config)
        self.num_features = [config.hidden_size] * (config.num_hidden_layers + 1)
        self.embeddings = Dinov2Embeddings(config)
        self.encoder = Dinov2Encoder(config)
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> BackboneOutput | tuple:
        output_attentions, output_hidden_states, return_dict = self._resolve(
            output_attentions, output_hidden_states, return_dict
        )
        pixel_values, hidden, mask = self._embed(pixel_values, attention_mask=attention_mask)
        _, all_hidden, all_weights = self.encoder(hidden, mask, output_attentions, output_hidden_states=True)
        batch, _, height, width = pixel_values.shape
        patch_h, patch_w = self.embeddings.patch_embeddings.patch_size
        feature_maps = []
        for state in self.select_stages(all_hidden):
            if self.config.apply_layernorm:
                state = self.layernorm(state)
            if self.config.reshape_hidden_states:
                grid = state[:, 1:].reshape(batch, height // patch_h, width // patch_w, -1)
                state = grid.permute(0, 3, 1, 2).contiguous()
            feature_maps.append(state)
        output = BackboneOutput(
            feature_maps=tuple(feature_maps),
            hidden_states=all_hidden if output_hidden_states else None,
            attentions=all_weights,
        )
        return output if return_dict else output.to_tuple()


__all__ = ["Dinov2Backbone", "Dinov2Config", "Dinov2ForImageClassification", "Dinov2Model"]
