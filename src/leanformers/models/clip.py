"""CLIP (Radford et al., 2021): a text tower and an image tower trained so that matching captions
and images land close together; the cosine similarities, scaled by a learned temperature, are the
logits of a contrastive loss over the batch.

Module paths equal the keys of the files the reference library reads and writes
(``text_model.embeddings.token_embedding.weight``, ``vision_model.pre_layrnorm.weight`` (sic),
``visual_projection.weight``, ``logit_scale``). A tower model (``CLIPTextModel``) holds its tower
under the same name as the full model does, so it loads from a full CLIP checkpoint.

The configs here are composite: ``CLIPConfig`` nests a ``text_config`` and a ``vision_config``
(``CompositeConfig``), and a tower's config read from a full checkpoint's config.json is taken from
its nested entry (``TowerConfig``). SigLIP shares these pieces and the encoder layer.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..configuration import PretrainedConfig
from ..errors import ConfigError, InputError
from ..modeling.activations import get_activation
from ..modeling.attention import Mask, attend, run_layers
from ..modeling.base import PreTrainedModel
from ..modeling.checks import (
    check_pixel_values,
    check_positions,
    check_text_inputs,
    embedding_lookup,
    positive_int,
    validate_encoder_config,
)
from ..modeling.losses import sequence_classification_loss
from ..modeling.outputs import (
    BaseModelOutputWithPooling,
    CLIPOutput,
    CLIPTextModelOutput,
    CLIPVisionModelOutput,
    ImageClassifierOutput,
)

# -- configs ------------------------------------------------------------------------------------


class TowerConfig(PretrainedConfig):
    """The config of one tower of a two-tower model. Read from a full model's config.json (whose
    ``model_type`` is ``composite_type``), it is that file's ``base_config_key`` entry."""

    composite_type: ClassVar[str] = ""
    base_config_key: ClassVar[str] = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any], **overrides: Any) -> PretrainedConfig:
        if isinstance(data, dict) and data.get("model_type") == cls.composite_type:
            nested = data.get(cls.base_config_key)
            if not isinstance(nested, dict):
                raise ConfigError(
                    f"This {cls.composite_type} config has no {cls.base_config_key!r} object to build a "
                    f"{cls.__name__} from; the file is incomplete."
                )
            data = nested
        return super().from_dict(data, **overrides)


class CompositeConfig(PretrainedConfig):
    """A config holding sub-configs (``sub_configs``: key -> config class). Each sub-config is given
    as a config, a dict of its keys, or None for its defaults, and is written as a nested object."""

    sub_configs: ClassVar[dict[str, type[PretrainedConfig]]] = {}

    def __init__(self, **kwargs: Any) -> None:
        for key, config_class in self.sub_configs.items():
            kwargs[key] = self._sub_config(key, config_class, kwargs.get(key))
        super().__init__(**kwargs)

    @staticmethod
    def _sub_config(key: str, config_class: type[PretrainedConfig], value: Any) -> PretrainedConfig:
        if value is None:
            return config_class()
        if isinstance(value, config_class):
            return value
        if isinstance(value, dict):
            try:
                return config_class.from_dict(value)
            except ConfigError as exc:
                raise ConfigError(f"{key}: {exc}") from exc
        raise ConfigError(
            f"{key} must be a {config_class.__name__}, a dict of its settings or None (its defaults), "
            f"got {type(value).__name__}."
        )

    def __setattr__(self, key: str, value: Any) -> None:
        if key in self.sub_configs:
            value = self._sub_config(key, self.sub_configs[key], value)
        super().__setattr__(key, value)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        for key in self.sub_configs:
            nested = self._values[key].to_dict()
            nested.pop("_name_or_path", None)
            out[key] = nested
        return out


def validate_tower(config: PretrainedConfig, text: bool) -> None:
    """The invariants both CLIP and SigLIP towers share."""
    sizes = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
    if text:
        validate_encoder_config(config, (*sizes, "vocab_size", "max_position_embeddings"),
                                ("attention_dropout",), "hidden_act")
    else:
        for key in (*sizes, "num_channels"):
            positive_int(key, getattr(config, key))
        if config.hidden_size % config.num_attention_heads:
            raise ConfigError(
                f"hidden_size ({config.hidden_size}) must be a multiple of num_attention_heads "
                f"({config.num_attention_heads}) so that every head gets the same width."
            )
        dropout = config.attention_dropout
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout <= 1:
            raise ConfigError(f"attention_dropout must be a probability between 0 and 1, got {dropout!r}.")
        get_activation(config.hidden_act, "hidden_act")
        # The reference's towers take one side length: square images and patches.
        image, patch = positive_int("image_size", config.image_size), positive_int("patch_size", config.patch_size)
        if patch > image:
            raise ConfigError(f"patch_size ({patch}) is larger than image_size ({image}).")
    eps = config.layer_norm_eps
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
        raise ConfigError(f"layer_norm_eps must be a positive number, got {eps!r}.")


