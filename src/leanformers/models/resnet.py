"""ResNet (He et al., 2015): a convolutional image encoder, its classifier and its backbone.

Module paths equal the reference library's checkpoint keys (``resnet.embedder.embedder.convolution.
weight``, ``resnet.encoder.stages.0.layers.0.shortcut.normalization.running_var``,
``classifier.1.weight``), BatchNorm running statistics included, so weights load by name.

The backbone returns the stem and any of the stages through the shared mechanism in
``modeling.backbone``: this file only declares the stage names and their channels.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import nn

from ..configuration import PretrainedConfig
from ..errors import ConfigError
from ..modeling.activations import get_activation
from ..modeling.backbone import (
    BackboneConfigMixin,
    BackboneMixin,
    BackboneOutput,
    align_backbone_config,
)
from ..modeling.base import PreTrainedModel
from ..modeling.heads import ForImageClassification
from ..modeling.checks import check_pixel_values
from ..modeling.outputs import (
    BaseModelOutputWithPoolingAndNoAttention,
    ImageClassifierOutputWithNoAttention,
)

LAYER_TYPES = ("basic", "bottleneck")
# A bottleneck layer works at a quarter of its output width between its two 1x1 convolutions.
BOTTLENECK_REDUCTION = 4


class ResNetConfig(BackboneConfigMixin, PretrainedConfig):
    model_type: ClassVar[str] = "resnet"
    # The reference's defaults: ResNet-50 (microsoft/resnet-50).
    defaults: ClassVar[dict[str, Any]] = {
        "num_channels": 3,
        "embedding_size": 64,
        "hidden_sizes": [256, 512, 1024, 2048],
        "depths": [3, 4, 6, 3],
        "layer_type": "bottleneck",
        "hidden_act": "relu",
        "downsample_in_first_stage": False,
        "downsample_in_bottleneck": False,
    }

    def validate(self) -> None:
        for key in ("num_channels", "embedding_size"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{key} must be a positive integer, got {value!r}.")
        for key in ("hidden_sizes", "depths"):
            value = getattr(self, key)
            if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or not value:
                raise ConfigError(f"{key} must be a non-empty list of positive integers, one per stage; got {value!r}.")
            for item in value:
                if isinstance(item, bool) or not isinstance(item, int) or item < 1:
                    raise ConfigError(f"{key} must hold positive integers, one per stage; got {list(value)!r}.")
            setattr(self, key, list(value))
        if len(self.hidden_sizes) != len(self.depths):
            raise ConfigError(
                f"hidden_sizes {self.hidden_sizes} and depths {self.depths} must have one entry per stage each, "
                f"but have {len(self.hidden_sizes)} and {len(self.depths)}."
            )
        if self.layer_type not in LAYER_TYPES:
            raise ConfigError(f"layer_type must be one of {LAYER_TYPES}, got {self.layer_type!r}.")
        if self.layer_type == "bottleneck":
            narrow = [size for size in self.hidden_sizes if size < BOTTLENECK_REDUCTION]
            if narrow:
                raise ConfigError(
                    f"Bottleneck layers narrow each stage to hidden_size // {BOTTLENECK_REDUCTION} channels, so every "
                    f"hidden size must be at least {BOTTLENECK_REDUCTION}; got {self.hidden_sizes}."
                )
        get_activation(self.hidden_act)  # a ConfigError naming the known activations if there is none
        for key in ("downsample_in_first_stage", "downsample_in_bottleneck"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"{key} must be true or false, got {getattr(self, key)!r}.")
        # Derived from depths on every load, as the reference does, whatever the file stores.
        self.stage_names = ["stem"] + [f"stage{i}" for i in range(1, len(self.depths) + 1)]
        align_backbone_config(self)


# -- modules ------------------------------------------------------------------------------------


class ResNetConvLayer(nn.Module):
    """Convolution (no bias, "same" padding), BatchNorm, then an activation unless ``activation`` is None."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        activation: str | None = "relu",
    ) -> None:
        super().__init__()
        self.convolution = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False
        )
        self.normalization = nn.BatchNorm2d(out_channels)
        self.activation = nn.Identity() if activation is None else get_activation(activation)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.activation(self.normalization(self.convolution(hidden)))


