"""ModernBERT (Warner et al., 2024): a pre-norm encoder with rotary positions, GeGLU feed-forward
blocks, and global attention every few layers between local (sliding-window) ones.

Module paths equal the reference library's checkpoint keys (``model.layers.0.attn.Wqkv.weight``,
``head.dense.weight``, ``decoder.bias``), so weights load and save by name. Padded batches run
dense or unpadded (``run_encoder``); rotary positions and local windows are measured in the padded
grid on both paths, so both give the reference's numbers on real tokens. At padded positions the
dense path (the automatic choice wherever an output shows them) computes what the reference
computes there; the unpadded path leaves zeros.
"""

from __future__ import annotations

import copy
import math
import sys
from functools import partial
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..configuration import PretrainedConfig
from ..errors import ConfigError, InputError
from ..modeling.activations import get_activation
from ..modeling.attention import Mask, PackedBatch, attend, real_positions_only, run_encoder, run_layers
from ..modeling.base import PreTrainedModel
from ..modeling.checks import (
    check_positions,
    check_text_inputs,
    embedding_lookup,
    positive_int,
    validate_encoder_config,
)
from ..modeling.heads import ForQuestionAnswering, ForTokenClassification, TaskHead
from ..modeling.losses import masked_lm_loss, sequence_classification_loss
from ..modeling.outputs import BaseModelOutput, MaskedLMOutput, SequenceClassifierOutput

GLOBAL, LOCAL = "full_attention", "sliding_attention"
# The rotary bases when a config names neither rope_parameters nor the older *_rope_theta keys.
DEFAULT_THETA = {GLOBAL: 160_000.0, LOCAL: 10_000.0}
# The older configs' key for each layer kind's rotary base.
THETA_KEYS = {GLOBAL: "global_rope_theta", LOCAL: "local_rope_theta"}


