"""BART (Lewis et al., 2019): a post-norm encoder-decoder Transformer with learned positions.

Both stacks embed tokens from one ``shared`` matrix (scaled by sqrt(d_model) when
``scale_embedding``), add learned positions (a table offset by 2, as fairseq's BART kept two rows for
padding), normalise (``layernorm_embedding``) and run post-norm layers; the decoder adds
cross-attention to the encoder's output. ``BartForConditionalGeneration`` projects onto the
vocabulary with the shared matrix plus ``final_logits_bias``.

The stacks take their position and embedding-norm choices as arguments, so Marian (sinusoidal
positions, no embedding norm) reuses them. Module paths equal the reference's checkpoint keys
(``model.encoder.layers.0.self_attn.q_proj.weight``). Decoding state is a ``Seq2SeqCache``
(modeling/seq2seq.py): self-attention keys and values in a ``KVCache``, cross-attention projections
of the encoder output computed once.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..configuration import PretrainedConfig
from ..errors import ConfigError, InputError
from ..modeling.activations import get_activation
from ..modeling.attention import (
    Mask,
    PackedBatch,
    attend,
    real_positions_only,
    run_encoder,
)
from ..modeling.base import PreTrainedModel
from ..modeling.checks import check_text_inputs, embedding_lookup, positive_int
from ..modeling.generation import GenerationMixin
from ..modeling.losses import masked_lm_loss, sequence_classification_loss
from ..modeling.outputs import (
    BaseModelOutput,
    BaseModelOutputWithPastAndCrossAttentions,
    Seq2SeqLMOutput,
    Seq2SeqModelOutput,
    Seq2SeqSequenceClassifierOutput,
)
from ..modeling.seq2seq import (
    Seq2SeqCache,
    check_cache,
    encoder_outputs_of,
    head_output,
    model_output,
    shift_tokens_right,
)


class BartConfig(PretrainedConfig):
    """BART's settings; ``hidden_size``, ``num_attention_heads`` and ``num_hidden_layers`` read
    ``d_model``, ``encoder_attention_heads`` and ``encoder_layers``. Three labels by default, as in
    the reference (MNLI)."""

    model_type: ClassVar[str] = "bart"
    attribute_map: ClassVar[dict[str, str]] = {
        "num_attention_heads": "encoder_attention_heads",
        "hidden_size": "d_model",
        "num_hidden_layers": "encoder_layers",
    }
    defaults: ClassVar[dict[str, Any]] = {
        "vocab_size": 50265,
        "max_position_embeddings": 1024,
        "encoder_layers": 12,
        "encoder_ffn_dim": 4096,
        "encoder_attention_heads": 16,
        "decoder_layers": 12,
        "decoder_ffn_dim": 4096,
        "decoder_attention_heads": 16,
        "encoder_layerdrop": 0.0,
        "decoder_layerdrop": 0.0,
        "activation_function": "gelu",
        "d_model": 1024,
        "dropout": 0.1,
        "attention_dropout": 0.0,
        "activation_dropout": 0.0,
        "init_std": 0.02,
        "classifier_dropout": 0.0,
        "scale_embedding": False,
        "use_cache": True,
        "pad_token_id": 1,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "is_encoder_decoder": True,
        "decoder_start_token_id": 2,
        "forced_eos_token_id": 2,
        "is_decoder": False,
        "tie_word_embeddings": True,
    }
    default_num_labels: ClassVar[int] = 3

    def __init__(self, **kwargs: Any) -> None:
        if kwargs.get("id2label") is None and kwargs.get("num_labels") is None:
            kwargs = {**kwargs, "num_labels": self.default_num_labels}
        super().__init__(**kwargs)

    def validate(self) -> None:
        for key in ("vocab_size", "max_position_embeddings", "encoder_layers", "encoder_ffn_dim",
                    "encoder_attention_heads", "decoder_layers", "decoder_ffn_dim", "decoder_attention_heads",
                    "d_model"):
            positive_int(key, getattr(self, key))
        for side in ("encoder", "decoder"):
            heads = getattr(self, f"{side}_attention_heads")
            if self.d_model % heads:
                raise ConfigError(
                    f"d_model ({self.d_model}) must be a multiple of {side}_attention_heads ({heads}) so that every "
                    "head gets the same width."
                )
        for key in ("dropout", "attention_dropout", "activation_dropout", "classifier_dropout",
                    "encoder_layerdrop", "decoder_layerdrop"):
            value = getattr(self, key, None)  # Marian's configs have no classifier_dropout
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not 0 <= value <= 1):
                raise ConfigError(f"{key} must be a probability between 0 and 1, got {value!r}.")
        get_activation(self.activation_function, "activation_function")
        for key in ("pad_token_id", "decoder_start_token_id"):
            value = getattr(self, key, None)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or not 0 <= value < self.vocab_size):
                raise ConfigError(f"{key}={value!r} is not a token id of a vocabulary of {self.vocab_size}.")


# -- modules ------------------------------------------------------------------------------------


class BartScaledWordEmbedding(nn.Embedding):
    """Token embeddings times ``embed_scale`` (sqrt(d_model) when the config scales them)."""

    def __init__(self, vocab: int, width: int, padding_idx: int | None, embed_scale: float) -> None:
        super().__init__(vocab, width, padding_idx=padding_idx)
        self.embed_scale = embed_scale

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return super().forward(ids) * self.embed_scale


class BartLearnedPositionalEmbedding(nn.Embedding):
    """Learned positions; position p reads row p + 2."""

    offset = 2

    def __init__(self, positions: int, width: int) -> None:
        super().__init__(positions + self.offset, width)

    def forward(self, start: int, length: int) -> torch.Tensor:
        """(length, width) embeddings of positions ``start`` ... ``start + length - 1``."""
        return self.weight[start + self.offset : start + self.offset + length]


class BartAttention(nn.Module):
    """Multi-head attention with biased projections, scores scaled by head_dim ** -0.5."""

    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.k_proj = nn.Linear(width, width)
        self.v_proj = nn.Linear(width, width)
        self.q_proj = nn.Linear(width, width)
        self.out_proj = nn.Linear(width, width)

    def forward(
        self,
        hidden: torch.Tensor,
        mask: Mask | None,
        need_weights: bool,
        keys_values: tuple[torch.Tensor, torch.Tensor] | None = None,
        cache: Any = None,
        layer: int = 0,
        group: int = 1,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Self-attention over ``hidden`` (appending to the ``KVCache`` ``cache``), or cross-attention
        over projected encoder ``keys_values``. ``group`` > 1: ``keys_values`` hold one row per
        ``group`` consecutive rows of ``hidden``, whose queries then attend to it together."""
        key, value = keys_values if keys_values is not None else (self.k_proj(hidden), self.v_proj(hidden))
        query = self.q_proj(hidden)
        rows, seq = query.shape[:2]
        if group > 1:
            # Cross-attention has no order among queries: a group's rows are one longer query.
            query = query.reshape(rows // group, group * seq, -1)
        context, weights = attend(
            query, key, value, mask, heads=self.heads, need_weights=need_weights,
            dropout=self.dropout if self.training else 0.0, cache=cache, layer=layer,
        )
        if group > 1:
            context = context.reshape(rows, seq, -1)
            if weights is not None:
                weights = weights.unflatten(2, (group, seq)).transpose(1, 2).flatten(0, 1)
        return self.out_proj(context), weights


class BartEncoderLayer(nn.Module):
    def __init__(self, config: BartConfig, decoder: bool = False) -> None:
        super().__init__()
        side = "decoder" if decoder else "encoder"
        width = config.d_model
        self.self_attn = BartAttention(width, getattr(config, f"{side}_attention_heads"), config.attention_dropout)
        self.self_attn_layer_norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, getattr(config, f"{side}_ffn_dim"))
        self.fc2 = nn.Linear(getattr(config, f"{side}_ffn_dim"), width)
        self.final_layer_norm = nn.LayerNorm(width)
        self.act = get_activation(config.activation_function, "activation_function")
        self.dropout, self.activation_dropout = config.dropout, config.activation_dropout

    def _residual(self, hidden: torch.Tensor, update: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
        return norm(hidden + F.dropout(update, self.dropout, self.training))

    def _feed_forward(self, hidden: torch.Tensor) -> torch.Tensor:
        update = F.dropout(self.act(self.fc1(hidden)), self.activation_dropout, self.training)
        hidden = self._residual(hidden, self.fc2(update), self.final_layer_norm)
        if hidden.dtype == torch.float16 and not bool(torch.isfinite(hidden).all()):
            # As the reference: keep half-precision activations finite.
            limit = torch.finfo(torch.float16).max - 1000
            hidden = hidden.clamp(-limit, limit)
        return hidden

    def forward(self, hidden: torch.Tensor, mask: Mask | None, need_weights: bool):
        update, weights = self.self_attn(hidden, mask, need_weights)
        return self._feed_forward(self._residual(hidden, update, self.self_attn_layer_norm)), weights


class BartDecoderLayer(BartEncoderLayer):
    def __init__(self, config: BartConfig) -> None:
        super().__init__(config, decoder=True)
        self.encoder_attn = BartAttention(config.d_model, config.decoder_attention_heads, config.attention_dropout)
        self.encoder_attn_layer_norm = nn.LayerNorm(config.d_model)

    def forward(self, hidden, mask, encoder_hidden, encoder_mask, cross_mask, need_weights, cache, layer, group=1):
        """``group`` > 1: ``encoder_hidden``, ``encoder_mask`` and ``cross_mask`` hold one row per
        ``group`` rows of ``hidden`` (see ``Seq2SeqCache.share_source_rows``)."""
        update, weights = self.self_attn(hidden, mask, need_weights, cache=None if cache is None else
                                         cache.self_attention, layer=layer)
        hidden = self._residual(hidden, update, self.self_attn_layer_norm)
        attention = self.encoder_attn

        def project() -> tuple[torch.Tensor, torch.Tensor]:
            # Padded source positions are masked out of cross-attention: they are not projected (zeros).
            return (real_positions_only(attention.k_proj, encoder_hidden, encoder_mask, padding_in_output=False),
                    real_positions_only(attention.v_proj, encoder_hidden, encoder_mask, padding_in_output=False))

        keys_values = project() if cache is None else cache.cross_keys_values(layer, project)
        update, crossed = attention(hidden, cross_mask, need_weights, keys_values, group=group)
        hidden = self._residual(hidden, update, self.encoder_attn_layer_norm)
        return self._feed_forward(hidden), weights, crossed


def _resolve(config: PretrainedConfig, output_attentions, output_hidden_states, return_dict) -> tuple[bool, bool, bool]:
    return (
        config.output_attentions if output_attentions is None else output_attentions,
        config.output_hidden_states if output_hidden_states is None else output_hidden_states,
        config.use_return_dict if return_dict is None else return_dict,
    )


class BartStack(nn.Module):
    """What both stacks share: scaled token embeddings plus positions, an optional embedding norm."""

    def __init__(self, config: BartConfig, positions: nn.Module, layernorm_embedding: bool, vocab: int) -> None:
        super().__init__()
        self.config = config
        scale = math.sqrt(config.d_model) if config.scale_embedding else 1.0
        self.embed_tokens = BartScaledWordEmbedding(vocab, config.d_model, config.pad_token_id, scale)
        self.embed_positions = positions
        if layernorm_embedding:
            self.layernorm_embedding = nn.LayerNorm(config.d_model)

    def _embed(self, input_ids, inputs_embeds, start: int, name: str) -> tuple[torch.Tensor, int, int]:
        config = self.config
        batch, seq = check_text_inputs(input_ids, inputs_embeds, config.d_model, config.max_position_embeddings)
        if start + seq > config.max_position_embeddings:
            raise InputError(
                f"The decoder has seen {start} positions and gets {seq} more, past its "
                f"max_position_embeddings={config.max_position_embeddings}; stop or truncate earlier."
            )
        inputs_embeds = self._token_embeddings(input_ids, inputs_embeds, name)
        hidden = inputs_embeds + self.embed_positions(start, seq).to(inputs_embeds.dtype)
        if hasattr(self, "layernorm_embedding"):
            hidden = self.layernorm_embedding(hidden)
        return F.dropout(hidden, config.dropout, self.training), batch, seq

    def _token_embeddings(self, input_ids, inputs_embeds, name: str) -> torch.Tensor:
        """Given embeddings are taken as they are (already scaled, as the reference takes them)."""
        return embedding_lookup(self.embed_tokens, input_ids, name) if inputs_embeds is None else inputs_embeds


class BartEncoder(BartStack):
    def __init__(self, config: BartConfig, positions: nn.Module | None = None, layernorm_embedding: bool = True) -> None:
        positions = positions or BartLearnedPositionalEmbedding(config.max_position_embeddings, config.d_model)
        super().__init__(config, positions, layernorm_embedding, config.vocab_size)
        self.layers = nn.ModuleList(BartEncoderLayer(config) for _ in range(config.encoder_layers))

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        padding_unread: bool = False,
    ) -> BaseModelOutput | tuple:
        """The source's hidden states. ``padding_unread`` (generate passes it: its decoder reads the
        source through the padding mask only) lets padded positions stay uncomputed (zeros)."""
        output_attentions, output_hidden_states, return_dict = _resolve(
            self.config, output_attentions, output_hidden_states, return_dict
        )
        config = self.config
        hidden, _, _ = self._embed(input_ids, inputs_embeds, 0, "input_ids")
        hidden, all_hidden, all_weights = run_encoder(
            self._run_layers, hidden, attention_mask, output_attentions, output_hidden_states,
            unpad_inputs=getattr(config, "unpad_inputs", None),
            macs_per_token=config.d_model * (4 * config.d_model + 2 * config.encoder_ffn_dim),
            padding_in_output=not padding_unread,
        )
        output = BaseModelOutput(hidden, all_hidden, all_weights)
        return output if return_dict else output.to_tuple()

    def _run_layers(self, hidden: torch.Tensor, mask: Mask | PackedBatch | None, output_attentions: bool,
                    output_hidden_states: bool) -> tuple[torch.Tensor, tuple | None, tuple | None]:
        all_hidden = (hidden,) if output_hidden_states else None
        all_weights = () if output_attentions else None
        for layer in self.layers:
            # Layer drop (training only) skips whole layers at random, as the reference.
            if self.training and self.config.encoder_layerdrop > 0 and torch.rand([]) < self.config.encoder_layerdrop:
                continue
            hidden, weights = layer(hidden, mask, output_attentions)
            if output_hidden_states:
                all_hidden += (hidden,)
            if output_attentions:
                all_weights += (weights,)
        return hidden, all_hidden, all_weights