class ResNetEmbeddings(nn.Module):
    """The stem: a 7x7 stride-2 convolution, then a 3x3 stride-2 max pool (a quarter of the resolution)."""

    def __init__(self, config: ResNetConfig) -> None:
        super().__init__()
        self.embedder = ResNetConvLayer(
            config.num_channels, config.embedding_size, kernel_size=7, stride=2, activation=config.hidden_act
        )
        self.pooler = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.pooler(self.embedder(pixel_values))


class ResNetShortCut(nn.Module):
    """1x1 projection (and stride) of the residual when a layer changes width or resolution."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.convolution = nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)
        self.normalization = nn.BatchNorm2d(out_channels)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.normalization(self.convolution(hidden))


class _ResidualLayer(nn.Module):
    """activation(layer(x) + shortcut(x)); the shortcut projects only when the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, activation: str) -> None:
        super().__init__()
        needs_projection = in_channels != out_channels or stride != 1
        self.shortcut = ResNetShortCut(in_channels, out_channels, stride) if needs_projection else nn.Identity()
        self.activation = get_activation(activation)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        out = hidden
        for layer in self.layer:
            out = layer(out)
        return self.activation(out + self.shortcut(hidden))


class ResNetBasicLayer(_ResidualLayer):
    """Two 3x3 convolutions (ResNet-18/34). The inner activation is always ReLU, as in the reference;
    ``hidden_act`` applies after the residual sum."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, activation: str = "relu") -> None:
        super().__init__(in_channels, out_channels, stride, activation)
        self.layer = nn.Sequential(
            ResNetConvLayer(in_channels, out_channels, stride=stride),
            ResNetConvLayer(out_channels, out_channels, activation=None),
        )


class ResNetBottleNeckLayer(_ResidualLayer):
    """1x1 down to a quarter of the width, 3x3, 1x1 back up (ResNet-50 and deeper). The stride sits on
    the 3x3 convolution, or on the first 1x1 with ``downsample_in_bottleneck``. Inner activations are
    always ReLU, as in the reference."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        activation: str = "relu",
        downsample_in_bottleneck: bool = False,
    ) -> None:
        super().__init__(in_channels, out_channels, stride, activation)
        narrow = out_channels // BOTTLENECK_REDUCTION
        first_stride, middle_stride = (stride, 1) if downsample_in_bottleneck else (1, stride)
        self.layer = nn.Sequential(
            ResNetConvLayer(in_channels, narrow, kernel_size=1, stride=first_stride),
            ResNetConvLayer(narrow, narrow, stride=middle_stride),
            ResNetConvLayer(narrow, out_channels, kernel_size=1, activation=None),
        )


class ResNetStage(nn.Module):
    """``depth`` residual layers; only the first changes width and (with ``stride`` 2) resolution."""

    def __init__(self, config: ResNetConfig, in_channels: int, out_channels: int, stride: int, depth: int) -> None:
        super().__init__()
        act = config.hidden_act
        if config.layer_type == "bottleneck":
            first = ResNetBottleNeckLayer(
                in_channels, out_channels, stride, act, downsample_in_bottleneck=config.downsample_in_bottleneck
            )
            rest = [ResNetBottleNeckLayer(out_channels, out_channels, activation=act) for _ in range(depth - 1)]
        else:
            first = ResNetBasicLayer(in_channels, out_channels, stride, act)
            rest = [ResNetBasicLayer(out_channels, out_channels, activation=act) for _ in range(depth - 1)]
        self.layers = nn.Sequential(first, *rest)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.layers(hidden)


