"""ConvNeXt (Liu et al., 2022): a convolutional network modernised after the vision Transformers
(patchify stem, 7x7 depthwise convolutions, LayerNorm, inverted bottleneck MLP, layer scale),
its classifier and its backbone.

Module paths equal the reference library's checkpoint keys (``convnext.embeddings.patch_embeddings.
weight``, ``convnext.encoder.stages.1.downsampling_layer.0.weight``, ``...layers.0.pwconv1.weight``,
``...layers.0.layer_scale_parameter``), so weights load by name.

The backbone returns the stem and any of the stages through the shared mechanism in
``modeling.backbone``; each chosen stage gets its own LayerNorm (``hidden_states_norms.<stage>``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from ..configuration import PretrainedConfig
from ..errors import ConfigError, InputError
from ..modeling.activations import get_activation
from ..modeling.backbone import (
    BackboneConfigMixin,
    BackboneMixin,
    BackboneOutput,
    align_backbone_config,
)
from ..modeling.base import PreTrainedModel
from ..modeling.checks import check_pixel_values, pair, positive_int
from ..modeling.heads import ForImageClassification
from ..modeling.outputs import (
    BaseModelOutputWithPoolingAndNoAttention,
    ImageClassifierOutputWithNoAttention,
)
from .swin import drop_path

# The epsilon of every LayerNorm inside the network (fixed, as trained); the config's
# layer_norm_eps applies to the final one over the pooled features only.
INNER_LAYER_NORM_EPS = 1e-6
# Each stage after the first halves the resolution with a 2x2 stride-2 convolution.
DOWNSAMPLING = 2
# The inverted bottleneck widens each block's MLP to this multiple of its channels.
MLP_EXPANSION = 4


class ConvNextConfig(BackboneConfigMixin, PretrainedConfig):
    model_type: ClassVar[str] = "convnext"
    attribute_map: ClassVar[dict[str, str]] = {"num_hidden_layers": "num_stages"}
    # The reference's defaults: ConvNeXt-T (facebook/convnext-tiny-224).
    defaults: ClassVar[dict[str, Any]] = {
        "num_channels": 3,
        "patch_size": 4,
        "num_stages": 4,
        "hidden_sizes": [96, 192, 384, 768],
        "depths": [3, 3, 9, 3],
        "hidden_act": "gelu",
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-12,
        "layer_scale_init_value": 1e-6,
        "drop_path_rate": 0.0,
        "image_size": 224,
        "out_features": None,
        "out_indices": None,
    }

    def validate(self) -> None:
        for key in ("num_channels", "num_stages"):
            positive_int(key, getattr(self, key))
        pair(self.patch_size, "patch_size")
        pair(self.image_size, "image_size")
        for key in ("hidden_sizes", "depths"):
            value = getattr(self, key)
            if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or not value:
                raise ConfigError(f"{key} must be a non-empty list of positive integers, one per stage; got {value!r}.")
            for item in value:
                if isinstance(item, bool) or not isinstance(item, int) or item < 1:
                    raise ConfigError(f"{key} must hold positive integers, one per stage; got {list(value)!r}.")
            setattr(self, key, list(value))
        if not len(self.hidden_sizes) == len(self.depths) == self.num_stages:
            raise ConfigError(
                f"hidden_sizes {self.hidden_sizes} and depths {self.depths} must have one entry per stage each "
                f"(num_stages={self.num_stages}), but have {len(self.hidden_sizes)} and {len(self.depths)}."
            )
        get_activation(self.hidden_act)  # a ConfigError naming the known activations if there is none
        rate = self.drop_path_rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
            raise ConfigError(f"drop_path_rate must be a probability between 0 and 1, got {rate!r}.")
        for key in ("layer_norm_eps", "layer_scale_init_value"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{key} must be a number, got {value!r}.")
        if not self.layer_norm_eps > 0:
            raise ConfigError(f"layer_norm_eps must be positive, got {self.layer_norm_eps!r}.")
        # Derived from depths on every load, as the reference does, whatever the file stores.
        self.stage_names = ["stem"] + [f"stage{i}" for i in range(1, len(self.depths) + 1)]
        align_backbone_config(self)


# -- modules ------------------------------------------------------------------------------------


class ConvNextLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of a (batch, channels, height, width) map."""

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return super().forward(features.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvNextEmbeddings(nn.Module):
    """The patchify stem: a strided ``patch_size`` convolution, then a LayerNorm over channels."""

    def __init__(self, config: ConvNextConfig) -> None:
        super().__init__()
        patch = pair(config.patch_size, "patch_size")
        self.patch_embeddings = nn.Conv2d(config.num_channels, config.hidden_sizes[0], kernel_size=patch, stride=patch)
        self.layernorm = ConvNextLayerNorm(config.hidden_sizes[0], eps=INNER_LAYER_NORM_EPS)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.layernorm(self.patch_embeddings(pixel_values))


class ConvNextLayer(nn.Module):
    """x + scale * MLP(LN(depthwise 7x7 conv(x))), the MLP and LayerNorm applied channels-last.
    The residual branch is dropped per sample with ``drop_path_rate`` in training."""

    def __init__(self, config: ConvNextConfig, dim: int, drop_path_rate: float) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.layernorm = nn.LayerNorm(dim, eps=INNER_LAYER_NORM_EPS)
        self.pwconv1 = nn.Linear(dim, MLP_EXPANSION * dim)
        self.act = get_activation(config.hidden_act)
        self.pwconv2 = nn.Linear(MLP_EXPANSION * dim, dim)
        # A non-positive initial value means the checkpoint was trained without layer scale.
        self.layer_scale_parameter = nn.Parameter(torch.empty(dim)) if config.layer_scale_init_value > 0 else None
        self.drop_path_rate = drop_path_rate

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        branch = self.dwconv(features).permute(0, 2, 3, 1)
        branch = self.pwconv2(self.act(self.pwconv1(self.layernorm(branch))))
        if self.layer_scale_parameter is not None:
            branch = self.layer_scale_parameter * branch
        return features + drop_path(branch.permute(0, 3, 1, 2), self.drop_path_rate, self.training)


class ConvNextStage(nn.Module):
    """Downsampling (LayerNorm, then a 2x2 stride-2 convolution to the new width) unless the stage
    keeps width and resolution, then ``depth`` blocks."""

    def __init__(
        self, config: ConvNextConfig, in_channels: int, out_channels: int, stride: int, rates: list[float]
    ) -> None:
        super().__init__()
        self.downsampling_layer = nn.ModuleList()
        if in_channels != out_channels or stride > 1:
            self.downsampling_layer.append(ConvNextLayerNorm(in_channels, eps=INNER_LAYER_NORM_EPS))
            self.downsampling_layer.append(
                nn.Conv2d(in_channels, out_channels, kernel_size=DOWNSAMPLING, stride=stride)
            )
        self.layers = nn.ModuleList(ConvNextLayer(config, out_channels, rate) for rate in rates)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        for module in (*self.downsampling_layer, *self.layers):
            features = module(features)
        return features


class ConvNextEncoder(nn.Module):
    """The stages; every stage but the first halves the resolution. Stochastic-depth rates grow
    linearly from 0 to ``drop_path_rate`` over all blocks."""

    def __init__(self, config: ConvNextConfig) -> None:
        super().__init__()
        total = sum(config.depths)
        # On the CPU even while the model is built on the meta device: the rates are plain numbers,
        # float32 ones as in the reference.
        rates = torch.linspace(0, config.drop_path_rate, total, device="cpu").tolist()
        widths = [config.hidden_sizes[0], *config.hidden_sizes]
        stages = []
        start = 0
        for i, depth in enumerate(config.depths):
            stride = DOWNSAMPLING if i > 0 else 1
            stages.append(ConvNextStage(config, widths[i], widths[i + 1], stride, rates[start : start + depth]))
            start += depth
        self.stages = nn.ModuleList(stages)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, tuple]:
        """The last stage's output, and the stem's and every stage's outputs."""
        all_hidden = (features,)
        for stage in self.stages:
            features = stage(features)
            all_hidden += (features,)
        return features, all_hidden