class BartDecoder(BartStack):
    def __init__(self, config: BartConfig, positions: nn.Module | None = None, layernorm_embedding: bool = True,
                 vocab: int | None = None) -> None:
        positions = positions or BartLearnedPositionalEmbedding(config.max_position_embeddings, config.d_model)
        super().__init__(config, positions, layernorm_embedding, vocab or config.vocab_size)
        self.layers = nn.ModuleList(BartDecoderLayer(config) for _ in range(config.decoder_layers))

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        past_key_values: Seq2SeqCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> BaseModelOutputWithPastAndCrossAttentions | tuple:
        config = self.config
        output_attentions, output_hidden_states, return_dict = _resolve(
            config, output_attentions, output_hidden_states, return_dict
        )
        use_cache = config.use_cache if use_cache is None else use_cache
        cache = check_cache(past_key_values, len(self.layers))
        if cache is None and use_cache:
            cache = Seq2SeqCache(len(self.layers))
        past = 0 if cache is None else cache.get_seq_length()
        hidden, batch, seq = self._embed(input_ids, inputs_embeds, past, "decoder_input_ids")
        if not isinstance(encoder_hidden_states, torch.Tensor) or encoder_hidden_states.dim() != 3 \
                or encoder_hidden_states.shape[0] != batch:
            got = tuple(encoder_hidden_states.shape) if isinstance(encoder_hidden_states, torch.Tensor) else None
            raise InputError(
                f"The decoder needs encoder_hidden_states of shape (batch {batch}, source length, "
                f"{config.d_model}) (the encoder's last_hidden_state), got {got}."
            )
        mask = Mask.padding(attention_mask, batch, past + seq, hidden.device, causal=True, offset=past)
        # Rows with the same source (beam search's copies) share one cross projection of it.
        group = 1 if cache is None else cache.share_source_rows(encoder_hidden_states, encoder_attention_mask)
        if group > 1:
            encoder_hidden_states = encoder_hidden_states[::group]
            if encoder_attention_mask is not None:
                encoder_attention_mask = encoder_attention_mask[::group]
        cross_mask = Mask.padding(encoder_attention_mask, batch // group, encoder_hidden_states.shape[1], hidden.device)
        all_hidden = (hidden,) if output_hidden_states else None
        self_weights = () if output_attentions else None
        cross_weights = () if output_attentions else None
        for index, layer in enumerate(self.layers):
            if self.training and config.decoder_layerdrop > 0 and torch.rand([]) < config.decoder_layerdrop:
                continue
            hidden, weights, crossed = layer(hidden, mask, encoder_hidden_states, encoder_attention_mask, cross_mask,
                                             output_attentions, cache, index, group)
            if output_hidden_states:
                all_hidden += (hidden,)
            if output_attentions:
                self_weights += (weights,)
                cross_weights += (crossed,)
        output = BaseModelOutputWithPastAndCrossAttentions(hidden, cache, all_hidden, self_weights, cross_weights)
        return output if return_dict else output.to_tuple()


class BartClassificationHead(nn.Module):
    """dense, tanh, out_proj over the last end-of-sequence token's decoder state."""

    def __init__(self, width: int, labels: int, dropout: float) -> None:
        super().__init__()
        self.dense = nn.Linear(width, width)
        self.out_proj = nn.Linear(width, labels)
        self.dropout = dropout

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        hidden = torch.tanh(self.dense(F.dropout(hidden, self.dropout, self.training)))
        return self.out_proj(F.dropout(hidden, self.dropout, self.training))


# -- models -------------------------------------------------------------------------------------


class BartPreTrainedModel(PreTrainedModel):
    config_class = BartConfig
    base_model_prefix = "model"
    # fairseq conversions left version counters in some files; a generation checkpoint's logits
    # bias means nothing to the other heads.
    _ignore_on_load: ClassVar[list[str]] = [r"(^|\.)(encoder|decoder)\.version$", r"^final_logits_bias$"]

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.init_std
        with torch.no_grad():
            if isinstance(module, (nn.Linear, nn.Embedding)) and not getattr(module, "fixed", False):
                module.weight.normal_(0.0, std)
                if isinstance(module, nn.Linear) and module.bias is not None:
                    module.bias.zero_()
                if isinstance(module, nn.Embedding) and module.padding_idx is not None:
                    module.weight[module.padding_idx].zero_()
            elif isinstance(module, nn.LayerNorm):
                module.weight.fill_(1.0)
                module.bias.zero_()
            elif hasattr(module, "final_logits_bias"):
                module.final_logits_bias.zero_()

    def get_encoder(self) -> BartEncoder:
        return self.base_model.encoder

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """Teacher-forcing decoder inputs: labels shifted right after ``decoder_start_token_id``."""
        return shift_tokens_right(labels, self.config.pad_token_id, getattr(self.config, "decoder_start_token_id", None))


class BartModel(BartPreTrainedModel):
    """Encoder and decoder over one shared embedding; returns the decoder's last hidden state.
    Without decoder inputs, the decoder reads the input shifted right (BART's denoising setup)."""

    _tied_weights: ClassVar[dict[str, str]] = {
        "encoder.embed_tokens.weight": "shared.weight",
        "decoder.embed_tokens.weight": "shared.weight",
    }
    # Without decoder inputs, BART's decoder reads the source shifted right (its denoising objective).
    decoder_reads_shifted_source: ClassVar[bool] = True

    def __init__(self, config: BartConfig) -> None:
        super().__init__(config)
        scale = math.sqrt(config.d_model) if config.scale_embedding else 1.0
        self.shared = BartScaledWordEmbedding(config.vocab_size, config.d_model, config.pad_token_id, scale)
        self.encoder = BartEncoder(config)
        self.decoder = BartDecoder(config)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.shared

    def get_encoder(self) -> BartEncoder:
        return self.encoder

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: Any = None,
        past_key_values: Seq2SeqCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> Seq2SeqModelOutput | tuple:
        output_attentions, output_hidden_states, return_dict = self._resolve(
            output_attentions, output_hidden_states, return_dict
        )
        if decoder_input_ids is None and decoder_inputs_embeds is None:
            if input_ids is None or not self.decoder_reads_shifted_source:
                raise InputError(
                    "Pass decoder_input_ids (start with config.decoder_start_token_id) or decoder_inputs_embeds"
                    + (", or input_ids to shift right." if self.decoder_reads_shifted_source else ".")
                )
            decoder_input_ids = shift_tokens_right(input_ids, self.config.pad_token_id,
                                                   getattr(self.config, "decoder_start_token_id", None))
        if encoder_outputs is None:
            encoded = self.encoder(input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds,
                                   output_attentions=output_attentions, output_hidden_states=output_hidden_states,
                                   return_dict=True)
        else:
            encoded = encoder_outputs_of(encoder_outputs)
        decoded = self.decoder(
            input_ids=decoder_input_ids, attention_mask=decoder_attention_mask,
            encoder_hidden_states=encoded.last_hidden_state, encoder_attention_mask=attention_mask,
            past_key_values=past_key_values, inputs_embeds=decoder_inputs_embeds, use_cache=use_cache,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states, return_dict=True,
        )
        output = model_output(encoded, decoded)
        return output if return_dict else output.to_tuple()


class BartForConditionalGeneration(GenerationMixin, BartPreTrainedModel):
    """BART with its language-model head: the shared matrix plus ``final_logits_bias`` (a buffer
    older files may lack; it is then zero)."""

    base_model_class: ClassVar[type[BartModel]] = BartModel
    _tied_weights: ClassVar[dict[str, str]] = {
        "model.encoder.embed_tokens.weight": "model.shared.weight",
        "model.decoder.embed_tokens.weight": "model.shared.weight",
        "lm_head.weight": "model.shared.weight",
    }

    def __init__(self, config: BartConfig) -> None:
        super().__init__(config)
        self.model = self.base_model_class(config)
        vocab = self.model.decoder.embed_tokens.num_embeddings
        self.register_buffer("final_logits_bias", torch.zeros(1, vocab))
        self.lm_head = nn.Linear(config.d_model, vocab, bias=False)

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def _load_checkpoint(self, tensors, dtype: torch.dtype, ignore_mismatched_sizes: bool):
        report = super()._load_checkpoint(tensors, dtype, ignore_mismatched_sizes)
        # A file without the bias means zeros (the reference's default): not worth a warning.
        report.missing = [key for key in report.missing if key != "final_logits_bias"]
        return report

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: Any = None,
        past_key_values: Seq2SeqCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> Seq2SeqLMOutput | tuple:
        """``labels`` (batch, target length), -100 where ignored, give the mean cross-entropy ``loss``
        and, when no decoder inputs are given, the decoder inputs (labels shifted right); with labels
        no cache is kept, as in the reference."""
        return_dict = self.config.use_return_dict if return_dict is None else return_dict
        if labels is not None:
            use_cache = False
            if decoder_input_ids is None and decoder_inputs_embeds is None:
                decoder_input_ids = self.prepare_decoder_input_ids_from_labels(labels)
        outputs = self.model(
            input_ids, attention_mask, decoder_input_ids, decoder_attention_mask, encoder_outputs, past_key_values,
            inputs_embeds, decoder_inputs_embeds, use_cache, output_attentions, output_hidden_states, return_dict=True,
        )
        logits = self.lm_head(outputs.last_hidden_state) + self.final_logits_bias.to(outputs.last_hidden_state.dtype)
        loss = None
        if labels is not None:
            if not isinstance(labels, torch.Tensor) or labels.shape != logits.shape[:2]:
                got = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
                raise InputError(f"labels must be a {tuple(logits.shape[:2])} tensor of token ids like the decoder "
                                 f"inputs, got {got}.")
            loss = masked_lm_loss(logits, labels)
        output = head_output(Seq2SeqLMOutput, loss, logits, outputs)
        return output if return_dict else output.to_tuple()


class BartForSequenceClassification(BartPreTrainedModel):
    """A label for the whole input from the decoder's state at the last end-of-sequence token
    (every row must hold the same number of them, as in the reference)."""

    _tied_weights: ClassVar[dict[str, str]] = {
        "model.encoder.embed_tokens.weight": "model.shared.weight",
        "model.decoder.embed_tokens.weight": "model.shared.weight",
    }

    def __init__(self, config: BartConfig) -> None:
        super().__init__(config)
        self.model = BartModel(config)
        self.classification_head = BartClassificationHead(config.d_model, config.num_labels,
                                                          config.classifier_dropout or 0.0)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: Any = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> Seq2SeqSequenceClassifierOutput | tuple:
        return_dict = self.config.use_return_dict if return_dict is None else return_dict
        if not isinstance(input_ids, torch.Tensor):
            raise InputError("BartForSequenceClassification needs input_ids: it pools at the end-of-sequence tokens.")
        if labels is not None:
            use_cache = False
        outputs = self.model(
            input_ids, attention_mask, decoder_input_ids, decoder_attention_mask, encoder_outputs, None,
            inputs_embeds, decoder_inputs_embeds, use_cache, output_attentions, output_hidden_states, return_dict=True,
        )
        hidden = outputs.last_hidden_state
        eos = input_ids.eq(self.config.eos_token_id).to(hidden.device)
        counts = eos.sum(1)
        if hidden.shape[1] != input_ids.shape[1] or bool((counts == 0).any()) or bool((counts != counts[0]).any()):
            raise InputError(
                f"Every row of input_ids must hold the same number (at least one) of end-of-sequence tokens "
                f"(id {self.config.eos_token_id}), and the decoder inputs must be as long; got counts "
                f"{counts.tolist()}."
            )
        pooled = hidden[eos].view(hidden.shape[0], -1, hidden.shape[-1])[:, -1]
        logits = self.classification_head(pooled)
        loss = None if labels is None else sequence_classification_loss(logits, labels, self.config)
        output = head_output(Seq2SeqSequenceClassifierOutput, loss, logits, outputs)
        return output if return_dict else output.to_tuple()


__all__ = [
    "BartConfig",
    "BartForConditionalGeneration",
    "BartForSequenceClassification",
    "BartModel",
]