class ResNetEncoder(nn.Module):
    """The stages; every stage but the first halves the resolution (the first too with
    ``downsample_in_first_stage``)."""

    def __init__(self, config: ResNetConfig) -> None:
        super().__init__()
        widths = [config.embedding_size, *config.hidden_sizes]
        strides = [2 if config.downsample_in_first_stage else 1] + [2] * (len(config.depths) - 1)
        self.stages = nn.ModuleList(
            ResNetStage(config, widths[i], widths[i + 1], strides[i], depth) for i, depth in enumerate(config.depths)
        )

    def forward(self, hidden: torch.Tensor, output_hidden_states: bool) -> tuple[torch.Tensor, tuple | None]:
        """The last stage's output and, if asked, the stem's and every stage's outputs."""
        all_hidden = (hidden,) if output_hidden_states else None
        for stage in self.stages:
            hidden = stage(hidden)
            if output_hidden_states:
                all_hidden += (hidden,)
        return hidden, all_hidden


# -- models -------------------------------------------------------------------------------------


class ResNetPreTrainedModel(PreTrainedModel):
    config_class = ResNetConfig
    base_model_prefix = "resnet"

    def _init_weights(self, module: nn.Module) -> None:
        """The reference's scheme: He-normal (fan-out) convolutions, torch's default for linear
        layers; BatchNorm as the base class does (unit scale, zero shift, fresh running stats)."""
        with torch.no_grad():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.Linear):
                nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5))
                if module.bias is not None:
                    bound = 1 / math.sqrt(module.in_features) if module.in_features > 0 else 0
                    module.bias.uniform_(-bound, bound)
            else:
                super()._init_weights(module)

    def _check_inputs(self, pixel_values: Any) -> torch.Tensor:
        return check_pixel_values(pixel_values, self.config.num_channels, self.embedder.embedder.convolution.weight.dtype)


class ResNetModel(ResNetPreTrainedModel):
    """Stem, stages, and global average pooling (``pooler_output`` has shape (batch, channels, 1, 1))."""

    def __init__(self, config: ResNetConfig) -> None:
        super().__init__(config)
        self.embedder = ResNetEmbeddings(config)
        self.encoder = ResNetEncoder(config)
        self.pooler = nn.AdaptiveAvgPool2d((1, 1))

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> BaseModelOutputWithPoolingAndNoAttention | tuple:
        config = self.config
        output_hidden_states = config.output_hidden_states if output_hidden_states is None else output_hidden_states
        return_dict = config.use_return_dict if return_dict is None else return_dict
        pixel_values = self._check_inputs(pixel_values)
        hidden, all_hidden = self.encoder(self.embedder(pixel_values), output_hidden_states)
        output = BaseModelOutputWithPoolingAndNoAttention(
            last_hidden_state=hidden, pooler_output=self.pooler(hidden), hidden_states=all_hidden
        )
        return output if return_dict else output.to_tuple()


class ResNetForImageClassification(ForImageClassification, ResNetPreTrainedModel):
    """Pooled features -> flatten -> linear classifier (or regressor when num_labels == 1)."""

    base_model_class = ResNetModel
    output_class = ImageClassifierOutputWithNoAttention

    def build_head(self, config: ResNetConfig) -> None:
        self.num_labels = config.num_labels
        # A Sequential so the weights keep the reference's keys, classifier.1.weight / classifier.1.bias.
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(config.hidden_sizes[-1], config.num_labels))


class ResNetBackbone(BackboneMixin, ResNetPreTrainedModel):
    """Feature maps of the chosen stages (``out_features`` / ``out_indices``; the stem is "stem"),
    for detection and segmentation heads. Holds no pooler and no classifier."""

    def __init__(self, config: ResNetConfig) -> None:
        super().__init__(config)
        self.num_features = [config.embedding_size, *config.hidden_sizes]
        self.embedder = ResNetEmbeddings(config)
        self.encoder = ResNetEncoder(config)

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> BackboneOutput | tuple:
        config = self.config
        output_hidden_states = config.output_hidden_states if output_hidden_states is None else output_hidden_states
        return_dict = config.use_return_dict if return_dict is None else return_dict
        pixel_values = self._check_inputs(pixel_values)
        _, all_hidden = self.encoder(self.embedder(pixel_values), output_hidden_states=True)
        output = BackboneOutput(
            feature_maps=self.select_stages(all_hidden),
            hidden_states=all_hidden if output_hidden_states else None,
        )
        return output if return_dict else output.to_tuple()


__all__ = ["ResNetConfig", "ResNetModel", "ResNetForImageClassification", "ResNetBackbone"]
