"""DeBERTa-v2 and -v3 (He et al., 2020/2021): an encoder with disentangled attention, where each
score adds content-to-position and position-to-content terms read from a shared table of
relative-position embeddings, and its task heads.

Module paths equal the reference library's checkpoint keys (``deberta.encoder.layer.0.attention.self.
query_proj.weight``, ``deberta.encoder.rel_embeddings.weight``, ``pooler.dense.weight``; the masked-LM
head is ``cls.predictions`` with ``legacy=True``, the default, and ``lm_predictions.lm_head`` with
``legacy=False``, as the reference keys them).

The relative terms go to ``attend`` as an additive bias with the scale 1/sqrt(head_dim * factor):
dense, a (batch, heads, queries, keys) tensor; unpadded (packed), a function that builds it per
length bucket from the bucket's queries and keys. Dense padding follows the reference exactly: the embedding output is zeroed at padded positions, and a
padded query attends uniformly to every key, which is what the reference's masking of whole rows gives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..configuration import PretrainedConfig
from ..errors import ConfigError
from ..modeling.activations import get_activation
from ..modeling.attention import Mask, PackedBatch, attend, run_encoder, run_layers
from ..modeling.base import PreTrainedModel
from ..modeling.checks import (
    check_positions,
    check_text_inputs,
    embedding_lookup,
    positive_int,
    validate_encoder_config,
)
from ..modeling.heads import ForMaskedLM, ForQuestionAnswering, ForSequenceClassification, ForTokenClassification
from ..modeling.losses import sequence_classification_loss
from ..modeling.outputs import BaseModelOutput, ModelOutput, SequenceClassifierOutput
from .bert import BertIntermediate, BertOutput, BertSelfOutput

ATTENTION_KINDS = ("c2p", "p2c")
# Gather indices into the relative table for c2p and p2c, and the (normalised) table.
Relative = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
REL_EMBEDDING_NORMS = ("layer_norm", "none")


def _names(value: Any) -> list[str]:
    """A ``"a|b"`` string or a list of names, as the reference reads both."""
    return [part.strip() for part in value.lower().split("|")] if isinstance(value, str) else list(value or [])


class DebertaV2Config(PretrainedConfig):
    model_type: ClassVar[str] = "deberta-v2"
    defaults: ClassVar[dict[str, Any]] = {
        "vocab_size": 128100,
        "hidden_size": 1536,
        "num_hidden_layers": 24,
        "num_attention_heads": 24,
        "intermediate_size": 6144,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": 512,
        "type_vocab_size": 0,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-7,
        "relative_attention": False,
        "max_relative_positions": -1,
        "pad_token_id": 0,
        "position_biased_input": True,
        "pos_att_type": None,
        "pooler_dropout": 0.0,
        "pooler_hidden_act": "gelu",
        "legacy": True,
        # Read by the reference's modules with these defaults, though its config class does not declare them.
        "position_buckets": -1,
        "share_att_key": False,
        "norm_rel_ebd": "none",
        "conv_kernel_size": 0,
        "conv_groups": 1,
        "conv_act": "tanh",
        "cls_dropout": None,
    }

    def validate(self) -> None:
        validate_encoder_config(
            self,
            sizes=(
                "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "max_position_embeddings",
            ),
            dropouts=("hidden_dropout_prob", "attention_probs_dropout_prob", "pooler_dropout", "cls_dropout"),
            activation="hidden_act",
        )
        if not self.layer_norm_eps > 0:
            raise ConfigError(f"layer_norm_eps must be positive, got {self.layer_norm_eps!r}.")
        for key in ("relative_attention", "position_biased_input", "share_att_key", "legacy"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"{key} must be true or false, got {getattr(self, key)!r}.")
        for key in ("type_vocab_size", "max_relative_positions", "position_buckets", "conv_kernel_size"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{key} must be an integer, got {value!r}.")
        if self.type_vocab_size < 0:
            raise ConfigError(f"type_vocab_size must be 0 (no token types) or more, got {self.type_vocab_size}.")
        positive_int("embedding_size", embedding_size(self))
        for key in ("pooler_hidden_act", "conv_act"):
            get_activation(getattr(self, key), key)
        # The reference turns "p2c|c2p" into a list when it builds its config; do the same so a saved
        # config reads the same in both libraries.
        kinds = _names(self.pos_att_type) if isinstance(self.pos_att_type, (str, list, tuple)) else None
        if self.pos_att_type is not None and (kinds is None or not set(kinds) <= set(ATTENTION_KINDS)):
            raise ConfigError(
                f"pos_att_type={self.pos_att_type!r} is not understood; give a list of {ATTENTION_KINDS} "
                "(or a 'p2c|c2p' string), or null for content-to-content attention only."
            )
        if isinstance(self.pos_att_type, str):
            self.pos_att_type = kinds
        norms = _names(self.norm_rel_ebd) if isinstance(self.norm_rel_ebd, str) else None
        if norms is None or not set(norms) <= set(REL_EMBEDDING_NORMS):
            raise ConfigError(f"norm_rel_ebd must be 'layer_norm' or 'none', got {self.norm_rel_ebd!r}.")
        if self.relative_attention and self.position_buckets > 0:
            middle = self.position_buckets // 2
            largest = max_relative_positions(self)
            if middle < 1 or largest - 1 <= middle:
                raise ConfigError(
                    f"position_buckets={self.position_buckets} needs 2 <= position_buckets and position_buckets / 2 "
                    f"< max_relative_positions - 1 (here {largest - 1}): the log-spaced buckets lie between them."
                )
        if self.conv_kernel_size < 0 or (self.conv_kernel_size and self.conv_kernel_size % 2 == 0):
            raise ConfigError(
                f"conv_kernel_size must be 0 (no convolution) or odd, got {self.conv_kernel_size}: an even "
                "kernel changes the sequence length."
            )
        if self.conv_kernel_size:
            groups = positive_int("conv_groups", self.conv_groups)
            if self.hidden_size % groups:
                raise ConfigError(f"conv_groups ({groups}) must divide hidden_size ({self.hidden_size}).")
        head_size = getattr(self, "attention_head_size", None)
        if head_size is not None and head_size * self.num_attention_heads != self.hidden_size:
            raise ConfigError(
                f"attention_head_size={head_size} with {self.num_attention_heads} heads does not make hidden_size "
                f"{self.hidden_size}; the attention output projection needs heads * attention_head_size == hidden_size."
            )
        pooler_size = getattr(self, "pooler_hidden_size", self.hidden_size)
        if pooler_size != self.hidden_size:
            raise ConfigError(
                f"pooler_hidden_size={pooler_size} must equal hidden_size={self.hidden_size}: the pooler reads "
                "the encoder's hidden states and the classifier reads hidden_size features."
            )
        if not self.legacy and embedding_size(self) != self.hidden_size:
            raise ConfigError(
                f"legacy=False projects hidden states onto the word embeddings, so embedding_size "
                f"({embedding_size(self)}) must equal hidden_size ({self.hidden_size}); use legacy=True."
            )


def embedding_size(config: DebertaV2Config) -> int:
    """The word embeddings' width (``embedding_size``, by default hidden_size)."""
    return getattr(config, "embedding_size", None) or config.hidden_size


