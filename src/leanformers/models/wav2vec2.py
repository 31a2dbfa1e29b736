"""wav2vec 2.0 (Baevski et al., 2020): a convolutional feature encoder over the raw waveform, a
Transformer encoder with a convolutional position embedding, and the audio task heads.

Module paths equal the reference's keys. The weight-normalised position convolution is stored the
way ``torch.nn.utils.parametrizations.weight_norm`` names it (``...parametrizations.weight.original0``
/ ``original1``, what the reference writes); older ``weight_g`` / ``weight_v`` files load through
``_conversion``. HuBERT (``hubert.py``) reuses these modules. Not provided: pre-training (quantizer,
contrastive loss), ``add_adapter`` and the MMS attention adapters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..configuration import PretrainedConfig
from ..errors import ConfigError, InputError
from ..modeling.activations import ACTIVATIONS, get_activation
from ..modeling.attention import Mask, attend, run_layers
from ..modeling.base import PreTrainedModel
from ..modeling.checks import positive_int
from ..modeling.loading import Conversion
from ..modeling.outputs import ModelOutput, SequenceClassifierOutput


class Wav2Vec2Config(PretrainedConfig):
    model_type: ClassVar[str] = "wav2vec2"
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
        "feat_proj_dropout": 0.0,
        "feat_quantizer_dropout": 0.0,
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
        "do_stable_layer_norm": False,
        "apply_spec_augment": True,
        "mask_time_prob": 0.05,
        "mask_time_length": 10,
        "mask_time_min_masks": 2,
        "mask_feature_prob": 0.0,
        "mask_feature_length": 10,
        "mask_feature_min_masks": 0,
        "num_codevectors_per_group": 320,
        "num_codevector_groups": 2,
        "contrastive_logits_temperature": 0.1,
        "num_negatives": 100,
        "codevector_dim": 256,
        "proj_codevector_dim": 256,
        "diversity_loss_weight": 0.1,
        "ctc_loss_reduction": "sum",
        "ctc_zero_infinity": False,
        "use_weighted_layer_sum": False,
        "classifier_proj_size": 256,
        "tdnn_dim": [512, 512, 512, 512, 1500],
        "tdnn_kernel": [5, 3, 3, 1, 1],
        "tdnn_dilation": [1, 2, 3, 1, 1],
        "xvector_output_dim": 512,
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "add_adapter": False,
        "adapter_kernel_size": 3,
        "adapter_stride": 2,
        "num_adapter_layers": 3,
        "output_hidden_size": None,
        "adapter_attn_dim": None,
    }
    _SEQUENCES: ClassVar[tuple[str, ...]] = ("conv_dim", "conv_stride", "conv_kernel", "tdnn_dim", "tdnn_kernel",
                                             "tdnn_dilation")

    def __init__(self, **kwargs: Any) -> None:
        for key in self._SEQUENCES:
            if isinstance(kwargs.get(key), tuple):
                kwargs[key] = list(kwargs[key])
        # Derived values the reference writes into config.json, resolved here the same way.
        conv_dim = kwargs.get("conv_dim", self.defaults["conv_dim"])
        if isinstance(conv_dim, list):
            kwargs["num_feat_extract_layers"] = len(conv_dim)
        if "output_hidden_size" in self.defaults and not kwargs.get("output_hidden_size"):
            kwargs["output_hidden_size"] = kwargs.get("hidden_size", self.defaults["hidden_size"])
        super().__init__(**kwargs)

    @property
    def inputs_to_logits_ratio(self) -> int:
        """Waveform samples per output frame: the product of the convolution strides."""
        return math.prod(self.conv_stride)

    def validate(self) -> None:
        for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                    "num_conv_pos_embeddings", "num_conv_pos_embedding_groups", "classifier_proj_size"):
            positive_int(key, getattr(self, key))
        if self.vocab_size is not None:
            positive_int("vocab_size", self.vocab_size)
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"hidden_size ({self.hidden_size}) must be a multiple of num_attention_heads "
                f"({self.num_attention_heads}) so that every head gets the same width."
            )
        if self.hidden_size % self.num_conv_pos_embedding_groups:
            raise ConfigError(
                f"hidden_size ({self.hidden_size}) must be a multiple of num_conv_pos_embedding_groups "
                f"({self.num_conv_pos_embedding_groups}), the groups of the position convolution."
            )
        layers = []
        for key in ("conv_dim", "conv_kernel", "conv_stride"):
            value = getattr(self, key)
            if (
                not isinstance(value, (list, tuple))
                or not value
                or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value)
            ):
                raise ConfigError(f"{key} must be a non-empty list of positive integers, got {value!r}.")
            layers.append(len(value))
        if len(set(layers)) != 1:
            raise ConfigError(
                "conv_dim, conv_kernel and conv_stride describe the same convolution layers and must have the same "
                f"length; got {layers[0]}, {layers[1]} and {layers[2]}."
            )
        if self.feat_extract_norm not in ("group", "layer"):
            raise ConfigError(
                f"feat_extract_norm must be 'group' (group norm on the first convolution) or 'layer' (layer norm on "
                f"every convolution), got {self.feat_extract_norm!r}."
            )
        for key in ("hidden_act", "feat_extract_activation"):
            name = getattr(self, key)
            if not isinstance(name, str) or name not in ACTIVATIONS:
                raise ConfigError(
                    f"{key}={name!r} is not a known activation; use one of: {', '.join(sorted(ACTIVATIONS))}."
                )
        for key in ("hidden_dropout", "activation_dropout", "attention_dropout", "feat_proj_dropout", "final_dropout",
                    "layerdrop", "mask_time_prob", "mask_feature_prob"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ConfigError(f"{key} must be a probability between 0 and 1, got {value!r}.")
        for key in ("mask_time_length", "mask_feature_length"):
            positive_int(key, getattr(self, key))
        if not self.layer_norm_eps > 0:
            raise ConfigError(f"layer_norm_eps must be positive, got {self.layer_norm_eps!r}.")
        if self.ctc_loss_reduction not in ("sum", "mean", "none"):
            raise ConfigError(f"ctc_loss_reduction must be 'sum', 'mean' or 'none', got {self.ctc_loss_reduction!r}.")


# -- outputs --------------------------------------------------------------------------------------


@dataclass(repr=True)
class Wav2Vec2BaseModelOutput(ModelOutput):
    """``extract_features``: the feature encoder's output after its LayerNorm, before the projection."""

    last_hidden_state: Any = None
    extract_features: Any = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None


