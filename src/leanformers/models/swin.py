"""Swin Transformer (Liu et al., 2021): attention inside local windows, shifted every other block,
with patch merging between stages; an image classifier and a multi-scale backbone on top.

Module paths equal the checkpoint keys the reference writes by default; ``_conversion`` also reads
its two other layouts (a backbone saved without the ``swin.`` prefix, and the in-memory names
``attention.q_proj``, ``mlp.fc1``). Window sizes are chosen per call from the input size, as a
freshly loaded reference model chooses them (the reference keeps a reduced window once it has seen
a small input); a grid smaller than the window, which the learned relative-position table cannot
serve, is refused with the smallest usable size, except in the backbone, which pads to full windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..configuration import PretrainedConfig
from ..errors import ConfigError, InputError
from ..modeling.activations import ACTIVATIONS, get_activation
from ..modeling.attention import attend
from ..modeling.backbone import (
    BackboneConfigMixin,
    BackboneMixin,
    BackboneOutput,
    align_backbone_config,
)
from ..modeling.base import PreTrainedModel
from ..modeling.heads import ForImageClassification
from ..modeling.loading import Conversion
from ..modeling.checks import check_masked_patches, check_pixel_values, pair, positive_int
from ..modeling.outputs import ModelOutput

# Score added to attention between tokens that a cyclic shift made neighbours but that are not
# adjacent in the image (the reference's value; it is not -inf, so every row keeps a finite softmax).
_SHIFT_MASK_VALUE = -100.0


class SwinConfig(BackboneConfigMixin, PretrainedConfig):
    model_type: ClassVar[str] = "swin"
    attribute_map: ClassVar[dict[str, str]] = {
        "num_attention_heads": "num_heads",
        "num_hidden_layers": "num_layers",
    }
    defaults: ClassVar[dict[str, Any]] = {
        "image_size": 224,
        "patch_size": 4,
        "num_channels": 3,
        "embed_dim": 96,
        "depths": [2, 2, 6, 2],
        "num_heads": [3, 6, 12, 24],
        "window_size": 7,
        "mlp_ratio": 4.0,
        "qkv_bias": True,
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "drop_path_rate": 0.1,
        "hidden_act": "gelu",
        "use_absolute_embeddings": False,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-5,
        "encoder_stride": 32,
        "out_features": None,
        "out_indices": None,
    }

    def validate(self) -> None:
        for key in ("num_channels", "embed_dim", "window_size", "encoder_stride"):
            positive_int(key, getattr(self, key))
        image, patch = pair(self.image_size, "image_size"), pair(self.patch_size, "patch_size")
        if patch[0] > image[0] or patch[1] > image[1]:
            raise ConfigError(f"patch_size {self.patch_size!r} is larger than image_size {self.image_size!r}.")
        depths = _int_list(self.depths, "depths")
        heads = _int_list(self.num_heads, "num_heads")
        if len(depths) != len(heads):
            raise ConfigError(
                f"depths ({depths}) and num_heads ({heads}) must have one entry per stage, "
                f"but have {len(depths)} and {len(heads)}."
            )
        for stage, count in enumerate(heads):
            width = self.embed_dim * 2**stage
            if width % count:
                raise ConfigError(
                    f"Stage {stage + 1} is {width} wide (embed_dim * 2**{stage}), which num_heads[{stage}]={count} "
                    "does not divide; every head must get the same width."
                )
        ratio = self.mlp_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not ratio > 0:
            raise ConfigError(f"mlp_ratio must be a positive number, got {ratio!r}.")
        for key in ("hidden_dropout_prob", "attention_probs_dropout_prob", "drop_path_rate"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ConfigError(f"{key} must be a probability between 0 and 1, got {value!r}.")
        if not isinstance(self.hidden_act, str) or self.hidden_act not in ACTIVATIONS:
            get_activation(self.hidden_act)  # raises the ConfigError listing the known names
        if not self.layer_norm_eps > 0:
            raise ConfigError(f"layer_norm_eps must be positive, got {self.layer_norm_eps!r}.")
        # Derived from depths and embed_dim, as the reference derives (and saves) them.
        self.depths, self.num_heads = depths, heads
        self.num_layers = len(depths)
        self.hidden_size = int(self.embed_dim * 2 ** (len(depths) - 1))
        self.stage_names = ["stem"] + [f"stage{i}" for i in range(1, len(depths) + 1)]
        align_backbone_config(self)


def _int_list(value: Any, key: str) -> list[int]:
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"{key} must be a non-empty list of positive integers (one per stage), got {value!r}.")
    for item in value:
        positive_int(key, item)
    return list(value)


# -- outputs ------------------------------------------------------------------------------------


@dataclass(repr=True)
class SwinModelOutput(ModelOutput):
    """``reshaped_hidden_states``: the same states as ``hidden_states``, as (batch, channels, height, width) maps."""

    last_hidden_state: Any = None
    pooler_output: Any = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None
    reshaped_hidden_states: tuple | None = None


@dataclass(repr=True)
class SwinImageClassifierOutput(ModelOutput):
    loss: Any = None
    logits: Any = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None
    reshaped_hidden_states: tuple | None = None


# -- window helpers -----------------------------------------------------------------------------


def to_windows(grid: torch.Tensor, window: int) -> torch.Tensor:
    """(batch, H, W, C) with H, W multiples of ``window`` -> (batch * windows, window * window, C),
    windows in row-major order per image."""
    batch, height, width, channels = grid.shape
    grid = grid.view(batch, height // window, window, width // window, window, channels)
    return grid.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, channels)


def from_windows(windows: torch.Tensor, window: int, height: int, width: int) -> torch.Tensor:
    """The inverse of ``to_windows``: -> (batch, height, width, C)."""
    channels = windows.shape[-1]
    grid = windows.view(-1, height // window, width // window, window, window, channels)
    return grid.permute(0, 1, 3, 2, 4, 5).reshape(-1, height, width, channels)


def shifted_window_mask(
    height: int, width: int, window: int, shift: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """(windows, window**2, window**2) additive mask for a grid rolled up-left by ``shift``.

    Along each axis the rolled grid has three regions (the untouched part, the last ``window -
    shift`` rows/columns of the original, and the ``shift`` rows/columns that wrapped around);
    tokens attend only to tokens of the same region pair.
    """

    def regions(length: int) -> torch.Tensor:
        index = torch.arange(length, device=device)
        return (index >= length - window).long() + (index >= length - shift).long()

    label = regions(height)[:, None] * 3 + regions(width)[None, :]
    label = to_windows(label[None, :, :, None], window).squeeze(-1)  # (windows, window**2)
    apart = label[:, None, :] != label[:, :, None]
    return torch.zeros(apart.shape, dtype=dtype, device=device).masked_fill(apart, _SHIFT_MASK_VALUE)


def relative_position_index(window: int) -> torch.Tensor:
    """(window**2 * window**2,) index into the (2w-1)**2-row bias table for every query/key pair."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    delta = coords[:, :, None] - coords[:, None, :] + (window - 1)  # (2, w*w, w*w), each in [0, 2w-2]
    return (delta[0] * (2 * window - 1) + delta[1]).flatten()