def max_relative_positions(config: DebertaV2Config) -> int:
    """The farthest relative position (``max_relative_positions``, by default max_position_embeddings)."""
    return config.max_relative_positions if config.max_relative_positions > 0 else config.max_position_embeddings


def relative_positions(length: int, buckets: int, max_position: int, device: torch.device) -> torch.Tensor:
    """(length, length) relative positions query - key; with ``buckets`` > 0, distances beyond
    buckets / 2 are folded onto log-spaced buckets up to ``max_position``."""
    ids = torch.arange(length, dtype=torch.long, device=device)
    relative = ids[:, None] - ids[None, :]
    if buckets <= 0 or max_position <= 0:
        return relative
    middle = buckets // 2
    sign = torch.sign(relative)
    near = (relative < middle) & (relative > -middle)
    distance = torch.where(near, torch.tensor(middle - 1, device=device), relative.abs())
    # float32 throughout, operation for operation as the reference: a ceil at a bucket boundary must agree.
    scale = torch.log(torch.tensor((max_position - 1) / middle))
    log_position = torch.ceil(torch.log(distance / middle) / scale.to(device) * (middle - 1)) + middle
    return torch.where(distance <= middle, relative.float(), log_position * sign).long()


# -- modules ------------------------------------------------------------------------------------