# -- models -------------------------------------------------------------------------------------


class ConvNextPreTrainedModel(PreTrainedModel):
    config_class = ConvNextConfig
    base_model_prefix = "convnext"

    def _init_weights(self, module: nn.Module) -> None:
        """The default scheme, with layer scales at ``layer_scale_init_value``, as in the reference."""
        super()._init_weights(module)
        if isinstance(module, ConvNextLayer) and module.layer_scale_parameter is not None:
            with torch.no_grad():
                module.layer_scale_parameter.fill_(self.config.layer_scale_init_value)

    def _check_inputs(self, pixel_values: Any) -> torch.Tensor:
        """The shared pixel checks, then a size that survives the stem and every downsampling."""
        pixel_values = check_pixel_values(
            pixel_values, self.config.num_channels, self.embeddings.patch_embeddings.weight.dtype
        )
        patch_h, patch_w = pair(self.config.patch_size, "patch_size")
        reduction = DOWNSAMPLING ** (len(self.config.depths) - 1)
        height, width = pixel_values.shape[2:]
        if height // patch_h < reduction or width // patch_w < reduction:
            raise InputError(
                f"The image ({height}x{width}, height x width) is too small for this model: the stem "
                f"({patch_h}x{patch_w} patches) and {len(self.config.depths) - 1} halvings need at least "
                f"{patch_h * reduction}x{patch_w * reduction} pixels; resize it (the image processor does)."
            )
        return pixel_values