class CLIPTextConfig(TowerConfig):
    model_type: ClassVar[str] = "clip_text_model"
    composite_type: ClassVar[str] = "clip"
    base_config_key: ClassVar[str] = "text_config"
    defaults: ClassVar[dict[str, Any]] = {
        "vocab_size": 49408,
        "hidden_size": 512,
        "intermediate_size": 2048,
        "projection_dim": 512,
        "num_hidden_layers": 12,
        "num_attention_heads": 8,
        "max_position_embeddings": 77,
        "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-5,
        "attention_dropout": 0.0,
        "initializer_range": 0.02,
        "initializer_factor": 1.0,
        "pad_token_id": 1,
        "bos_token_id": 49406,
        "eos_token_id": 49407,
    }

    def validate(self) -> None:
        validate_tower(self, text=True)
        positive_int("projection_dim", self.projection_dim)
        eos = self.eos_token_id
        if eos is not None and (isinstance(eos, bool) or not isinstance(eos, int)):
            raise ConfigError(f"eos_token_id must be one token id (the text tower pools at it), got {eos!r}.")


class CLIPVisionConfig(TowerConfig):
    model_type: ClassVar[str] = "clip_vision_model"
    composite_type: ClassVar[str] = "clip"
    base_config_key: ClassVar[str] = "vision_config"
    defaults: ClassVar[dict[str, Any]] = {
        "hidden_size": 768,
        "intermediate_size": 3072,
        "projection_dim": 512,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "num_channels": 3,
        "image_size": 224,
        "patch_size": 32,
        "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-5,
        "attention_dropout": 0.0,
        "initializer_range": 0.02,
        "initializer_factor": 1.0,
    }

    def validate(self) -> None:
        validate_tower(self, text=False)
        positive_int("projection_dim", self.projection_dim)


class CLIPConfig(CompositeConfig):
    model_type: ClassVar[str] = "clip"
    sub_configs: ClassVar[dict[str, type[PretrainedConfig]]] = {
        "text_config": CLIPTextConfig,
        "vision_config": CLIPVisionConfig,
    }
    defaults: ClassVar[dict[str, Any]] = {
        "projection_dim": 512,
        "logit_scale_init_value": 2.6592,
        "initializer_factor": 1.0,
    }

    def __init__(self, **kwargs: Any) -> None:
        # Old files carry ``text_config_dict`` / ``vision_config_dict``: the reference builds a full
        # tower config from each and lets every one of its values (defaults too) win over ``*_config``.
        for key, config_class in self.sub_configs.items():
            legacy = kwargs.pop(f"{key}_dict", None)
            if legacy is None:
                continue
            current = kwargs.get(key)
            current = current.to_dict() if isinstance(current, PretrainedConfig) else dict(current or {})
            full = config_class.from_dict(legacy).to_dict()
            full.pop("_name_or_path", None)
            kwargs[key] = {**current, **full}
        super().__init__(**kwargs)

    def validate(self) -> None:
        positive_int("projection_dim", self.projection_dim)
        scale = self.logit_scale_init_value
        if isinstance(scale, bool) or not isinstance(scale, (int, float)):
            raise ConfigError(f"logit_scale_init_value must be a number, got {scale!r}.")


# -- modules shared by CLIP and SigLIP --------------------------------------------------------