class ModernBertConfig(PretrainedConfig):
    """Layer kinds live in ``layer_types`` and rotary bases in ``rope_parameters`` (one entry per
    kind), as the reference stores them; configs with only the older ``global_attn_every_n_layers``,
    ``global_rope_theta`` and ``local_rope_theta`` are converted on load (those keys are kept)."""

    model_type: ClassVar[str] = "modernbert"
    defaults: ClassVar[dict[str, Any]] = {
        "vocab_size": 50368,
        "hidden_size": 768,
        "intermediate_size": 1152,
        "num_hidden_layers": 22,
        "num_attention_heads": 12,
        "hidden_activation": "gelu",
        "max_position_embeddings": 8192,
        "initializer_range": 0.02,
        "initializer_cutoff_factor": 2.0,
        "norm_eps": 1e-5,
        "norm_bias": False,
        "pad_token_id": 50283,
        "eos_token_id": 50282,
        "bos_token_id": 50281,
        "cls_token_id": 50281,
        "sep_token_id": 50282,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "layer_types": None,
        "rope_parameters": None,
        "local_attention": 128,
        "embedding_dropout": 0.0,
        "mlp_bias": False,
        "mlp_dropout": 0.0,
        "decoder_bias": True,
        "classifier_pooling": "cls",
        "classifier_dropout": 0.0,
        "classifier_bias": False,
        "classifier_activation": "gelu",
        "deterministic_flash_attn": False,
        "sparse_prediction": False,
        "sparse_pred_ignore_index": -100,
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**_with_layer_layout(kwargs, self.defaults))

    def validate(self) -> None:
        validate_encoder_config(
            self,
            sizes=(
                "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "max_position_embeddings", "local_attention",
            ),
            dropouts=("attention_dropout", "embedding_dropout", "mlp_dropout", "classifier_dropout"),
            activation="hidden_activation",
        )
        get_activation(self.classifier_activation, "classifier_activation")
        if (self.hidden_size // self.num_attention_heads) % 2:
            raise ConfigError(
                f"The head width hidden_size / num_attention_heads = {self.hidden_size // self.num_attention_heads} "
                "must be even: rotary embeddings rotate pairs of channels."
            )
        eps = self.norm_eps
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
            raise ConfigError(f"norm_eps must be a positive number, got {eps!r}.")
        for key in ("norm_bias", "attention_bias", "mlp_bias", "decoder_bias", "classifier_bias", "sparse_prediction"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"{key} must be true or false, got {getattr(self, key)!r}.")
        if self.classifier_pooling not in ("cls", "mean"):
            raise ConfigError(f"classifier_pooling must be 'cls' or 'mean', got {self.classifier_pooling!r}.")
        kinds = self.layer_types
        if not isinstance(kinds, list) or len(kinds) != self.num_hidden_layers or not set(kinds) <= {GLOBAL, LOCAL}:
            raise ConfigError(
                f"layer_types must list {GLOBAL!r} or {LOCAL!r} for each of the {self.num_hidden_layers} layers "
                f"(num_hidden_layers), got {kinds!r}."
            )
        for kind, rope in self.rope_parameters.items():
            if rope.get("rope_type", "default") != "default":
                raise ConfigError(
                    f"rope_parameters[{kind!r}] uses rope_type={rope['rope_type']!r}; leanformers implements "
                    "ModernBERT's plain rotary embeddings only (rope_type 'default')."
                )
            theta = rope.get("rope_theta")
            if isinstance(theta, bool) or not isinstance(theta, (int, float)) or not theta > 0:
                raise ConfigError(f"rope_parameters[{kind!r}]['rope_theta'] must be a positive number, got {theta!r}.")


def _with_layer_layout(kwargs: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` with ``layer_types`` and per-kind ``rope_parameters`` filled in from the older keys
    (or the defaults) where absent, and ``rope_scaling`` folded into both kinds, as the reference
    does."""
    kwargs = dict(kwargs)
    if kwargs.get("layer_types") is None:
        layers = positive_int("num_hidden_layers", kwargs.get("num_hidden_layers", defaults["num_hidden_layers"]))
        every = positive_int("global_attn_every_n_layers", kwargs.get("global_attn_every_n_layers", 3))
        kwargs["layer_types"] = [LOCAL if i % every else GLOBAL for i in range(layers)]
    rope = copy.deepcopy(kwargs.get("rope_parameters")) or {}
    if not isinstance(rope, dict) or not set(rope) <= {GLOBAL, LOCAL}:
        raise ConfigError(
            f"rope_parameters must map {GLOBAL!r} and {LOCAL!r} to their rotary settings, got {rope!r}."
        )
    scaling = kwargs.pop("rope_scaling", None)
    for kind in (GLOBAL, LOCAL):
        settings = rope.get(kind) or {"rope_type": "default"}
        if not isinstance(settings, dict):
            raise ConfigError(f"rope_parameters[{kind!r}] must be a mapping, got {settings!r}.")
        if scaling is not None:
            if not isinstance(scaling, dict):
                raise ConfigError(f"rope_scaling must be a mapping, got {scaling!r}.")
            settings.update(scaling)
        settings.setdefault("rope_theta", kwargs.get(THETA_KEYS[kind], DEFAULT_THETA[kind]))
        rope[kind] = settings
    kwargs["rope_parameters"] = rope
    return kwargs


# -- modules ------------------------------------------------------------------------------------


def _init_std(module: nn.Module, std: float) -> nn.Module:
    """Tag ``module`` with the standard deviation ``_init_weights`` draws it with (default:
    initializer_range)."""
    module.init_std = std
    return module


def rotary_tables(
    positions: torch.Tensor, head_dim: int, theta: float, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin) for ``positions`` of shape (batch or 1, seq), or (slots,) packed, with a unit axis
    inserted for heads: (batch or 1, 1, seq, head_dim), or (slots, 1, head_dim). As in the reference,
    the tables are rounded to the model's ``dtype`` but the rotation itself runs in float32."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float, device=positions.device) / head_dim)
    freqs = positions[..., None].float() * inv_freq
    angles = torch.cat((freqs, freqs), dim=-1).unsqueeze(1)
    return angles.cos().to(dtype).float(), angles.sin().to(dtype).float()


class ModernBertEmbeddings(nn.Module):
    """Token embeddings, LayerNorm, dropout; positions enter through rotary attention instead."""

    def __init__(self, config: ModernBertConfig) -> None:
        super().__init__()
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.norm_eps, bias=config.norm_bias)
        self.dropout = config.embedding_dropout

    def forward(self, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None) -> torch.Tensor:
        if inputs_embeds is None:
            inputs_embeds = embedding_lookup(self.tok_embeddings, input_ids, "input_ids")
        return F.dropout(self.norm(inputs_embeds), self.dropout, self.training)


class ModernBertAttention(nn.Module):
    """Fused query/key/value projection, rotary attention (windowed in local layers), output projection."""

    def __init__(self, config: ModernBertConfig, kind: str) -> None:
        super().__init__()
        hidden = config.hidden_size
        self.heads = config.num_attention_heads
        self.Wqkv = nn.Linear(hidden, 3 * hidden, bias=config.attention_bias)
        self.Wo = _init_std(nn.Linear(hidden, hidden, bias=config.attention_bias), _output_std(config))
        # A local layer's query sees local_attention // 2 keys on each side, and itself.
        self.window = config.local_attention // 2 + 1 if kind == LOCAL else None
        self.dropout = config.attention_dropout

    def forward(
        self, hidden: torch.Tensor, mask: Mask | PackedBatch | None, rotary: tuple[torch.Tensor, torch.Tensor],
        need_weights: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        query, key, value = self.Wqkv(hidden).chunk(3, dim=-1)
        dropout = self.dropout if self.training else 0.0
        context, weights = attend(
            query, key, value, mask, heads=self.heads, window=self.window, dropout=dropout,
            need_weights=need_weights, rotary=rotary,
        )
        return F.dropout(self.Wo(context), self.dropout, self.training), weights


class ModernBertMLP(nn.Module):
    """GeGLU: one fused projection to (input, gate), act(input) * gate, dropout, projection back."""

    def __init__(self, config: ModernBertConfig) -> None:
        super().__init__()
        self.Wi = nn.Linear(config.hidden_size, 2 * config.intermediate_size, bias=config.mlp_bias)
        self.act = get_activation(config.hidden_activation, "hidden_activation")
        self.Wo = _init_std(
            nn.Linear(config.intermediate_size, config.hidden_size, bias=config.mlp_bias), _output_std(config)
        )
        self.dropout = config.mlp_dropout

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        inputs, gate = self.Wi(hidden).chunk(2, dim=-1)
        return self.Wo(F.dropout(self.act(inputs) * gate, self.dropout, self.training))


class ModernBertEncoderLayer(nn.Module):
    """Pre-norm attention and feed-forward blocks; the first layer's attention reads the (already
    normalised) embeddings directly."""

    def __init__(self, config: ModernBertConfig, index: int) -> None:
        super().__init__()
        self.attention_type = config.layer_types[index]
        self.attn_norm = (
            nn.Identity() if index == 0
            else nn.LayerNorm(config.hidden_size, eps=config.norm_eps, bias=config.norm_bias)
        )
        self.attn = ModernBertAttention(config, self.attention_type)
        self.mlp_norm = nn.LayerNorm(config.hidden_size, eps=config.norm_eps, bias=config.norm_bias)
        self.mlp = ModernBertMLP(config)

    def forward(
        self, hidden: torch.Tensor, mask: Mask | PackedBatch | None,
        rotary: dict[str, tuple[torch.Tensor, torch.Tensor]], need_weights: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, weights = self.attn(self.attn_norm(hidden), mask, rotary[self.attention_type], need_weights)
        hidden = hidden + attended
        return hidden + self.mlp(self.mlp_norm(hidden)), weights


class ModernBertPredictionHead(nn.Module):
    """dense -> activation -> LayerNorm, shared by every task head."""

    def __init__(self, config: ModernBertConfig) -> None:
        super().__init__()
        self.dense = _init_std(
            nn.Linear(config.hidden_size, config.hidden_size, bias=config.classifier_bias), _output_std(config)
        )
        self.act = get_activation(config.classifier_activation, "classifier_activation")
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.norm_eps, bias=config.norm_bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.norm(self.act(self.dense(hidden)))


def _output_std(config: ModernBertConfig) -> float:
    """Projections into the residual stream start narrower the deeper the model."""
    return config.initializer_range / math.sqrt(2.0 * config.num_hidden_layers)


# -- models -------------------------------------------------------------------------------------


class ModernBertPreTrainedModel(PreTrainedModel):
    config_class = ModernBertConfig
    base_model_prefix = "model"

    def _init_weights(self, module: nn.Module) -> None:
        """Truncated normals (cut at ``initializer_cutoff_factor`` standard deviations), each weight
        with its own width (``_init_std``); zero biases, unit norms."""
        super()._init_weights(module)
        if isinstance(module, (nn.Linear, nn.Embedding)):
            std = getattr(module, "init_std", self.config.initializer_range)
            cutoff = (self.config.initializer_cutoff_factor or 3.0) * std
            with torch.no_grad():
                nn.init.trunc_normal_(module.weight, 0.0, std, -cutoff, cutoff)


class ModernBertModel(ModernBertPreTrainedModel):
    """Embeddings, the layers, and a final LayerNorm (applied to the last entry of ``hidden_states``
    too, as in the reference)."""

    def __init__(self, config: ModernBertConfig) -> None:
        super().__init__(config)
        if len(config.layer_types) != config.num_hidden_layers:
            raise ConfigError(
                f"layer_types lists {len(config.layer_types)} layers but num_hidden_layers is "
                f"{config.num_hidden_layers}; set both together."
            )
        self.embeddings = ModernBertEmbeddings(config)
        self.layers = nn.ModuleList(ModernBertEncoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.final_norm = nn.LayerNorm(config.hidden_size, eps=config.norm_eps, bias=config.norm_bias)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.tok_embeddings

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        *,
        padding_in_output: bool = True,
    ) -> BaseModelOutput | tuple:
        """``padding_in_output=False`` is for heads that read no padded position of
        ``last_hidden_state``: it lets the automatic ``config.unpad_inputs`` run the encoder on the
        real tokens only (see modeling/attention.py)."""
        output_attentions, output_hidden_states, return_dict = self._resolve(
            output_attentions, output_hidden_states, return_dict
        )
        config = self.config
        # Rotary positions have no table, so no length limit: the reference runs past
        # max_position_embeddings too.
        batch, seq = check_text_inputs(input_ids, inputs_embeds, config.hidden_size, sys.maxsize)
        check_positions("position_ids", position_ids, batch, seq)
        hidden = self.embeddings(input_ids, inputs_embeds)
        if position_ids is None:
            position_ids = torch.arange(seq, device=hidden.device)[None]
        hidden, all_hidden, all_weights = run_encoder(
            partial(self._encode, position_ids.to(hidden.device)), hidden, attention_mask, output_attentions,
            output_hidden_states, unpad_inputs=getattr(config, "unpad_inputs", None),
            macs_per_token=config.hidden_size * (4 * config.hidden_size + 3 * config.intermediate_size),
            padding_in_output=padding_in_output,
        )
        output = BaseModelOutput(last_hidden_state=hidden, hidden_states=all_hidden, attentions=all_weights)
        return output if return_dict else output.to_tuple()

    def _encode(
        self, position_ids: torch.Tensor, hidden: torch.Tensor, mask: Mask | PackedBatch | None,
        output_attentions: bool, output_hidden_states: bool,
    ) -> tuple[torch.Tensor, tuple | None, tuple | None]:
        """The layers and the final norm over dense (batch, seq, hidden) or packed (slots, hidden) states."""
        if isinstance(mask, PackedBatch):
            position_ids = mask.pack(position_ids.expand(mask.batch, mask.seq)).squeeze(-1)
        elif mask is None:
            mask = Mask()  # nothing to mask but the local layers' window: their grid is built once, here
        head_dim = self.config.hidden_size // self.config.num_attention_heads
        rotary = {
            kind: rotary_tables(position_ids, head_dim, self.config.rope_parameters[kind]["rope_theta"], hidden.dtype)
            for kind in set(self.config.layer_types)
        }
        hidden, all_hidden, all_weights = run_layers(
            self.layers, hidden, (mask, rotary), output_attentions, output_hidden_states
        )
        hidden = self.final_norm(hidden)
        if all_hidden is not None:
            all_hidden = all_hidden[:-1] + (hidden,)
        return hidden, all_hidden, all_weights


class _ModernBertHead(TaskHead, ModernBertPreTrainedModel):
    """The base model under ``model``, then ``head`` (dense, act, norm) and dropout before each
    family head's output layer."""

    base_model_class = ModernBertModel
    dropout_keys = ("classifier_dropout",)

    def build_head(self, config: ModernBertConfig) -> None:
        self.num_labels = config.num_labels
        self.head = ModernBertPredictionHead(config)
        self.classifier = _init_std(nn.Linear(config.hidden_size, config.num_labels), config.hidden_size**-0.5)

    def classify(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.classifier(F.dropout(self.head(hidden), self.dropout, self.training))

    def encode(
        self, input_ids, attention_mask, position_ids, inputs_embeds, output_attentions, output_hidden_states,
        padding_in_output: bool,
    ) -> BaseModelOutput:
        return self.model(
            input_ids, attention_mask, position_ids, inputs_embeds, output_attentions, output_hidden_states,
            return_dict=True, padding_in_output=padding_in_output,
        )


class ModernBertForSequenceClassification(_ModernBertHead):
    """The first token's state (``classifier_pooling="cls"``) or the mean over real tokens ("mean"),
    then the prediction head and a linear classifier (a regressor when num_labels == 1)."""

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> SequenceClassifierOutput | tuple:
        # Neither pooling reads a padded position's state.
        outputs = self.encode(
            input_ids, attention_mask, position_ids, inputs_embeds, output_attentions, output_hidden_states, False
        )
        hidden = outputs.last_hidden_state
        if self.config.classifier_pooling == "cls":
            pooled = hidden[:, 0]
        else:
            weights = torch.ones(hidden.shape[:2], device=hidden.device) if attention_mask is None else attention_mask
            weights = weights.to(hidden.device)
            pooled = (hidden * weights.unsqueeze(-1)).sum(dim=1) / weights.sum(dim=1, keepdim=True)
        logits = self.classify(pooled)
        loss = sequence_classification_loss(logits, labels, self.config) if labels is not None else None
        return self.finish(SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        ), return_dict)


class ModernBertForTokenClassification(_ModernBertHead, ForTokenClassification):
    def token_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.classify(hidden)


class ModernBertForQuestionAnswering(_ModernBertHead, ForQuestionAnswering):
    """Start and end logits from the ``classifier``'s two outputs."""

    def build_head(self, config: ModernBertConfig) -> None:
        if config.num_labels != 2:
            raise ConfigError(
                f"{type(self).__name__} needs num_labels=2 (start and end logits), got {config.num_labels}."
            )
        super().build_head(config)

    def token_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.classify(hidden)


class ModernBertForMaskedLM(_ModernBertHead):
    """The prediction head, then ``decoder`` onto the vocabulary (its matrix tied to the token
    embeddings). With ``config.sparse_prediction`` and labels, logits come only for the labelled
    positions (labels != ``sparse_pred_ignore_index``), flattened to (labelled tokens, vocab)."""

    _tied_weights: ClassVar[dict[str, str]] = {"decoder.weight": "model.embeddings.tok_embeddings.weight"}

    def build_head(self, config: ModernBertConfig) -> None:
        self.head = ModernBertPredictionHead(config)
        self.decoder = _init_std(
            nn.Linear(config.hidden_size, config.vocab_size, bias=config.decoder_bias), _output_std(config)
        )

    def predict(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.head(hidden))

    def get_output_embeddings(self) -> nn.Linear:
        return self.decoder

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        padding_in_output: bool = True,
    ) -> MaskedLMOutput | tuple:
        outputs = self.encode(
            input_ids, attention_mask, position_ids, inputs_embeds, output_attentions, output_hidden_states,
            padding_in_output,
        )
        hidden = outputs.last_hidden_state
        if self.config.sparse_prediction and labels is not None:
            if labels.shape != hidden.shape[:2]:
                raise InputError(
                    f"labels has shape {tuple(labels.shape)}, but sparse prediction needs one label per input "
                    f"position: {tuple(hidden.shape[:2])}."
                )
            labels = labels.to(hidden.device).reshape(-1)
            labelled = labels != self.config.sparse_pred_ignore_index
            logits, labels = self.predict(hidden.reshape(labels.shape[0], -1)[labelled]), labels[labelled]
        else:
            logits = real_positions_only(self.predict, hidden, attention_mask, padding_in_output)
        loss = masked_lm_loss(logits, labels) if labels is not None else None
        return self.finish(MaskedLMOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        ), return_dict)


__all__ = [
    "ModernBertConfig",
    "ModernBertForMaskedLM",
    "ModernBertForQuestionAnswering",
    "ModernBertForSequenceClassification",
    "ModernBertForTokenClassification",
    "ModernBertModel",
]