class DebertaV2Embeddings(nn.Module):
    """word (+ absolute position) (+ token type) embeddings, projected to hidden_size when the
    embedding width differs, LayerNorm, zeroed at padding, dropout."""

    def __init__(self, config: DebertaV2Config) -> None:
        super().__init__()
        width = embedding_size(config)
        self.word_embeddings = nn.Embedding(config.vocab_size, width, padding_idx=config.pad_token_id)
        self.position_embeddings = (
            nn.Embedding(config.max_position_embeddings, width) if config.position_biased_input else None
        )
        self.token_type_embeddings = (
            nn.Embedding(config.type_vocab_size, width) if config.type_vocab_size > 0 else None
        )
        self.embed_proj = nn.Linear(width, config.hidden_size, bias=False) if width != config.hidden_size else None
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = config.hidden_dropout_prob

    def forward(
        self,
        input_ids: torch.Tensor | None,
        token_type_ids: torch.Tensor | None,
        position_ids: torch.Tensor | None,
        inputs_embeds: torch.Tensor | None,
        keep: torch.Tensor | None,
    ) -> torch.Tensor:
        if inputs_embeds is None:
            inputs_embeds = embedding_lookup(self.word_embeddings, input_ids, "input_ids")
        embeddings = inputs_embeds
        if self.position_embeddings is not None:
            if position_ids is None:
                embeddings = embeddings + self.position_embeddings.weight[: embeddings.shape[1]]
            else:
                embeddings = embeddings + embedding_lookup(self.position_embeddings, position_ids, "position_ids")
        if self.token_type_embeddings is not None:
            if token_type_ids is None:
                embeddings = embeddings + self.token_type_embeddings.weight[0]
            else:
                embeddings = embeddings + embedding_lookup(self.token_type_embeddings, token_type_ids, "token_type_ids")
        if self.embed_proj is not None:
            embeddings = self.embed_proj(embeddings)
        embeddings = self.LayerNorm(embeddings)
        if keep is not None:
            embeddings = embeddings * keep[..., None].to(embeddings.dtype)
        return F.dropout(embeddings, self.dropout, self.training)