class CLIPAttention(nn.Module):
    def __init__(self, config: PretrainedConfig) -> None:
        super().__init__()
        width = config.hidden_size
        self.heads = config.num_attention_heads
        self.dropout = config.attention_dropout
        self.k_proj = nn.Linear(width, width)
        self.v_proj = nn.Linear(width, width)
        self.q_proj = nn.Linear(width, width)
        self.out_proj = nn.Linear(width, width)

    def forward(
        self, hidden: torch.Tensor, mask: Mask | None, need_weights: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        context, weights = attend(
            self.q_proj(hidden), self.k_proj(hidden), self.v_proj(hidden), mask, heads=self.heads,
            dropout=self.dropout if self.training else 0.0, need_weights=need_weights,
        )
        return self.out_proj(context), weights


class CLIPMLP(nn.Module):
    def __init__(self, config: PretrainedConfig) -> None:
        super().__init__()
        self.activation_fn = get_activation(config.hidden_act)
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.activation_fn(self.fc1(hidden)))


class CLIPEncoderLayer(nn.Module):
    """Pre-norm block: x + attention(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, config: PretrainedConfig) -> None:
        super().__init__()
        self.self_attn = CLIPAttention(config)
        self.layer_norm1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = CLIPMLP(config)
        self.layer_norm2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(
        self, hidden: torch.Tensor, mask: Mask | None, need_weights: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, weights = self.self_attn(self.layer_norm1(hidden), mask, need_weights)
        hidden = hidden + attended
        return hidden + self.mlp(self.layer_norm2(hidden)), weights

    def first_position(self, hidden: torch.Tensor) -> torch.Tensor:
        """The layer's (unmasked) output at position 0 alone, (batch, 1, hidden): that one query
        attends over every key, and the output projection and MLP run on that one row."""
        attention, normed = self.self_attn, self.layer_norm1(hidden)
        context, _ = attend(attention.q_proj(normed[:, :1]), attention.k_proj(normed), attention.v_proj(normed),
                            None, heads=attention.heads)
        first = hidden[:, :1] + attention.out_proj(context)
        return first + self.mlp(self.layer_norm2(first))


class CLIPEncoder(nn.Module):
    def __init__(self, config: PretrainedConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(CLIPEncoderLayer(config) for _ in range(config.num_hidden_layers))

    def forward(
        self, hidden: torch.Tensor, mask: Mask | None, output_attentions: bool, output_hidden_states: bool
    ) -> tuple[torch.Tensor, tuple | None, tuple | None]:
        """(last hidden state, the input and every layer's output, every layer's attention weights)."""
        return run_layers(self.layers, hidden, (mask,), output_attentions, output_hidden_states)


class CLIPTextEmbeddings(nn.Module):
    def __init__(self, config: PretrainedConfig) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position_embedding = nn.Embedding(config.max_position_embeddings, config.hidden_size)

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor | None) -> torch.Tensor:
        if position_ids is None:
            position_ids = torch.arange(input_ids.shape[1], device=input_ids.device)[None]
        tokens = embedding_lookup(self.token_embedding, input_ids, "input_ids")
        return tokens + embedding_lookup(self.position_embedding, position_ids, "position_ids")


def check_text(config: PretrainedConfig, input_ids: Any, position_ids: Any) -> None:
    """input_ids (batch, seq) of integers within the position table; position_ids like them."""
    if input_ids is None:
        raise InputError("input_ids is required: a (batch, sequence) tensor of token ids from the tokenizer.")
    batch, seq = check_text_inputs(input_ids, None, config.hidden_size, config.max_position_embeddings)
    check_positions("position_ids", position_ids, batch, seq)


def check_image(pixel_values: Any, config: PretrainedConfig, dtype: torch.dtype, interpolate: bool) -> torch.Tensor:
    """Pixels of the configured channels, at the trained size unless ``interpolate`` (then at least
    one patch); returned in the model's dtype, as the reference casts them."""
    size = config.image_size
    pixel_values = check_pixel_values(pixel_values, config.num_channels, dtype, size=(size, size), cast_integers=True)
    height, width = pixel_values.shape[2:]
    patch = config.patch_size
    if interpolate:
        if height < patch or width < patch:
            raise InputError(f"The image ({height}x{width}) is smaller than one {patch}x{patch} patch.")
    elif (height, width) != (size, size):
        raise InputError(
            f"The image is {height}x{width} (height x width), but this model was trained on {size}x{size} "
            "images: resize it, or pass interpolate_pos_encoding=True to resample the position embeddings."
        )
    return pixel_values