@dataclass(repr=True)
class CausalLMOutput(ModelOutput):
    loss: Any = None
    logits: Any = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None


# -- lengths and masks ----------------------------------------------------------------------------


def conv_output_length(length: torch.Tensor | int, config: PretrainedConfig) -> torch.Tensor | int:
    """Frames the feature encoder makes of ``length`` samples (unpadded convolutions, floor division)."""
    for kernel, stride in zip(config.conv_kernel, config.conv_stride):
        length = (length - kernel) // stride + 1
    return length


def min_input_length(config: PretrainedConfig) -> int:
    """The fewest samples that give one frame: the receptive field of the convolution stack."""
    samples = 1
    for kernel, stride in zip(reversed(config.conv_kernel), reversed(config.conv_stride)):
        samples = (samples - 1) * stride + kernel
    return samples


def frame_mask(attention_mask: torch.Tensor, num_frames: int, config: PretrainedConfig) -> torch.Tensor:
    """The sample-level 0/1 mask as a (batch, frames) boolean mask: the first ``conv_output_length(real
    samples)`` frames of each row are real. As in the reference only each row's count of real samples
    matters (padding is assumed to sit at the end)."""
    lengths = conv_output_length(attention_mask.to(torch.long).sum(-1), config)
    return torch.arange(num_frames, device=attention_mask.device)[None, :] < lengths[:, None]