def drop_path(hidden: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Stochastic depth: drop the whole residual branch of a random subset of the batch (training only)."""
    if rate == 0.0 or not training:
        return hidden
    keep = 1.0 - rate
    shape = (hidden.shape[0],) + (1,) * (hidden.dim() - 1)
    survivors = torch.floor(torch.rand(shape, dtype=hidden.dtype, device=hidden.device) + keep)
    return hidden.div(keep) * survivors


def to_map(hidden: torch.Tensor, dims: tuple[int, int]) -> torch.Tensor:
    """(batch, H*W, C) tokens -> (batch, C, H, W) feature map."""
    batch, _, channels = hidden.shape
    return hidden.view(batch, dims[0], dims[1], channels).permute(0, 3, 1, 2).contiguous()


# -- modules ------------------------------------------------------------------------------------


class SwinPatchEmbeddings(nn.Module):
    """Non-overlapping patches (the image padded right/bottom to a multiple of the patch) -> tokens."""

    def __init__(self, config: SwinConfig) -> None:
        super().__init__()
        image = pair(config.image_size, "image_size")
        self.patch_size = pair(config.patch_size, "patch_size")
        self.grid_size = (image[0] // self.patch_size[0], image[1] // self.patch_size[1])
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.projection = nn.Conv2d(config.num_channels, config.embed_dim, self.patch_size, self.patch_size)

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        height, width = pixel_values.shape[2:]
        pad_bottom, pad_right = -height % self.patch_size[0], -width % self.patch_size[1]
        if pad_bottom or pad_right:
            pixel_values = F.pad(pixel_values, (0, pad_right, 0, pad_bottom))
        patches = self.projection(pixel_values)
        dims = (patches.shape[2], patches.shape[3])
        return patches.flatten(2).transpose(1, 2), dims


class SwinEmbeddings(nn.Module):
    """Patch embeddings, LayerNorm, optional mask token and absolute position embeddings, dropout."""

    def __init__(self, config: SwinConfig, use_mask_token: bool = False) -> None:
        super().__init__()
        self.patch_embeddings = SwinPatchEmbeddings(config)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, config.embed_dim)) if use_mask_token else None
        self.position_embeddings = (
            nn.Parameter(torch.zeros(1, self.patch_embeddings.num_patches, config.embed_dim))
            if config.use_absolute_embeddings
            else None
        )
        self.norm = nn.LayerNorm(config.embed_dim)
        self.dropout = config.hidden_dropout_prob

    def positions_for(self, dims: tuple[int, int], num_tokens: int, interpolate: bool) -> torch.Tensor:
        """The position embeddings for a ``dims`` grid, resampled bicubically when ``interpolate``."""
        table = self.position_embeddings
        grid = self.patch_embeddings.grid_size
        if not interpolate or tuple(dims) == grid:
            if table.shape[1] != num_tokens:
                raise InputError(
                    f"The image gives a {dims[0]}x{dims[1]} grid of patches, but the position embeddings cover "
                    f"{grid[0]}x{grid[1]}: resize the image to the config's image_size, or pass "
                    "interpolate_pos_encoding=True to resample the position embeddings."
                )
            return table
        channels = table.shape[-1]
        table = table.reshape(1, grid[0], grid[1], channels).permute(0, 3, 1, 2)
        table = F.interpolate(table, size=dims, mode="bicubic", align_corners=False)
        return table.permute(0, 2, 3, 1).reshape(1, -1, channels)

    def forward(
        self, pixel_values: torch.Tensor, bool_masked_pos: torch.Tensor | None, interpolate_pos_encoding: bool
    ) -> tuple[torch.Tensor, tuple[int, int]]:
        tokens, dims = self.patch_embeddings(pixel_values)
        tokens = self.norm(tokens)
        if bool_masked_pos is not None:
            mask = bool_masked_pos.unsqueeze(-1).type_as(tokens)
            tokens = tokens * (1.0 - mask) + self.mask_token.expand_as(tokens) * mask
        if self.position_embeddings is not None:
            tokens = tokens + self.positions_for(dims, tokens.shape[1], interpolate_pos_encoding)
        return F.dropout(tokens, self.dropout, self.training), dims


class SwinSelfAttention(nn.Module):
    """Multi-head attention within each window, plus a learned bias per relative offset and head."""

    def __init__(self, config: SwinConfig, dim: int, num_heads: int) -> None:
        super().__init__()
        window = config.window_size
        self.window_size = window
        self.num_heads = num_heads
        self.query = nn.Linear(dim, dim, bias=config.qkv_bias)
        self.key = nn.Linear(dim, dim, bias=config.qkv_bias)
        self.value = nn.Linear(dim, dim, bias=config.qkv_bias)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        # Derived from window_size and never saved (the reference does not save it either).
        self.register_buffer("relative_position_index", relative_position_index(window), persistent=False)
        self.dropout = config.attention_probs_dropout_prob

    def position_bias(self) -> torch.Tensor:
        """(heads, window**2, window**2)."""
        tokens = self.window_size**2
        bias = self.relative_position_bias_table[self.relative_position_index]
        return bias.view(tokens, tokens, -1).permute(2, 0, 1)

    def forward(
        self, windows: torch.Tensor, shift_mask: torch.Tensor | None, need_weights: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        bias = self.position_bias().unsqueeze(0)
        if shift_mask is not None:
            # Every image of the batch has the same windows: (windows, ...) repeats over the batch.
            count, tokens = shift_mask.shape[0], shift_mask.shape[-1]
            images = windows.shape[0] // count
            bias = (bias.unsqueeze(0) + shift_mask[None, :, None]).expand(images, -1, -1, -1, -1)
            bias = bias.reshape(-1, self.num_heads, tokens, tokens)
        return attend(
            self.query(windows), self.key(windows), self.value(windows), None, heads=self.num_heads, bias=bias,
            dropout=self.dropout if self.training else 0.0, need_weights=need_weights,
        )


class SwinSelfOutput(nn.Module):
    def __init__(self, config: SwinConfig, dim: int) -> None:
        super().__init__()
        self.dense = nn.Linear(dim, dim)
        self.dropout = config.hidden_dropout_prob

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return F.dropout(self.dense(hidden), self.dropout, self.training)


class SwinAttention(nn.Module):
    def __init__(self, config: SwinConfig, dim: int, num_heads: int) -> None:
        super().__init__()
        self.self = SwinSelfAttention(config, dim, num_heads)
        self.output = SwinSelfOutput(config, dim)

    def forward(
        self, windows: torch.Tensor, shift_mask: torch.Tensor | None, need_weights: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        context, weights = self.self(windows, shift_mask, need_weights)
        return self.output(context), weights


class SwinIntermediate(nn.Module):
    def __init__(self, config: SwinConfig, dim: int) -> None:
        super().__init__()
        self.dense = nn.Linear(dim, int(config.mlp_ratio * dim))
        self.act = get_activation(config.hidden_act)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.act(self.dense(hidden))


class SwinOutput(nn.Module):
    def __init__(self, config: SwinConfig, dim: int) -> None:
        super().__init__()
        self.dense = nn.Linear(int(config.mlp_ratio * dim), dim)
        self.dropout = config.hidden_dropout_prob

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """The projection plus ``residual``."""
        return F.dropout(self.dense(hidden), self.dropout, self.training) + residual


class SwinLayer(nn.Module):
    """One block: (shifted) window attention and an MLP, each pre-normed with a residual.

    As in the reference, stochastic depth applies to the attention branch only.
    """

    def __init__(self, config: SwinConfig, dim: int, num_heads: int, shift: int, drop_path_rate: float) -> None:
        super().__init__()
        self.window_size = config.window_size
        self.shift_size = shift
        self.drop_path_rate = drop_path_rate
        self.layernorm_before = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.attention = SwinAttention(config, dim, num_heads)
        self.layernorm_after = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.intermediate = SwinIntermediate(config, dim)
        self.output = SwinOutput(config, dim)

    def forward(
        self,
        hidden: torch.Tensor,
        dims: tuple[int, int],
        shift: int,
        shift_mask: torch.Tensor | None,
        need_weights: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        window = self.window_size
        height, width = dims
        batch, tokens, channels = hidden.shape
        grid = self.layernorm_before(hidden).view(batch, height, width, channels)
        pad_bottom, pad_right = -height % window, -width % window
        if pad_bottom or pad_right:
            grid = F.pad(grid, (0, 0, 0, pad_right, 0, pad_bottom))
        padded_h, padded_w = grid.shape[1], grid.shape[2]
        if shift:
            grid = torch.roll(grid, shifts=(-shift, -shift), dims=(1, 2))
        attended, weights = self.attention(to_windows(grid, window), shift_mask, need_weights)
        grid = from_windows(attended, window, padded_h, padded_w)
        if shift:
            grid = torch.roll(grid, shifts=(shift, shift), dims=(1, 2))
        if pad_bottom or pad_right:
            grid = grid[:, :height, :width]
        hidden = hidden + drop_path(grid.reshape(batch, tokens, channels), self.drop_path_rate, self.training)
        return self.output(self.intermediate(self.layernorm_after(hidden)), hidden), weights


class SwinPatchMerging(nn.Module):
    """Halve the grid (padding odd sizes): concatenate each 2x2 neighbourhood, LayerNorm, project 4C -> 2C."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, hidden: torch.Tensor, dims: tuple[int, int]) -> torch.Tensor:
        batch, _, channels = hidden.shape
        height, width = dims
        grid = hidden.view(batch, height, width, channels)
        if height % 2 or width % 2:
            grid = F.pad(grid, (0, 0, 0, width % 2, 0, height % 2))
        # Channel order of the checkpoints: (even row, even col), (odd, even), (even, odd), (odd, odd).
        merged = torch.cat([grid[:, row::2, col::2] for col in (0, 1) for row in (0, 1)], dim=-1)
        return self.reduction(self.norm(merged.view(batch, -1, 4 * channels)))


class SwinStage(nn.Module):
    def __init__(
        self, config: SwinConfig, dim: int, depth: int, num_heads: int, drop_rates: list[float], downsample: bool
    ) -> None:
        super().__init__()
        shift = config.window_size // 2
        self.blocks = nn.ModuleList(
            SwinLayer(config, dim, num_heads, 0 if i % 2 == 0 else shift, drop_rates[i]) for i in range(depth)
        )
        self.downsample = SwinPatchMerging(dim) if downsample else None

    def forward(
        self, hidden: torch.Tensor, dims: tuple[int, int], always_partition: bool, need_weights: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Returns the output (downsampled when the stage merges patches), the output before
        downsampling, and the last block's attention weights (when asked)."""
        window = self.blocks[0].window_size
        # When the grid's shorter side fits in one window the reference stops shifting for the stage
        # (check_grid has already refused grids smaller than the window).
        no_shift = not always_partition and min(dims) <= window
        shift_mask = None
        weights = None
        for block in self.blocks:
            shift = 0 if no_shift else block.shift_size
            if shift and shift_mask is None:
                padded = (dims[0] + -dims[0] % window, dims[1] + -dims[1] % window)
                shift_mask = shifted_window_mask(*padded, window, shift, hidden.dtype, hidden.device)
            hidden, weights = block(hidden, dims, shift, shift_mask if shift else None, need_weights)
        before = hidden
        if self.downsample is not None:
            hidden = self.downsample(hidden, dims)
        return hidden, before, weights


class SwinEncoder(nn.Module):
    def __init__(self, config: SwinConfig) -> None:
        super().__init__()
        depths = config.depths
        total = sum(depths)
        rates = [config.drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        self.layers = nn.ModuleList(
            SwinStage(
                config,
                dim=int(config.embed_dim * 2**i),
                depth=depth,
                num_heads=config.num_heads[i],
                drop_rates=rates[sum(depths[:i]) : sum(depths[: i + 1])],
                downsample=i < len(depths) - 1,
            )
            for i, depth in enumerate(depths)
        )

    def forward(
        self,
        hidden: torch.Tensor,
        dims: tuple[int, int],
        *,
        always_partition: bool,
        need_weights: bool,
        keep_hidden: bool,
        keep_maps: bool,
        maps_before_downsampling: bool,
        num_stages: int | None = None,
    ) -> tuple[torch.Tensor, tuple | None, tuple | None, tuple | None]:
        """Run the stages; returns the last hidden state and, as asked, the token states (the
        embeddings, then each stage's output), the same as maps (optionally each stage's map before
        its patch merging instead, as the backbone uses) and each stage's last attention weights."""
        all_hidden = (hidden,) if keep_hidden else None
        all_maps = (to_map(hidden, dims),) if keep_maps else None
        all_weights = () if need_weights else None
        for stage in self.layers[:num_stages]:
            hidden, before, weights = stage(hidden, dims, always_partition, need_weights)
            stage_dims = dims
            if stage.downsample is not None:
                dims = ((dims[0] + 1) // 2, (dims[1] + 1) // 2)
            if keep_hidden:
                all_hidden += (hidden,)
            if keep_maps:
                all_maps += (to_map(before, stage_dims) if maps_before_downsampling else to_map(hidden, dims),)
            if need_weights:
                all_weights += (weights,)
        return hidden, all_hidden, all_maps, all_weights

    def check_grid(self, dims: tuple[int, int], image: tuple[int, int], patch: tuple[int, int]) -> None:
        """Refuse inputs for which some stage's grid is smaller than the attention window."""
        window = self.layers[0].blocks[0].window_size
        for index, stage in enumerate(self.layers):
            if min(dims) < window:
                stages = len(self.layers)
                smallest = (window - 1) * 2 ** (stages - 1)
                raise InputError(
                    f"The {image[0]}x{image[1]} image is too small for this model: stage {index + 1} would see a "
                    f"{dims[0]}x{dims[1]} grid of patches, smaller than window_size={window}. Use images of at "
                    f"least {smallest * patch[0] + 1}x{smallest * patch[1] + 1} pixels, or load the model as a "
                    "backbone (AutoBackbone), which pads small grids to a full window."
                )
            if stage.downsample is not None:
                dims = ((dims[0] + 1) // 2, (dims[1] + 1) // 2)


# -- models -------------------------------------------------------------------------------------


class SwinPreTrainedModel(PreTrainedModel):
    config_class = SwinConfig
    base_model_prefix = "swin"
    # Checkpoints written by older versions of the reference saved this derived index.
    _ignore_on_load = [r"(^|\.)relative_position_index$"]
    _conversion = Conversion(renames=(
        # The reference writes a freshly built SwinBackbone without the "swin." prefix on these
        # (but with it on "swin.layernorm"); base-model checkpoints have none at all.
        (r"^(embeddings|encoder|layernorm)\.", r"swin.\1."),
        # The reference's in-memory names (written with save_original_format=False) -> the file names.
        (r"\.attention\.q_proj\.", ".attention.self.query."),
        (r"\.attention\.k_proj\.", ".attention.self.key."),
        (r"\.attention\.v_proj\.", ".attention.self.value."),
        (r"\.attention\.o_proj\.", ".attention.output.dense."),
        (
            r"\.attention\.relative_position_bias\.relative_position_bias_table$",
            ".attention.self.relative_position_bias_table",
        ),
        (r"\.mlp\.fc1\.", ".intermediate.dense."),
        (r"\.mlp\.fc2\.", ".output.dense."),
    ))

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        with torch.no_grad():
            if isinstance(module, SwinEmbeddings):
                for parameter in (module.mask_token, module.position_embeddings):
                    if parameter is not None:
                        parameter.zero_()
            elif isinstance(module, SwinSelfAttention):
                module.relative_position_bias_table.zero_()
                module.relative_position_index.copy_(relative_position_index(module.window_size))


class SwinModel(SwinPreTrainedModel):
    """Embeddings, the stages, a final LayerNorm and (optionally) average pooling over the tokens."""

    def __init__(self, config: SwinConfig, add_pooling_layer: bool = True, use_mask_token: bool = False) -> None:
        super().__init__(config)
        self.num_layers = len(config.depths)
        self.num_features = int(config.embed_dim * 2 ** (self.num_layers - 1))
        self.embeddings = SwinEmbeddings(config, use_mask_token=use_mask_token)
        self.encoder = SwinEncoder(config)
        self.layernorm = nn.LayerNorm(self.num_features, eps=config.layer_norm_eps)
        self.pooler = nn.AdaptiveAvgPool1d(1) if add_pooling_layer else None

    def get_input_embeddings(self) -> SwinPatchEmbeddings:
        return self.embeddings.patch_embeddings

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        interpolate_pos_encoding: bool = False,
        *,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> SwinModelOutput | tuple:
        output_attentions, output_hidden_states, return_dict = self._resolve(
            output_attentions, output_hidden_states, return_dict
        )
        hidden, dims = self.embed(pixel_values, bool_masked_pos, interpolate_pos_encoding)
        self.encoder.check_grid(dims, tuple(pixel_values.shape[2:]), self.embeddings.patch_embeddings.patch_size)
        hidden, all_hidden, all_maps, all_weights = self.encoder(
            hidden,
            dims,
            always_partition=False,
            need_weights=output_attentions,
            keep_hidden=output_hidden_states,
            keep_maps=output_hidden_states,
            maps_before_downsampling=False,
        )
        hidden = self.layernorm(hidden)
        pooled = torch.flatten(self.pooler(hidden.transpose(1, 2)), 1) if self.pooler is not None else None
        output = SwinModelOutput(
            last_hidden_state=hidden,
            pooler_output=pooled,
            hidden_states=all_hidden,
            attentions=all_weights,
            reshaped_hidden_states=all_maps,
        )
        return output if return_dict else output.to_tuple()

    def embed(
        self, pixel_values: Any, bool_masked_pos: Any, interpolate_pos_encoding: bool
    ) -> tuple[torch.Tensor, tuple[int, int]]:
        """Check the inputs and embed them: tokens (batch, patches, embed_dim) and the patch grid."""
        dtype = self.embeddings.patch_embeddings.projection.weight.dtype
        pixel_values = check_pixel_values(pixel_values, self.config.num_channels, dtype)
        if bool_masked_pos is not None:
            self._check_mask(bool_masked_pos, pixel_values)
        return self.embeddings(pixel_values, bool_masked_pos, bool(interpolate_pos_encoding))

    def _check_mask(self, bool_masked_pos: Any, pixel_values: torch.Tensor) -> None:
        patch = self.embeddings.patch_embeddings.patch_size
        batch, _, height, width = pixel_values.shape
        patches = -(-height // patch[0]) * -(-width // patch[1])
        check_masked_patches(bool_masked_pos, self.embeddings.mask_token is not None, batch, patches, "SwinModel")


class SwinForImageClassification(ForImageClassification, SwinPreTrainedModel):
    """Average-pooled final tokens -> linear classifier (or regressor when num_labels == 1)."""

    base_model_class = SwinModel
    output_class = SwinImageClassifierOutput

    def features_width(self, config: SwinConfig) -> int:
        return self.swin.num_features


class SwinBackbone(BackboneMixin, SwinPreTrainedModel):
    """Feature maps (batch, channels, height, width) of the configured stages, each LayerNormed.

    Stage maps are taken before each stage's patch merging; windows are always full-sized (the grid
    padded to fit), so any input size works.
    """

    def __init__(self, config: SwinConfig) -> None:
        super().__init__(config)
        self.num_features = [config.embed_dim] + [int(config.embed_dim * 2**i) for i in range(len(config.depths))]
        self.swin = SwinModel(config, add_pooling_layer=False)
        self.hidden_states_norms = nn.ModuleDict(
            {stage: nn.LayerNorm(channels) for stage, channels in zip(self.out_features, self.channels)}
        )

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        *,
        interpolate_pos_encoding: bool = False,
    ) -> BackboneOutput | tuple:
        output_attentions, output_hidden_states, return_dict = self._resolve(
            output_attentions, output_hidden_states, return_dict
        )
        hidden, dims = self.swin.embed(pixel_values, None, interpolate_pos_encoding)
        wanted = [self.stage_names.index(name) for name in self.out_features]
        # Stages past the last one asked for are only run when their outputs are requested.
        full = output_hidden_states or output_attentions
        _, _, maps, weights = self.swin.encoder(
            hidden,
            dims,
            always_partition=True,
            need_weights=output_attentions,
            keep_hidden=False,
            keep_maps=True,
            maps_before_downsampling=True,
            num_stages=None if full else max(wanted),
        )
        feature_maps = tuple(
            self._normalise(name, maps[index]) for name, index in zip(self.out_features, wanted)
        )
        output = BackboneOutput(
            feature_maps=feature_maps,
            hidden_states=maps if output_hidden_states else None,
            attentions=weights,
        )
        return output if return_dict else output.to_tuple()

    def _normalise(self, stage: str, feature_map: torch.Tensor) -> torch.Tensor:
        """LayerNorm over the channels of a (batch, C, H, W) map."""
        normed = self.hidden_states_norms[stage](feature_map.permute(0, 2, 3, 1).contiguous())
        return normed.permute(0, 3, 1, 2).contiguous()


__all__ = [
    "SwinConfig",
    "SwinModel",
    "SwinForImageClassification",
    "SwinBackbone",
    "SwinModelOutput",
    "SwinImageClassifierOutput",
]