class DisentangledSelfAttention(nn.Module):
    """Content-to-content attention plus, with relative attention, the content-to-position (``c2p``)
    and position-to-content (``p2c``) terms, all scaled by 1/sqrt(head_dim * (1 + number of terms))."""

    def __init__(self, config: DebertaV2Config) -> None:
        super().__init__()
        self.heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.query_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.key_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.value_proj = nn.Linear(config.hidden_size, config.hidden_size)
        kinds = set(_names(config.pos_att_type))
        self.scale = (self.head_dim * (1 + len(kinds))) ** -0.5
        self.kinds = kinds if config.relative_attention else set()
        self.share_att_key = config.share_att_key
        if self.kinds and not self.share_att_key:
            if "c2p" in self.kinds:
                self.pos_key_proj = nn.Linear(config.hidden_size, config.hidden_size)
            if "p2c" in self.kinds:
                self.pos_query_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = config.attention_probs_dropout_prob
        self.position_dropout = config.hidden_dropout_prob

    def _positions(self, projection: nn.Linear, rel_embeddings: torch.Tensor) -> torch.Tensor:
        """(heads, table rows, head_dim): the relative-embedding table through one projection."""
        return projection(rel_embeddings).view(-1, self.heads, self.head_dim).transpose(0, 1)

    def relative_scores(self, query: torch.Tensor, key: torch.Tensor, relative: Relative) -> torch.Tensor:
        """(batch, heads, queries, keys) scaled c2p + p2c scores of (batch, heads, seq, head_dim) queries
        and keys (the configuration has at least one of the two terms)."""
        batch, _, seq, _ = query.shape
        c2p_index, p2c_index, rel_embeddings = relative
        rel_embeddings = F.dropout(rel_embeddings, self.position_dropout, self.training)
        index = c2p_index.expand(batch, self.heads, seq, seq)
        scores = 0
        if "c2p" in self.kinds:
            pos_key = self._positions(self.key_proj if self.share_att_key else self.pos_key_proj, rel_embeddings)
            scores = torch.gather(query @ pos_key.transpose(-1, -2), -1, index)
        if "p2c" in self.kinds:
            pos_query = self._positions(self.query_proj if self.share_att_key else self.pos_query_proj, rel_embeddings)
            # Row k of key @ pos_query^T scores key k against every relative row; gathering at
            # p2c_index[k, q] and transposing gives query q's score for key k.
            by_key = torch.gather(key @ pos_query.transpose(-1, -2), -1, p2c_index.expand_as(index))
            scores = scores + by_key.transpose(-1, -2)
        return scores * self.scale

    def forward(
        self,
        hidden: torch.Tensor,
        blocked: torch.Tensor | PackedBatch | None,
        relative: Relative | Callable[[int], Relative] | None,
        need_weights: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        query, key = self.query_proj(hidden), self.key_proj(hidden)
        relative = relative if self.kinds else None
        if isinstance(blocked, PackedBatch):  # ``relative`` is then a function of the bucket length
            bias = None if relative is None else (lambda q, k: self.relative_scores(q, k, relative(q.shape[-2])))
            return attend(
                query, key, self.value_proj(hidden), blocked, heads=self.heads, scale=self.scale, bias=bias,
                dropout=self.dropout if self.training else 0.0,
            )
        bias = None
        if relative is not None:
            batch, seq = query.shape[:2]
            split = (x.view(batch, seq, self.heads, self.head_dim).transpose(1, 2) for x in (query, key))
            bias = self.relative_scores(*split, relative)
        if blocked is not None:
            # Filled, not added: a large score plus the minimum could overflow to -inf in half precision.
            bias = query.new_zeros(blocked.shape) if bias is None else bias
            bias = bias.masked_fill(blocked, torch.finfo(bias.dtype).min)
        return attend(
            query, key, self.value_proj(hidden), None, heads=self.heads, scale=self.scale, bias=bias,
            dropout=self.dropout if self.training else 0.0, need_weights=need_weights,
        )


class DebertaV2Attention(nn.Module):
    def __init__(self, config: DebertaV2Config) -> None:
        super().__init__()
        self.self = DisentangledSelfAttention(config)
        self.output = BertSelfOutput(config)

    def forward(
        self, hidden: torch.Tensor, blocked: torch.Tensor | None, relative: tuple | None, need_weights: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        context, weights = self.self(hidden, blocked, relative, need_weights)
        return self.output(context, hidden), weights


class DebertaV2Layer(nn.Module):
    def __init__(self, config: DebertaV2Config) -> None:
        super().__init__()
        self.attention = DebertaV2Attention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)

    def forward(
        self, hidden: torch.Tensor, blocked: torch.Tensor | None, relative: tuple | None, need_weights: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, weights = self.attention(hidden, blocked, relative, need_weights)
        return self.output(self.intermediate(attended), attended), weights


class ConvLayer(nn.Module):
    """A convolution over the embedding output, added to the first layer's output (DeBERTa-v2's
    n-gram induction): conv -> zero at padding -> activation -> residual -> LayerNorm -> zero at padding."""

    def __init__(self, config: DebertaV2Config) -> None:
        super().__init__()
        size = config.conv_kernel_size
        self.conv = nn.Conv1d(
            config.hidden_size, config.hidden_size, size, padding=(size - 1) // 2, groups=config.conv_groups
        )
        self.act = get_activation(config.conv_act, "conv_act")
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = config.hidden_dropout_prob

    def forward(self, embedded: torch.Tensor, layer_output: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        out = self.conv(embedded.transpose(1, 2)).transpose(1, 2)
        if keep is not None:
            out = out.masked_fill(~keep[..., None], 0)
        out = self.LayerNorm(layer_output + self.act(F.dropout(out, self.dropout, self.training)))
        return out if keep is None else out * keep[..., None].to(out.dtype)


class DebertaV2Encoder(nn.Module):
    """The layers, the relative-embedding table they share (and its LayerNorm), and the optional
    convolution after the first layer."""

    def __init__(self, config: DebertaV2Config) -> None:
        super().__init__()
        self.layer = nn.ModuleList(DebertaV2Layer(config) for _ in range(config.num_hidden_layers))
        self.relative_attention = config.relative_attention
        self.position_buckets = config.position_buckets
        self.max_relative_positions = max_relative_positions(config)
        # Rows of the relative-embedding table on each side of zero.
        self.span = self.position_buckets if self.position_buckets > 0 else self.max_relative_positions
        if self.relative_attention:
            self.rel_embeddings = nn.Embedding(2 * self.span, config.hidden_size)
        normed = "layer_norm" in _names(config.norm_rel_ebd)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps) if normed else None
        self.conv = ConvLayer(config) if config.conv_kernel_size > 0 else None

    def _relative(self, seq: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Gather indices into the relative table for c2p and p2c, and the (normalised) table."""
        table = self.rel_embeddings.weight
        if self.LayerNorm is not None:
            table = self.LayerNorm(table)
        relative = relative_positions(seq, self.position_buckets, self.max_relative_positions, device)
        last = 2 * self.span - 1
        return (relative + self.span).clamp(0, last), (self.span - relative).clamp(0, last), table

    def forward(
        self, hidden: torch.Tensor, mask: Mask | PackedBatch | None, output_attentions: bool,
        output_hidden_states: bool,
    ) -> tuple[torch.Tensor, tuple | None, tuple | None]:
        if isinstance(mask, PackedBatch):
            # The relative indices per bucket length, once for all layers (no convolution: see the model).
            tables: dict[int, Relative] = {}

            def relative_for(length: int) -> Relative:
                if length not in tables:
                    tables[length] = self._relative(length, hidden.device)
                return tables[length]

            relative = relative_for if self.relative_attention else None
            return run_layers(self.layer, hidden, (mask, relative), output_attentions, output_hidden_states)
        keep = None if mask is None else mask.keep
        seq = hidden.shape[1]
        # (batch, 1, queries, keys), True where blocked: a pair is visible only when both query and key
        # are real. A padded query sees nothing, and its row of equal minimum scores gives the
        # reference's uniform weights over every key.
        blocked = None if keep is None else ~(keep[:, None, :, None] & keep[:, None, None, :])
        relative = self._relative(seq, hidden.device) if self.relative_attention else None
        layers = list(self.layer)
        if self.conv is not None:
            first = layers[0]

            def first_with_conv(state: torch.Tensor, *args: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
                out, weights = first(state, *args)
                return self.conv(state, out, keep), weights

            layers[0] = first_with_conv
        return run_layers(layers, hidden, (blocked, relative), output_attentions, output_hidden_states)


class ContextPooler(nn.Module):
    """First token -> dropout -> dense -> pooler_hidden_act."""

    def __init__(self, config: DebertaV2Config) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = get_activation(config.pooler_hidden_act, "pooler_hidden_act")
        self.dropout = config.pooler_dropout

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.act(self.dense(F.dropout(hidden[:, 0], self.dropout, self.training)))


class LegacyDebertaV2PredictionHeadTransform(nn.Module):
    def __init__(self, config: DebertaV2Config) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, embedding_size(config))
        self.act = get_activation(config.hidden_act)
        self.LayerNorm = nn.LayerNorm(embedding_size(config), eps=config.layer_norm_eps)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.act(self.dense(hidden)))


class LegacyDebertaV2LMPredictionHead(nn.Module):
    """Transform to the embedding width, then the vocabulary projection (``decoder``, tied to the word
    embeddings and to ``bias`` when the config ties word embeddings)."""

    def __init__(self, config: DebertaV2Config) -> None:
        super().__init__()
        self.transform = LegacyDebertaV2PredictionHeadTransform(config)
        self.decoder = nn.Linear(embedding_size(config), config.vocab_size)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform(hidden))


class LegacyDebertaV2OnlyMLMHead(nn.Module):
    def __init__(self, config: DebertaV2Config) -> None:
        super().__init__()
        self.predictions = LegacyDebertaV2LMPredictionHead(config)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.predictions(hidden)


class DebertaV2LMPredictionHead(nn.Module):
    """dense -> activation -> LayerNorm -> product with the word embedding matrix + ``bias`` (the
    matrix is passed in, not held, so no tying is needed)."""

    def __init__(self, config: DebertaV2Config) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = get_activation(config.hidden_act)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, hidden: torch.Tensor, word_embeddings: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.act(self.dense(hidden))) @ word_embeddings.t() + self.bias


class DebertaV2OnlyMLMHead(nn.Module):
    def __init__(self, config: DebertaV2Config) -> None:
        super().__init__()
        self.lm_head = DebertaV2LMPredictionHead(config)

    def forward(self, hidden: torch.Tensor, word_embeddings: torch.Tensor) -> torch.Tensor:
        return self.lm_head(hidden, word_embeddings)


# -- models -------------------------------------------------------------------------------------


class DebertaV2PreTrainedModel(PreTrainedModel):
    config_class = DebertaV2Config
    base_model_prefix = "deberta"
    # An index buffer older files carry, and an absolute position table that a model without
    # position_biased_input does not use (the reference drops both silently too).
    _ignore_on_load = [r"(^|\.)embeddings\.position_ids$", r"(^|\.)embeddings\.position_embeddings\."]

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, (LegacyDebertaV2LMPredictionHead, DebertaV2LMPredictionHead)):
            with torch.no_grad():
                module.bias.zero_()


class DebertaV2Model(DebertaV2PreTrainedModel):
    """The encoder: embeddings and disentangled-attention layers; no pooler."""

    def __init__(self, config: DebertaV2Config) -> None:
        super().__init__(config)
        self.embeddings = DebertaV2Embeddings(config)
        self.encoder = DebertaV2Encoder(config)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        *,
        padding_in_output: bool = True,
    ) -> BaseModelOutput | tuple:
        """``padding_in_output=False``: see BertModel (never packed with the convolution layer, whose
        kernel would reach across rows). Without absolute positions (``position_biased_input=False``)
        the sequence length is not limited by ``max_position_embeddings``, as in the reference."""
        config = self.config
        output_attentions, output_hidden_states, return_dict = self._resolve(
            output_attentions, output_hidden_states, return_dict
        )
        longest = config.max_position_embeddings if config.position_biased_input else float("inf")
        batch, seq = check_text_inputs(input_ids, inputs_embeds, embedding_size(config), longest)
        check_positions("token_type_ids", token_type_ids, batch, seq)
        check_positions("position_ids", position_ids, batch, seq)
        device = (input_ids if input_ids is not None else inputs_embeds).device
        mask = Mask.padding(attention_mask, batch, seq, device)
        keep = None if mask is None else mask.keep
        hidden = self.embeddings(input_ids, token_type_ids, position_ids, inputs_embeds, keep)
        hidden, all_hidden, all_weights = run_encoder(
            self.encoder, hidden, attention_mask, output_attentions, output_hidden_states,
            unpad_inputs=getattr(config, "unpad_inputs", None) if self.encoder.conv is None else False,
            macs_per_token=config.hidden_size * (4 * config.hidden_size + 2 * config.intermediate_size),
            padding_in_output=padding_in_output,
        )
        output = BaseModelOutput(last_hidden_state=hidden, hidden_states=all_hidden, attentions=all_weights)
        return output if return_dict else output.to_tuple()


def inferred_classification_loss(
    logits: torch.Tensor, labels: torch.Tensor, num_labels: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference DeBERTa's loss when the config names no problem type (it writes none back):
    one label: MSE on flattened logits, which are returned flattened and in the labels' dtype; class
    ids: cross-entropy over the examples whose label is not negative (zero when none is); a row of
    label weights per example: cross-entropy against those soft labels. Returns (logits, loss)."""
    labels = labels.to(logits.device)
    if num_labels == 1:
        logits = logits.view(-1).to(labels.dtype)
        return logits, F.mse_loss(logits, labels.view(-1))
    if labels.dim() == 1 or labels.shape[-1] == 1:
        labels = labels.reshape(-1)
        labelled = labels >= 0
        if not bool(labelled.any()):
            return logits, logits.new_zeros(())
        return logits, F.cross_entropy(logits[labelled].float(), labels[labelled].long())
    return logits, -(F.log_softmax(logits, dim=-1) * labels).sum(-1).mean()


class DebertaV2ForSequenceClassification(ForSequenceClassification, DebertaV2PreTrainedModel):
    """ContextPooler (``pooler``) -> dropout -> classifier."""

    base_model_class = DebertaV2Model
    dropout_keys = ("cls_dropout", "hidden_dropout_prob")

    def build_head(self, config: DebertaV2Config) -> None:
        self.pooler = ContextPooler(config)
        super().build_head(config)

    def classify(self, outputs: ModelOutput) -> torch.Tensor:
        return self.classifier(F.dropout(self.pooler(outputs.last_hidden_state), self.dropout, self.training))

    def forward(
        self, *args: Any, labels: torch.Tensor | None = None, return_dict: bool | None = None, **kwargs: Any
    ) -> SequenceClassifierOutput | tuple:
        outputs = self.run_base(args, kwargs, padding_in_output=False)
        logits = self.classify(outputs)
        loss = None
        if labels is not None:
            if self.config.problem_type is None:
                logits, loss = inferred_classification_loss(logits, labels, self.num_labels)
            else:
                loss = sequence_classification_loss(logits, labels, self.config)
        return self.finish(SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        ), return_dict)


class DebertaV2ForTokenClassification(ForTokenClassification, DebertaV2PreTrainedModel):
    base_model_class = DebertaV2Model
    dropout_keys = ("hidden_dropout_prob",)


class DebertaV2ForQuestionAnswering(ForQuestionAnswering, DebertaV2PreTrainedModel):
    base_model_class = DebertaV2Model


class DebertaV2ForMaskedLM(ForMaskedLM, DebertaV2PreTrainedModel):
    """Masked-token prediction. ``legacy=True`` (the default): ``cls.predictions``, its decoder tied to
    the word embeddings; ``legacy=False``: ``lm_predictions.lm_head``, which multiplies by the word
    embedding matrix itself. Neither renames the other's keys, as in the reference."""

    base_model_class = DebertaV2Model
    _tied_weights = {
        "cls.predictions.decoder.weight": "deberta.embeddings.word_embeddings.weight",
        "cls.predictions.decoder.bias": "cls.predictions.bias",
    }
    # The replaced-token-detection head that DeBERTa-v3 checkpoints carry.
    _ignore_on_load = [*DebertaV2PreTrainedModel._ignore_on_load, r"^mask_predictions\."]

    def build_head(self, config: DebertaV2Config) -> None:
        if config.legacy:
            self.cls = LegacyDebertaV2OnlyMLMHead(config)
        else:
            self._tied_weights = {}
            self.lm_predictions = DebertaV2OnlyMLMHead(config)

    def predict(self, hidden: torch.Tensor) -> torch.Tensor:
        if self.config.legacy:
            return self.cls(hidden)
        return self.lm_predictions(hidden, self.deberta.embeddings.word_embeddings.weight)

    def get_output_embeddings(self) -> nn.Module:
        return self.cls.predictions.decoder if self.config.legacy else self.lm_predictions.lm_head.dense


__all__ = [
    "DebertaV2Config",
    "DebertaV2ForMaskedLM",
    "DebertaV2ForQuestionAnswering",
    "DebertaV2ForSequenceClassification",
    "DebertaV2ForTokenClassification",
    "DebertaV2Model",
]