def span_mask(
    batch: int, length: int, prob: float, span: int, min_spans: int, lengths: list[int] | None, device: torch.device
) -> torch.Tensor:
    """SpecAugment's random spans over an axis of ``length``: about ``prob * length / span`` spans of
    ``span`` positions per row (at least ``min_spans``), starts drawn without replacement within each
    row's real length. (batch, length) boolean, True = masked."""
    mask = torch.zeros(batch, length, dtype=torch.bool)
    rounding = torch.rand(()).item()  # probabilistic rounding of the span count, as fairseq does
    for row in range(batch):
        real = length if lengths is None else int(lengths[row])
        count = max(int(prob * real / span + rounding), min_spans)
        count = min(count, length // span, max(real - span + 1, 0))
        if count == 0:
            continue
        starts = torch.randperm(real - span + 1)[:count]
        positions = (starts[:, None] + torch.arange(span)).clamp(max=length - 1).flatten()
        mask[row, positions] = True
    return mask.to(device)


# -- feature encoder ------------------------------------------------------------------------------


class Wav2Vec2ConvLayer(nn.Module):
    """conv -> norm -> activation. ``norm`` is "group" (one group per channel, normalising each channel
    over time), "layer" (over channels, per frame) or None."""

    def __init__(self, config: Wav2Vec2Config, layer_id: int, norm: str | None) -> None:
        super().__init__()
        in_dim = config.conv_dim[layer_id - 1] if layer_id > 0 else 1
        out_dim = config.conv_dim[layer_id]
        self.conv = nn.Conv1d(
            in_dim, out_dim, kernel_size=config.conv_kernel[layer_id], stride=config.conv_stride[layer_id],
            bias=config.conv_bias,
        )
        if norm == "group":
            self.layer_norm = nn.GroupNorm(num_groups=out_dim, num_channels=out_dim, affine=True)
        elif norm == "layer":
            self.layer_norm = nn.LayerNorm(out_dim, elementwise_affine=True)
        self.norm = norm
        self.act = get_activation(config.feat_extract_activation, "feat_extract_activation")

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        hidden = self.conv(hidden)
        if self.norm == "group":
            hidden = self.layer_norm(hidden)
        elif self.norm == "layer":
            hidden = self.layer_norm(hidden.transpose(1, 2)).transpose(1, 2)
        return self.act(hidden)


class Wav2Vec2FeatureEncoder(nn.Module):
    """The convolution stack: (batch, samples) -> (batch, conv_dim[-1], frames)."""

    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__()
        if config.feat_extract_norm == "group":
            norms = ["group"] + [None] * (len(config.conv_dim) - 1)
        else:
            norms = ["layer"] * len(config.conv_dim)
        self.conv_layers = nn.ModuleList(Wav2Vec2ConvLayer(config, i, norm) for i, norm in enumerate(norms))

    def forward(self, input_values: torch.Tensor) -> torch.Tensor:
        hidden = input_values[:, None]
        for layer in self.conv_layers:
            hidden = layer(hidden)
        return hidden


class Wav2Vec2FeatureProjection(nn.Module):
    """LayerNorm (unless the config's ``feat_proj_layer_norm`` is false, a HuBERT option), projection to
    ``hidden_size``, dropout. Returns the projection and the normalised features."""

    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__()
        self.use_layer_norm = getattr(config, "feat_proj_layer_norm", True)
        if self.use_layer_norm:
            self.layer_norm = nn.LayerNorm(config.conv_dim[-1], eps=config.layer_norm_eps)
        self.projection = nn.Linear(config.conv_dim[-1], config.hidden_size)
        self.dropout = config.feat_proj_dropout

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.use_layer_norm:
            features = self.layer_norm(features)
        return F.dropout(self.projection(features), self.dropout, self.training), features


# -- position embedding ---------------------------------------------------------------------------


class WeightNormParameters(nn.Module):
    """The two halves of a weight-normalised kernel, named as torch's ``weight_norm`` parametrization
    stores them: ``original0`` the magnitude g (one value per position along ``dim``), ``original1``
    the direction v (the kernel's shape)."""

    def __init__(self, shape: tuple[int, ...], dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.original0 = nn.Parameter(torch.empty([size if i == dim else 1 for i, size in enumerate(shape)]))
        self.original1 = nn.Parameter(torch.empty(shape))

    def weight(self) -> torch.Tensor:
        """g * v / ||v||, the norm taken over every dimension but ``dim``."""
        return self.original1 * (self.original0 / torch.norm_except_dim(self.original1, 2, self.dim))


class WeightNormConv1d(nn.Module):
    """A 1-D convolution whose kernel is weight-normalised over ``dim``."""

    def __init__(self, channels: int, kernel_size: int, padding: int, groups: int, dim: int = 2) -> None:
        super().__init__()
        self.padding = padding
        self.groups = groups
        self.parametrizations = nn.ModuleDict(
            {"weight": WeightNormParameters((channels, channels // groups, kernel_size), dim)}
        )
        self.bias = nn.Parameter(torch.empty(channels))

    @property
    def weight(self) -> torch.Tensor:
        return self.parametrizations["weight"].weight()

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return F.conv1d(hidden, self.weight, self.bias, padding=self.padding, groups=self.groups)


class Wav2Vec2PositionalConvEmbedding(nn.Module):
    """A wide grouped convolution over time gives every frame its relative position; with an even kernel
    the "same" padding yields one frame too many, and the last is dropped."""

    def __init__(self, config: Wav2Vec2Config, conv: nn.Module | None = None) -> None:
        super().__init__()
        kernel = config.num_conv_pos_embeddings
        self.conv = conv if conv is not None else WeightNormConv1d(
            config.hidden_size, kernel, padding=kernel // 2, groups=config.num_conv_pos_embedding_groups
        )
        self.drop_last = kernel % 2 == 0
        self.act = get_activation(config.feat_extract_activation, "feat_extract_activation")

    def convolve(self, hidden: torch.Tensor) -> torch.Tensor:
        """(batch, channels, frames) -> the activated convolution, same length."""
        hidden = self.conv(hidden)
        if self.drop_last:
            hidden = hidden[:, :, :-1]
        return self.act(hidden)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.convolve(hidden.transpose(1, 2)).transpose(1, 2)


# -- Transformer encoder --------------------------------------------------------------------------


class Wav2Vec2Attention(nn.Module):
    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__()
        width = config.hidden_size
        self.heads = config.num_attention_heads
        self.q_proj = nn.Linear(width, width)
        self.k_proj = nn.Linear(width, width)
        self.v_proj = nn.Linear(width, width)
        self.out_proj = nn.Linear(width, width)
        self.dropout = config.attention_dropout

    def forward(
        self, hidden: torch.Tensor, mask: Mask | None, need_weights: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        context, weights = attend(
            self.q_proj(hidden), self.k_proj(hidden), self.v_proj(hidden), mask, heads=self.heads,
            dropout=self.dropout if self.training else 0.0, need_weights=need_weights,
        )
        return self.out_proj(context), weights


class Wav2Vec2FeedForward(nn.Module):
    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__()
        self.intermediate_dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.output_dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.act = get_activation(config.hidden_act)
        self.activation_dropout = config.activation_dropout
        self.hidden_dropout = config.hidden_dropout

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """The feed-forward output plus ``residual``."""
        hidden = self.act(self.intermediate_dense(hidden))
        hidden = F.dropout(hidden, self.activation_dropout, self.training)
        return F.dropout(self.output_dense(hidden), self.hidden_dropout, self.training) + residual


class Wav2Vec2EncoderLayer(nn.Module):
    """Post-norm (``stable=False``): LN(x + attn(x)), then LN(x + FF(x)).
    Pre-norm (``stable=True``, the "stable layer norm" form): x + attn(LN(x)), then x + FF(LN(x))."""

    def __init__(self, config: Wav2Vec2Config, stable: bool) -> None:
        super().__init__()
        self.stable = stable
        self.attention = Wav2Vec2Attention(config)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.feed_forward = Wav2Vec2FeedForward(config)
        self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = config.hidden_dropout

    def forward(
        self, hidden: torch.Tensor, mask: Mask | None, need_weights: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, weights = self.attention(self.layer_norm(hidden) if self.stable else hidden, mask, need_weights)
        summed = hidden + F.dropout(attended, self.dropout, self.training)
        if self.stable:
            return self.feed_forward(self.final_layer_norm(summed), summed), weights
        hidden = self.layer_norm(summed)
        return self.final_layer_norm(self.feed_forward(hidden, hidden)), weights


class Wav2Vec2Encoder(nn.Module):
    """Position convolution, then the layers. The post-norm form applies ``layer_norm`` before the first
    layer; the stable form after the last. ``hidden_states`` are the first layer's input and every
    layer's output (in the stable form the last of them is taken before the final LayerNorm, as the
    reference reports it)."""

    def __init__(self, config: Wav2Vec2Config, positional: nn.Module) -> None:
        super().__init__()
        self.stable = bool(config.do_stable_layer_norm)
        self.pos_conv_embed = positional
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.layers = nn.ModuleList(Wav2Vec2EncoderLayer(config, self.stable) for _ in range(config.num_hidden_layers))
        self.dropout = config.hidden_dropout
        self.layerdrop = config.layerdrop

    def forward(
        self, hidden: torch.Tensor, frames: torch.Tensor | None, output_attentions: bool, output_hidden_states: bool
    ) -> tuple[torch.Tensor, tuple | None, tuple | None]:
        batch, length, _ = hidden.shape
        if frames is not None:
            # Padded frames enter the position convolution as zeros, so padding never leaks into real frames.
            hidden = hidden.masked_fill(~frames[:, :, None], 0.0)
        mask = Mask.padding(frames, batch, length, hidden.device)
        hidden = hidden + self.pos_conv_embed(hidden)
        if not self.stable:
            hidden = self.layer_norm(hidden)
        hidden = F.dropout(hidden, self.dropout, self.training)
        # LayerDrop skips whole layers while training. A generator, so each draw happens just before
        # its layer runs, in the same order of random draws as the reference.
        kept = (
            layer for layer in self.layers
            if not (self.training and self.layerdrop > 0 and torch.rand(()).item() < self.layerdrop)
        )
        hidden, all_hidden, all_weights = run_layers(kept, hidden, (mask,), output_attentions, output_hidden_states)
        if self.stable:
            hidden = self.layer_norm(hidden)
        return hidden, all_hidden, all_weights


# -- models ---------------------------------------------------------------------------------------


_WEIGHT_NORM = r"(^|\.)pos_conv_embed\.conv\."


class Wav2Vec2PreTrainedModel(PreTrainedModel):
    config_class = Wav2Vec2Config
    base_model_prefix = "wav2vec2"
    # Files written with torch's older weight_norm hook store g and v under these names.
    _conversion = Conversion(renames=(
        (_WEIGHT_NORM + r"weight_g$", r"\1pos_conv_embed.conv.parametrizations.weight.original0"),
        (_WEIGHT_NORM + r"weight_v$", r"\1pos_conv_embed.conv.parametrizations.weight.original1"),
    ))

    def _new_base_model(self, config: Wav2Vec2Config) -> "Wav2Vec2Model":
        return Wav2Vec2Model(config)

    def _init_weights(self, module: nn.Module) -> None:
        """The reference's scheme: the default, plus Kaiming-normal convolutions with uniform biases, a
        uniform feature projection, the position convolution's direction drawn normal with std
        2/sqrt(kernel * channels) (its magnitude the direction's norm, so the kernel starts as v) and
        a zero bias, a uniform SpecAugment vector and equal layer weights."""
        super()._init_weights(module)
        with torch.no_grad():
            if isinstance(module, nn.Conv1d):
                nn.init.kaiming_normal_(module.weight)
                if module.bias is not None:
                    bound = math.sqrt(module.groups / (module.in_channels * module.kernel_size[0]))
                    nn.init.uniform_(module.bias, -bound, bound)
            elif isinstance(module, nn.Linear) and module is self._feature_projection():
                bound = math.sqrt(1 / module.in_features)
                nn.init.uniform_(module.weight, -bound, bound)
                nn.init.uniform_(module.bias, -bound, bound)
            elif isinstance(module, WeightNormConv1d):
                module.bias.zero_()
            elif isinstance(module, WeightNormParameters):
                channels, _, kernel = module.original1.shape
                module.original1.normal_(0.0, 2 * math.sqrt(1 / (kernel * channels)))
                _reset_magnitude(module)
            self._init_own_parameters(module)

    def _init_own_parameters(self, module: nn.Module) -> None:
        """Parameters held directly by the models: the SpecAugment vector and the layer weights."""
        if isinstance(module, Wav2Vec2Model) and module.masked_spec_embed is not None:
            nn.init.uniform_(module.masked_spec_embed)
        if isinstance(module, Wav2Vec2ForSequenceClassification) and module.layer_weights is not None:
            module.layer_weights.fill_(1.0 / module.layer_weights.numel())

    def _feature_projection(self) -> nn.Linear | None:
        base = self.base_model
        projection = getattr(base, "feature_projection", None)
        return projection.projection if projection is not None else None

    def _get_feat_extract_output_lengths(self, input_lengths: torch.Tensor | int) -> torch.Tensor | int:
        """Frames the feature encoder makes of ``input_lengths`` samples (the reference's name)."""
        return conv_output_length(input_lengths, self.config)

    def _check_inputs(self, input_values: Any, attention_mask: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Shape and dtype checks; returns the waveform in the model's dtype and, when some samples are
        padding, the (batch, frames) mask of real frames."""
        if input_values is None:
            raise InputError("input_values is required: a float tensor of shape (batch, samples).")
        if not isinstance(input_values, torch.Tensor):
            raise InputError(
                f"input_values must be a torch.Tensor of shape (batch, samples), got {type(input_values).__name__}; "
                "call the feature extractor with return_tensors='pt'."
            )
        if input_values.dim() != 2:
            hint = "; add a batch dimension with input_values[None]" if input_values.dim() == 1 else ""
            raise InputError(f"input_values must have shape (batch, samples), got {tuple(input_values.shape)}{hint}.")
        if not input_values.is_floating_point():
            raise InputError(
                f"input_values must hold float samples, got dtype {input_values.dtype}; convert integer PCM with "
                "the feature extractor (which scales and normalises it) or to float yourself."
            )
        batch, samples = input_values.shape
        needed = min_input_length(self.config)
        if samples < needed:
            raise InputError(
                f"The input has {samples} samples, but the convolutional feature encoder needs at least {needed} "
                "to produce one frame; pad the audio or use a longer clip."
            )
        dtype = self.base_model.feature_projection.projection.weight.dtype
        if input_values.dtype != dtype:
            input_values = input_values.to(dtype)
        if attention_mask is None:
            return input_values, None
        if not isinstance(attention_mask, torch.Tensor) or tuple(attention_mask.shape) != (batch, samples):
            shape = tuple(attention_mask.shape) if isinstance(attention_mask, torch.Tensor) else type(
                attention_mask
            ).__name__
            raise InputError(
                f"attention_mask must be a tensor of shape ({batch}, {samples}) like input_values, with 1 for real "
                f"samples and 0 for padding; got {shape}."
            )
        real = attention_mask.to(torch.long).sum(-1)
        short = (real < needed).nonzero().flatten().tolist()
        if short:
            raise InputError(
                f"Row {short[0]} of the batch has {int(real[short[0]])} real samples (attention_mask), fewer than "
                f"the {needed} the feature encoder needs for one frame; drop or lengthen that clip."
            )
        frames = conv_output_length(samples, self.config)
        return input_values, frame_mask(attention_mask.to(input_values.device), frames, self.config)

    def freeze_feature_encoder(self) -> None:
        """Stop training the convolutional feature encoder (common when fine-tuning)."""
        for param in self.base_model.feature_extractor.parameters():
            param.requires_grad = False


def _reset_magnitude(module: WeightNormParameters) -> None:
    """g = ||v||, so that the normalised kernel starts equal to v (what registering weight norm does)."""
    module.original0.copy_(torch.norm_except_dim(module.original1, 2, module.dim))


class Wav2Vec2Model(Wav2Vec2PreTrainedModel):
    """Feature encoder, feature projection, (training only) SpecAugment, Transformer encoder."""

    positional_embedding_class: ClassVar[type[nn.Module]] = Wav2Vec2PositionalConvEmbedding

    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__(config)
        if getattr(config, "add_adapter", False):
            raise ConfigError(
                "This config sets add_adapter=True (a convolutional adapter after the encoder, used to warm-start "
                "speech encoder-decoder models), which leanformers does not implement. Set add_adapter=False to use "
                "the encoder alone."
            )
        if getattr(config, "adapter_attn_dim", None) is not None:
            raise ConfigError(
                f"This config sets adapter_attn_dim={config.adapter_attn_dim} (the per-language attention adapters of "
                "MMS checkpoints), which leanformers does not implement."
            )
        self.feature_extractor = Wav2Vec2FeatureEncoder(config)
        self.feature_projection = Wav2Vec2FeatureProjection(config)
        # The learned vector that replaces masked frames exists only when the config masks anything.
        if config.mask_time_prob > 0.0 or config.mask_feature_prob > 0.0:
            self.masked_spec_embed = nn.Parameter(torch.empty(config.hidden_size))
        else:
            self.masked_spec_embed = None
        self.encoder = Wav2Vec2Encoder(config, self.positional_embedding_class(config))

    def _spec_augment(
        self, hidden: torch.Tensor, mask_time_indices: torch.Tensor | None, frames: torch.Tensor | None
    ) -> torch.Tensor:
        """Replace masked frames with ``masked_spec_embed`` and zero masked channels (SpecAugment).
        Random masks only while training; explicit ``mask_time_indices`` always."""
        config = self.config
        if not config.apply_spec_augment:
            return hidden
        batch, length, width = hidden.shape
        if mask_time_indices is None and config.mask_time_prob > 0 and self.training:
            lengths = frames.sum(-1).tolist() if frames is not None else None
            mask_time_indices = span_mask(batch, length, config.mask_time_prob, config.mask_time_length,
                                          config.mask_time_min_masks, lengths, hidden.device)
        if mask_time_indices is not None:
            if self.masked_spec_embed is None:
                raise InputError(
                    "mask_time_indices needs the learned mask vector, which this model lacks because its config has "
                    "mask_time_prob=0 and mask_feature_prob=0."
                )
            if not isinstance(mask_time_indices, torch.Tensor) or tuple(mask_time_indices.shape) != (batch, length):
                raise InputError(f"mask_time_indices must be a boolean tensor of shape ({batch}, {length}), one entry "
                                 "per frame.")
            keep = ~mask_time_indices.to(device=hidden.device, dtype=torch.bool)[:, :, None]
            hidden = torch.where(keep, hidden, self.masked_spec_embed.to(hidden.dtype))
        if config.mask_feature_prob > 0 and self.training:
            channels = span_mask(batch, width, config.mask_feature_prob, config.mask_feature_length,
                                 config.mask_feature_min_masks, None, hidden.device)
            hidden = hidden.masked_fill(channels[:, None, :], 0.0)
        return hidden

    def forward(
        self,
        input_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        mask_time_indices: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> Wav2Vec2BaseModelOutput | tuple:
        output_attentions, output_hidden_states, return_dict = self._resolve(
            output_attentions, output_hidden_states, return_dict
        )
        input_values, frames = self._check_inputs(input_values, attention_mask)
        features = self.feature_extractor(input_values).transpose(1, 2)
        hidden, normed_features = self.feature_projection(features)
        hidden = self._spec_augment(hidden, mask_time_indices, frames)
        hidden, all_hidden, all_weights = self.encoder(hidden, frames, output_attentions, output_hidden_states)
        output = self._output(hidden, normed_features, all_hidden, all_weights)
        return output if return_dict else output.to_tuple()

    def _output(self, hidden, features, all_hidden, all_weights) -> ModelOutput:
        return Wav2Vec2BaseModelOutput(
            last_hidden_state=hidden, extract_features=features, hidden_states=all_hidden, attentions=all_weights
        )


class Wav2Vec2ForSequenceClassification(Wav2Vec2PreTrainedModel):
    """Utterance classification: project every frame, mean-pool over the real frames, classify.
    With ``use_weighted_layer_sum`` the frames are a softmax-weighted sum of every layer's hidden states."""

    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__(config)
        setattr(self, self.base_model_prefix, self._new_base_model(config))
        if config.use_weighted_layer_sum:
            layers = config.num_hidden_layers + 1  # the encoder's input and every layer's output
            self.layer_weights = nn.Parameter(torch.full((layers,), 1.0 / layers))
        else:
            self.layer_weights = None
        self.projector = nn.Linear(config.hidden_size, config.classifier_proj_size)
        self.classifier = nn.Linear(config.classifier_proj_size, config.num_labels)

    def freeze_base_model(self) -> None:
        """Train only the head."""
        for param in self.base_model.parameters():
            param.requires_grad = False

    def forward(
        self,
        input_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        *,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> SequenceClassifierOutput | tuple:
        output_attentions, output_hidden_states, return_dict = self._resolve(
            output_attentions, output_hidden_states, return_dict
        )
        weighted = self.layer_weights is not None
        outputs = self.base_model(
            input_values, attention_mask, output_attentions=output_attentions,
            output_hidden_states=output_hidden_states or weighted, return_dict=True,
        )
        if weighted:
            stacked = torch.stack(outputs.hidden_states, dim=1)
            weights = torch.softmax(self.layer_weights, dim=-1)
            hidden = (stacked * weights.view(-1, 1, 1)).sum(dim=1)
        else:
            hidden = outputs.last_hidden_state
        hidden = self.projector(hidden)
        if attention_mask is None:
            pooled = hidden.mean(dim=1)
        else:
            frames = frame_mask(attention_mask.to(hidden.device), hidden.shape[1], self.config)
            hidden = hidden.masked_fill(~frames[:, :, None], 0.0)
            pooled = hidden.sum(dim=1) / frames.sum(dim=1).view(-1, 1)
        logits = self.classifier(pooled)
        loss = None
        if labels is not None:
            # Always single-label cross-entropy, whatever config.problem_type says (as the reference).
            loss = F.cross_entropy(logits.view(-1, self.config.num_labels), labels.to(logits.device).view(-1))
        output = SequenceClassifierOutput(
            loss=loss,
            logits=logits,
            hidden_states=outputs.hidden_states if output_hidden_states else None,
            attentions=outputs.attentions,
        )
        return output if return_dict else output.to_tuple()


class Wav2Vec2ForCTC(Wav2Vec2PreTrainedModel):
    """Speech recognition: per-frame logits over the vocabulary, trained with CTC (the pad token is the blank)."""

    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__(config)
        if config.vocab_size is None:
            raise ConfigError(
                f"{type(self).__name__} needs config.vocab_size for its output layer; pass vocab_size=... "
                "(the size of the CTC tokenizer's vocabulary)."
            )
        setattr(self, self.base_model_prefix, self._new_base_model(config))
        self.dropout = config.final_dropout
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size)

    def freeze_base_model(self) -> None:
        """Train only the output layer."""
        for param in self.base_model.parameters():
            param.requires_grad = False

    def forward(
        self,
        input_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        *,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> CausalLMOutput | tuple:
        return_dict = self.config.use_return_dict if return_dict is None else return_dict
        if labels is not None:
            self._check_labels(labels)
        outputs = self.base_model(
            input_values, attention_mask, output_attentions=output_attentions,
            output_hidden_states=output_hidden_states, return_dict=True,
        )
        logits = self.lm_head(F.dropout(outputs.last_hidden_state, self.dropout, self.training))
        loss = None
        if labels is not None:
            samples = (
                attention_mask.to(torch.long).sum(-1)
                if attention_mask is not None
                else torch.full((logits.shape[0],), input_values.shape[-1], dtype=torch.long)
            )
            loss = ctc_loss(logits, labels, conv_output_length(samples, self.config).to(logits.device), self.config)
        output = CausalLMOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return output if return_dict else output.to_tuple()

    def _check_labels(self, labels: Any) -> None:
        if not isinstance(labels, torch.Tensor) or labels.is_floating_point() or labels.dim() != 2:
            raise InputError(
                "labels must be an integer tensor of shape (batch, target_length): token ids, padded with -100."
            )
        vocab = self.config.vocab_size
        if labels.numel() and int(labels.max()) >= vocab:
            raise InputError(f"labels hold id {int(labels.max())}, but the vocabulary has {vocab} entries.")
        blank = self.config.pad_token_id
        if isinstance(blank, bool) or not isinstance(blank, int) or not 0 <= blank < vocab:
            raise ConfigError(
                f"CTC uses pad_token_id as its blank label, so it must be a token id in [0, {vocab}); "
                f"the config has {blank!r}."
            )


def ctc_loss(
    logits: torch.Tensor, labels: torch.Tensor, frame_lengths: torch.Tensor, config: PretrainedConfig
) -> torch.Tensor:
    """CTC over log-softmax in float32. Label positions holding -100 or the blank (pad) id are padding."""
    blank = config.pad_token_id
    labels = labels.to(logits.device)
    real = (labels != -100) & (labels != blank)
    log_probs = F.log_softmax(logits, dim=-1, dtype=torch.float32).transpose(0, 1)
    with torch.backends.cudnn.flags(enabled=False):
        return F.ctc_loss(
            log_probs,
            labels.masked_select(real),
            frame_lengths,
            real.sum(-1),
            blank=blank,
            reduction=config.ctc_loss_reduction,
            zero_infinity=config.ctc_zero_infinity,
        )


__all__ = [
    "Wav2Vec2Config",
    "Wav2Vec2Model",
    "Wav2Vec2ForSequenceClassification",
    "Wav2Vec2ForCTC",
    "Wav2Vec2BaseModelOutput",
    "CausalLMOutput",
]