def resample_positions(table: torch.Tensor, height: int, width: int, patch: int) -> torch.Tensor:
    """A square grid of position embeddings (grid*grid, dim) resampled bicubically (half-pixel
    centres) to the patch grid of a height x width image; (1, patches, dim)."""
    side = int(table.shape[0] ** 0.5)
    grid = table.reshape(1, side, side, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(height // patch, width // patch), mode="bicubic", align_corners=False)
    return grid.permute(0, 2, 3, 1).reshape(1, -1, table.shape[-1])


# -- CLIP towers ------------------------------------------------------------------------------


class TextTransformer(nn.Module):
    """Token + position embeddings, the encoder (causal where ``causal``), a final LayerNorm; the
    pooled output is what ``pool`` takes from the final states."""

    causal: ClassVar[bool]

    def __init__(self, config: PretrainedConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = CLIPTextEmbeddings(config)
        self.encoder = CLIPEncoder(config)
        self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def pool(self, hidden: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(
        self, input_ids: Any, attention_mask: torch.Tensor | None, position_ids: torch.Tensor | None,
        output_attentions: bool, output_hidden_states: bool,
    ) -> BaseModelOutputWithPooling:
        check_text(self.config, input_ids, position_ids)
        hidden = self.embeddings(input_ids, position_ids)
        mask = Mask.padding(attention_mask, *input_ids.shape, hidden.device, causal=self.causal)
        hidden, all_hidden, all_weights = self.encoder(hidden, mask, output_attentions, output_hidden_states)
        hidden = self.final_layer_norm(hidden)
        return BaseModelOutputWithPooling(
            last_hidden_state=hidden,
            pooler_output=self.pool(hidden, input_ids),
            hidden_states=all_hidden,
            attentions=all_weights,
        )


class CLIPTextTransformer(TextTransformer):
    """A causal text tower pooled at the end-of-text token."""

    causal = True

    def pool(self, hidden: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), self.eos_positions(input_ids)]

    def eos_positions(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Where each row is pooled. Checkpoints whose config says eos_token_id 2 predate the real id
        being saved; their end-of-text token has the highest id of the vocabulary, so the reference
        takes the highest id's position. Otherwise the first occurrence of eos_token_id (position 0
        when a row has none, as the reference's argmax gives)."""
        if self.config.eos_token_id is None:
            raise ConfigError(
                "The text tower pools at the end-of-text token, but its config has eos_token_id=None; set "
                "text_config.eos_token_id to the tokenizer's end-of-text id."
            )
        ids = input_ids.to(torch.int)
        if self.config.eos_token_id == 2:
            return ids.argmax(dim=-1)
        return (ids == self.config.eos_token_id).int().argmax(dim=-1)


class CLIPVisionEmbeddings(nn.Module):
    """A learned class token in front of the patch embeddings, plus one position embedding each."""

    def __init__(self, config: CLIPVisionConfig) -> None:
        super().__init__()
        self.patch_size = config.patch_size
        self.class_embedding = nn.Parameter(torch.empty(config.hidden_size))
        self.patch_embedding = nn.Conv2d(
            config.num_channels, config.hidden_size, kernel_size=self.patch_size, stride=self.patch_size, bias=False
        )
        self.num_positions = (config.image_size // self.patch_size) ** 2 + 1
        self.position_embedding = nn.Embedding(self.num_positions, config.hidden_size)

    def forward(self, pixel_values: torch.Tensor, interpolate_pos_encoding: bool) -> torch.Tensor:
        batch, _, height, width = pixel_values.shape
        patches = self.patch_embedding(pixel_values).flatten(2).transpose(1, 2)
        embeddings = torch.cat((self.class_embedding.expand(batch, 1, -1), patches), dim=1)
        table = self.position_embedding.weight
        # The reference keeps the table as it is for a square image of the trained patch count.
        if interpolate_pos_encoding and not (embeddings.shape[1] == self.num_positions and height == width):
            patch_positions = resample_positions(table[1:], height, width, self.patch_size)
            return embeddings + torch.cat((table[None, :1], patch_positions), dim=1)
        return embeddings + table[None]


class CLIPVisionTransformer(nn.Module):
    """Embeddings, a LayerNorm before the encoder, the encoder; pooled: the class token, normalised."""

    def __init__(self, config: CLIPVisionConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = CLIPVisionEmbeddings(config)
        self.pre_layrnorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.encoder = CLIPEncoder(config)
        self.post_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(
        self, pixel_values: Any, interpolate_pos_encoding: bool, output_attentions: bool, output_hidden_states: bool,
        pooled_only: bool = False,
    ) -> BaseModelOutputWithPooling:
        """With ``pooled_only`` (and no attentions or hidden states asked for), the last layer runs for
        the class token alone, the one position the pooled output reads: ``last_hidden_state`` is None."""
        dtype = self.embeddings.patch_embedding.weight.dtype
        pixel_values = check_image(pixel_values, self.config, dtype, interpolate_pos_encoding)
        hidden = self.pre_layrnorm(self.embeddings(pixel_values, interpolate_pos_encoding))
        if pooled_only and not (output_attentions or output_hidden_states):
            *layers, last = self.encoder.layers
            hidden, _, _ = run_layers(layers, hidden, (None,), False, False)
            return BaseModelOutputWithPooling(pooler_output=self.post_layernorm(last.first_position(hidden)[:, 0]))
        hidden, all_hidden, all_weights = self.encoder(hidden, None, output_attentions, output_hidden_states)
        return BaseModelOutputWithPooling(
            last_hidden_state=hidden,
            pooler_output=self.post_layernorm(hidden[:, 0]),
            hidden_states=all_hidden,
            attentions=all_weights,
        )


# -- models -------------------------------------------------------------------------------------


def normalized(x: torch.Tensor) -> torch.Tensor:
    """x / its L2 norm over the last dimension (the reference's order of operations)."""
    return x / x.pow(2).sum(dim=-1, keepdim=True).pow(0.5)


def contrastive_loss(logits_per_text: torch.Tensor) -> torch.Tensor:
    """Cross-entropy both ways over the batch, where text i matches image i."""
    if logits_per_text.shape[0] != logits_per_text.shape[1]:
        raise InputError(
            f"return_loss needs as many texts as images (pair i is text i with image i), got "
            f"{logits_per_text.shape[0]} texts and {logits_per_text.shape[1]} images."
        )
    targets = torch.arange(logits_per_text.shape[0], device=logits_per_text.device)
    return (F.cross_entropy(logits_per_text, targets) + F.cross_entropy(logits_per_text.t(), targets)) / 2.0


def module_name(model: nn.Module, module: nn.Module) -> str:
    """``module``'s path in ``model`` ("" for the model itself). The initialisation of a layer
    depends on where it sits (a tower's attention projection, a projection head), and a layer is
    initialised on its own when it alone was missing from a checkpoint."""
    names = model.__dict__.get("_module_names")
    if names is None or module not in names:
        names = {child: name for name, child in model.named_modules()}
        model.__dict__["_module_names"] = names
    return names[module]


# Older files carry the embeddings' position-id buffers, which positions computed on the fly replace.
POSITION_IDS = r"(^|\.)embeddings\.position_ids$"


class CLIPPreTrainedModel(PreTrainedModel):
    config_class = CLIPConfig
    base_model_prefix = "clip"
    _ignore_on_load = [POSITION_IDS]

    def _init_weights(self, module: nn.Module) -> None:
        """The default scheme, then the reference's CLIP scheme: normals whose standard deviations
        scale with the tower's width and depth and with ``initializer_factor``."""
        super()._init_weights(module)
        factor = self.config.initializer_factor
        name = module_name(self, module)
        with torch.no_grad():
            if isinstance(module, CLIPVisionEmbeddings):
                module.class_embedding.normal_(0.0, module.class_embedding.shape[0] ** -0.5 * factor)
            elif isinstance(module, CLIPModel):
                module.logit_scale.fill_(self.config.logit_scale_init_value)
            elif isinstance(module, (nn.Linear, nn.Conv2d, nn.Embedding)):
                module.weight.normal_(0.0, self._weight_std(name, module, factor))

    def _weight_std(self, name: str, module: nn.Module, factor: float) -> float:
        config = self.config
        if isinstance(config, CLIPConfig):
            tower = config.text_config if name.startswith("text_model.") else config.vision_config
        else:
            tower = config
        role = name.rpartition(".")[2]
        width = tower.hidden_size
        in_proj = width**-0.5 * (2 * tower.num_hidden_layers) ** -0.5 * factor
        stds = {
            "token_embedding": 0.02 * factor,
            # Text positions use a fixed 0.02, image positions the vision tower's initializer_range.
            "position_embedding": (0.02 if isinstance(tower, CLIPTextConfig) else tower.initializer_range) * factor,
            "patch_embedding": tower.initializer_range * factor,
            "q_proj": in_proj, "k_proj": in_proj, "v_proj": in_proj, "fc2": in_proj,
            "out_proj": width**-0.5 * factor,
            "fc1": (2 * width) ** -0.5 * factor,
            "text_projection": width**-0.5 * factor,
            "visual_projection": width**-0.5 * factor,
            "classifier": width**-0.5 * factor,
        }
        return stds.get(role, getattr(config, "initializer_range", 0.02))


class DualEncoder:
    """A model of both towers (``text_model``, ``vision_model``): each pooled output, projected by
    ``project_text`` / ``project_image``, is an embedding; normalised embeddings are compared by
    ``similarity``. CLIP and SigLIP differ only in those, in ``pair_loss`` and in ``output_class``."""

    output_class: ClassVar[type]

    def get_input_embeddings(self) -> nn.Embedding:
        return self.text_model.embeddings.token_embedding

    def project_text(self, pooled: torch.Tensor) -> torch.Tensor:
        return pooled

    def project_image(self, pooled: torch.Tensor) -> torch.Tensor:
        return pooled

    def check_towers(self) -> None:
        """Raise ConfigError where the two towers' embeddings cannot be compared."""

    def similarity(self, text_embeds: torch.Tensor, image_embeds: torch.Tensor) -> torch.Tensor:
        """The (texts, images) logits of normalised embeddings."""
        raise NotImplementedError

    def pair_loss(self, logits_per_text: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def get_text_features(
        self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None, output_attentions: bool | None = None,
        output_hidden_states: bool | None = None, return_dict: bool | None = None,
    ) -> BaseModelOutputWithPooling | tuple:
        """The text tower's output; ``pooler_output`` is the text embedding (projected, unnormalised)."""
        output_attentions, output_hidden_states, return_dict = self._resolve(
            output_attentions, output_hidden_states, return_dict
        )
        out = self.text_model(input_ids, attention_mask, position_ids, output_attentions, output_hidden_states)
        out.pooler_output = self.project_text(out.pooler_output)
        return out if return_dict else out.to_tuple()

    def get_image_features(
        self, pixel_values: torch.Tensor | None = None, interpolate_pos_encoding: bool = False,
        output_attentions: bool | None = None, output_hidden_states: bool | None = None,
        return_dict: bool | None = None, pooled_only: bool = False,
    ) -> BaseModelOutputWithPooling | tuple:
        """The vision tower's output; ``pooler_output`` is the image embedding (projected, unnormalised).
        ``pooled_only`` (leanformers' own option, for callers that read the embeddings alone) lets a
        tower skip the work no pooled output needs, leaving ``last_hidden_state`` None where it does."""
        output_attentions, output_hidden_states, return_dict = self._resolve(
            output_attentions, output_hidden_states, return_dict
        )
        out = self.vision_model(pixel_values, bool(interpolate_pos_encoding), output_attentions, output_hidden_states,
                                pooled_only=pooled_only)
        out.pooler_output = self.project_image(out.pooler_output)
        return out if return_dict else out.to_tuple()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        return_loss: bool | None = None,
        interpolate_pos_encoding: bool = False,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> Any:
        output_attentions, output_hidden_states, return_dict = self._resolve(
            output_attentions, output_hidden_states, return_dict
        )
        self.check_towers()
        vision = self.get_image_features(pixel_values, interpolate_pos_encoding, output_attentions,
                                         output_hidden_states, return_dict=True)
        text = self.get_text_features(input_ids, attention_mask, position_ids, output_attentions,
                                      output_hidden_states, return_dict=True)
        image_embeds, text_embeds = normalized(vision.pooler_output), normalized(text.pooler_output)
        logits_per_text = self.similarity(text_embeds, image_embeds)
        output = self.output_class(
            loss=self.pair_loss(logits_per_text) if return_loss else None,
            logits_per_image=logits_per_text.t(),
            logits_per_text=logits_per_text,
            text_embeds=text_embeds,
            image_embeds=image_embeds,
            text_model_output=text,
            vision_model_output=vision,
        )
        return output if return_dict else output.to_tuple()


class CLIPModel(DualEncoder, CLIPPreTrainedModel):
    """Both towers, each projected to ``projection_dim``; similarity logits and the contrastive loss."""

    output_class = CLIPOutput

    def __init__(self, config: CLIPConfig) -> None:
        super().__init__(config)
        text, vision = config.text_config, config.vision_config
        self.text_model = CLIPTextTransformer(text)
        self.vision_model = CLIPVisionTransformer(vision)
        self.visual_projection = nn.Linear(vision.hidden_size, config.projection_dim, bias=False)
        self.text_projection = nn.Linear(text.hidden_size, config.projection_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(float(config.logit_scale_init_value)))

    def project_text(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.text_projection(pooled)

    def project_image(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.visual_projection(pooled)

    def similarity(self, text_embeds: torch.Tensor, image_embeds: torch.Tensor) -> torch.Tensor:
        return (text_embeds @ image_embeds.t()) * self.logit_scale.exp()

    def pair_loss(self, logits_per_text: torch.Tensor) -> torch.Tensor:
        return contrastive_loss(logits_per_text)


# A tower model loads from a full checkpoint: the other tower and the projections it lacks are expected.
_TEXT_ONLY_EXTRA = [POSITION_IDS, r"^vision_model\.", r"^visual_projection\.", r"^logit_scale$"]
_VISION_ONLY_EXTRA = [POSITION_IDS, r"^text_model\.", r"^text_projection\.", r"^logit_scale$"]


class TextTower:
    """A model that is the text tower alone (``text_model``, a ``tower`` built from its config; CLIP's
    and SigLIP's towers read the same inputs): ``pooler_output`` is the pooled text state."""

    tower: ClassVar[type[nn.Module]]
    base_model_prefix = "text_model"

    def __init__(self, config: PretrainedConfig) -> None:
        super().__init__(config)
        self.text_model = self.tower(config)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.text_model.embeddings.token_embedding

    def _run_tower(self, input_ids, attention_mask, position_ids, output_attentions, output_hidden_states,
                   return_dict) -> tuple[BaseModelOutputWithPooling, bool]:
        output_attentions, output_hidden_states, return_dict = self._resolve(
            output_attentions, output_hidden_states, return_dict
        )
        return self.text_model(input_ids, attention_mask, position_ids, output_attentions, output_hidden_states), \
            return_dict

    def forward(
        self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None, output_attentions: bool | None = None,
        output_hidden_states: bool | None = None, return_dict: bool | None = None,
    ) -> BaseModelOutputWithPooling | tuple:
        out, return_dict = self._run_tower(
            input_ids, attention_mask, position_ids, output_attentions, output_hidden_states, return_dict
        )
        return out if return_dict else out.to_tuple()


class VisionTower:
    """A model that is the vision tower alone (``vision_model``, a ``tower`` built from its config)."""

    tower: ClassVar[type[nn.Module]]
    base_model_prefix = "vision_model"

    def __init__(self, config: PretrainedConfig) -> None:
        super().__init__(config)
        self.vision_model = self.tower(config)

    def get_input_embeddings(self) -> nn.Conv2d:
        return self.vision_model.embeddings.patch_embedding

    def _run_tower(self, pixel_values, interpolate_pos_encoding, output_attentions, output_hidden_states,
                   return_dict) -> tuple[BaseModelOutputWithPooling, bool]:
        output_attentions, output_hidden_states, return_dict = self._resolve(
            output_attentions, output_hidden_states, return_dict
        )
        out = self.vision_model(pixel_values, bool(interpolate_pos_encoding), output_attentions, output_hidden_states)
        return out, return_dict

    def forward(
        self, pixel_values: torch.Tensor | None = None, interpolate_pos_encoding: bool = False,
        output_attentions: bool | None = None, output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> BaseModelOutputWithPooling | tuple:
        out, return_dict = self._run_tower(
            pixel_values, interpolate_pos_encoding, output_attentions, output_hidden_states, return_dict
        )
        return out if return_dict else out.to_tuple()


class CLIPTextModel(TextTower, CLIPPreTrainedModel):
    """The text tower alone: last hidden state and the end-of-text token's state (``pooler_output``)."""

    config_class = CLIPTextConfig
    tower = CLIPTextTransformer
    _ignore_on_load = [*_TEXT_ONLY_EXTRA, r"^text_projection\."]


class CLIPVisionModel(VisionTower, CLIPPreTrainedModel):
    """The vision tower alone: last hidden state and the normalised class token (``pooler_output``)."""

    config_class = CLIPVisionConfig
    tower = CLIPVisionTransformer
    _ignore_on_load = [*_VISION_ONLY_EXTRA, r"^visual_projection\."]


class CLIPTextModelWithProjection(CLIPTextModel):
    """The text tower and its projection: ``text_embeds`` (unnormalised), as CLIPModel computes them."""

    _ignore_on_load = _TEXT_ONLY_EXTRA

    def __init__(self, config: CLIPTextConfig) -> None:
        super().__init__(config)
        self.text_projection = nn.Linear(config.hidden_size, config.projection_dim, bias=False)

    def forward(
        self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None, output_attentions: bool | None = None,
        output_hidden_states: bool | None = None, return_dict: bool | None = None,
    ) -> CLIPTextModelOutput | tuple:
        out, return_dict = self._run_tower(
            input_ids, attention_mask, position_ids, output_attentions, output_hidden_states, return_dict
        )
        output = CLIPTextModelOutput(
            text_embeds=self.text_projection(out.pooler_output),
            last_hidden_state=out.last_hidden_state,
            hidden_states=out.hidden_states,
            attentions=out.attentions,
        )
        return output if return_dict else output.to_tuple()


class CLIPVisionModelWithProjection(CLIPVisionModel):
    """The vision tower and its projection: ``image_embeds`` (unnormalised), as CLIPModel computes them."""

    _ignore_on_load = _VISION_ONLY_EXTRA

    def __init__(self, config: CLIPVisionConfig) -> None:
        super().__init__(config)
        self.visual_projection = nn.Linear(config.hidden_size, config.projection_dim, bias=False)

    def forward(
        self, pixel_values: torch.Tensor | None = None, interpolate_pos_encoding: bool = False,
        output_attentions: bool | None = None, output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> CLIPVisionModelOutput | tuple:
        out, return_dict = self._run_tower(
            pixel_values, interpolate_pos_encoding, output_attentions, output_hidden_states, return_dict
        )
        output = CLIPVisionModelOutput(
            image_embeds=self.visual_projection(out.pooler_output),
            last_hidden_state=out.last_hidden_state,
            hidden_states=out.hidden_states,
            attentions=out.attentions,
        )
        return output if return_dict else output.to_tuple()


class TowerImageClassifier:
    """The vision tower (``tower``) of a two-tower config and a linear classifier over ``pool`` of
    its final states."""

    tower: ClassVar[type[nn.Module]]

    def __init__(self, config: PretrainedConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.vision_model = self.tower(config.vision_config)
        self.classifier = nn.Linear(config.vision_config.hidden_size, config.num_labels)

    def get_input_embeddings(self) -> nn.Conv2d:
        return self.vision_model.embeddings.patch_embedding

    def pool(self, last_hidden_state: torch.Tensor) -> torch.Tensor:
        """(batch, hidden): what the classifier reads."""
        raise NotImplementedError

    def forward(
        self, pixel_values: torch.Tensor | None = None, labels: torch.Tensor | None = None,
        interpolate_pos_encoding: bool = False, output_attentions: bool | None = None,
        output_hidden_states: bool | None = None, return_dict: bool | None = None,
    ) -> ImageClassifierOutput | tuple:
        output_attentions, output_hidden_states, return_dict = self._resolve(
            output_attentions, output_hidden_states, return_dict
        )
        out = self.vision_model(pixel_values, bool(interpolate_pos_encoding), output_attentions, output_hidden_states)
        logits = self.classifier(self.pool(out.last_hidden_state))
        output = ImageClassifierOutput(
            loss=sequence_classification_loss(logits, labels, self.config) if labels is not None else None,
            logits=logits,
            hidden_states=out.hidden_states,
            attentions=out.attentions,
        )
        return output if return_dict else output.to_tuple()


class CLIPForImageClassification(TowerImageClassifier, CLIPPreTrainedModel):
    """The vision tower and a linear classifier over the mean of the patch tokens' final states
    (the class token left out, as in the reference). Takes the full CLIPConfig."""

    tower = CLIPVisionTransformer
    _ignore_on_load = _VISION_ONLY_EXTRA + [r"^visual_projection\."]

    def pool(self, last_hidden_state: torch.Tensor) -> torch.Tensor:
        return last_hidden_state[:, 1:].mean(dim=1)


__all__ = [
    "CLIPConfig",
    "CLIPForImageClassification",
    "CLIPModel",
    "CLIPTextConfig",
    "CLIPTextModel",
    "CLIPTextModelWithProjection",
    "CLIPVisionConfig",
    "CLIPVisionModel",
    "CLIPVisionModelWithProjection",
]