class ConvNextModel(ConvNextPreTrainedModel):
    """Stem and stages; ``pooler_output`` is the LayerNorm of the global average of the last map."""

    def __init__(self, config: ConvNextConfig) -> None:
        super().__init__(config)
        self.embeddings = ConvNextEmbeddings(config)
        self.encoder = ConvNextEncoder(config)
        self.layernorm = nn.LayerNorm(config.hidden_sizes[-1], eps=config.layer_norm_eps)

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> BaseModelOutputWithPoolingAndNoAttention | tuple:
        _, output_hidden_states, return_dict = self._resolve(None, output_hidden_states, return_dict)
        pixel_values = self._check_inputs(pixel_values)
        hidden, all_hidden = self.encoder(self.embeddings(pixel_values))
        output = BaseModelOutputWithPoolingAndNoAttention(
            last_hidden_state=hidden,
            pooler_output=self.layernorm(hidden.mean(dim=(-2, -1))),
            hidden_states=all_hidden if output_hidden_states else None,
        )
        return output if return_dict else output.to_tuple()


class ConvNextForImageClassification(ForImageClassification, ConvNextPreTrainedModel):
    """Pooled, normalised features -> linear classifier (or regressor when num_labels == 1)."""

    base_model_class = ConvNextModel
    output_class = ImageClassifierOutputWithNoAttention

    def features_width(self, config: ConvNextConfig) -> int:
        return config.hidden_sizes[-1]


class ConvNextBackbone(BackboneMixin, ConvNextPreTrainedModel):
    """Feature maps of the chosen stages (``out_features`` / ``out_indices``; the stem is "stem"),
    each through its own LayerNorm over channels. Holds no pooler and no classifier.

    The norms are built for the stages chosen at construction, as the reference builds them (their
    weights are keyed by stage name)."""

    def __init__(self, config: ConvNextConfig) -> None:
        super().__init__(config)
        self.num_features = [config.hidden_sizes[0], *config.hidden_sizes]
        self.embeddings = ConvNextEmbeddings(config)
        self.encoder = ConvNextEncoder(config)
        self.hidden_states_norms = nn.ModuleDict({
            stage: ConvNextLayerNorm(channels, eps=INNER_LAYER_NORM_EPS)
            for stage, channels in zip(self.out_features, self.channels)
        })

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> BackboneOutput | tuple:
        _, output_hidden_states, return_dict = self._resolve(None, output_hidden_states, return_dict)
        missing = [stage for stage in self.out_features if stage not in self.hidden_states_norms]
        if missing:
            raise InputError(
                f"out_features now names {missing}, which this backbone was not built with (it has norms for "
                f"{list(self.hidden_states_norms)}); choose the stages when loading: "
                "ConvNextBackbone.from_pretrained(path, out_features=[...])."
            )
        pixel_values = self._check_inputs(pixel_values)
        _, all_hidden = self.encoder(self.embeddings(pixel_values))
        feature_maps = tuple(
            self.hidden_states_norms[stage](state)
            for stage, state in zip(self.out_features, self.select_stages(all_hidden))
        )
        output = BackboneOutput(feature_maps=feature_maps, hidden_states=all_hidden if output_hidden_states else None)
        return output if return_dict else output.to_tuple()


__all__ = ["ConvNextBackbone", "ConvNextConfig", "ConvNextForImageClassification", "ConvNextModel"]
