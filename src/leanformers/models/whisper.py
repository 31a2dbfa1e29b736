"""Whisper (Radford et al., 2022): a pre-norm encoder-decoder Transformer over log-mel spectrograms.

The encoder reads ``input_features`` (batch, num_mel_bins, 2 * max_source_positions frames: 3000
for 30 s of audio, from ``processing/logmel.py``) through two 3-wide convolutions with GELU, the
second of stride 2, adds a position table (initialised with sinusoids but learned and stored in
the checkpoint), runs pre-norm layers and a final norm. The decoder embeds tokens, adds learned
positions, runs pre-norm layers with causal self-attention and cross-attention to the encoder
output, and a final norm; ``WhisperForConditionalGeneration`` projects onto the vocabulary with
``proj_out``, tied to the decoder's token embeddings.

Whisper attends over the whole 30-second window: the encoder takes no padding mask (the
``attention_mask`` argument is accepted, as the reference accepts it, and not used) and the
cross-attention reads every encoder position. Module paths equal the reference's checkpoint keys
(``model.encoder.conv1.weight``, ``model.decoder.layers.0.encoder_attn.k_proj.weight``, ``proj_out.weight``).
Decoding state is a ``Seq2SeqCache`` (modeling/seq2seq.py), as BART's.
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
from ..modeling.attention import Mask, attend
from ..modeling.base import PreTrainedModel
from ..modeling.checks import check_text_inputs, embedding_lookup, positive_int
from ..modeling.generation import GenerationMixin
from ..modeling.losses import masked_lm_loss, sequence_classification_loss
from ..modeling.outputs import (
    BaseModelOutput,
    BaseModelOutputWithPastAndCrossAttentions,
    Seq2SeqLMOutput,
    Seq2SeqModelOutput,
    SequenceClassifierOutput,
)
from ..modeling.seq2seq import (
    Seq2SeqCache,
    check_cache,
    encoder_outputs_of,
    head_output,
    model_output,
    shift_tokens_right,
)


class WhisperConfig(PretrainedConfig):
    """Whisper's settings (defaults: whisper-tiny's shapes with 6 heads, as the reference's);
    ``hidden_size``, ``num_attention_heads`` and ``num_hidden_layers`` read ``d_model``,
    ``encoder_attention_heads`` and ``encoder_layers``."""

    model_type: ClassVar[str] = "whisper"
    attribute_map: ClassVar[dict[str, str]] = {
        "num_key_value_heads": "encoder_attention_heads",
        "num_attention_heads": "encoder_attention_heads",
        "hidden_size": "d_model",
        "num_hidden_layers": "encoder_layers",
    }
    defaults: ClassVar[dict[str, Any]] = {
        "vocab_size": 51865,
        "num_mel_bins": 80,
        "encoder_layers": 4,
        "encoder_attention_heads": 6,
        "decoder_layers": 4,
        "decoder_attention_heads": 6,
        "decoder_ffn_dim": 1536,
        "encoder_ffn_dim": 1536,
        "encoder_layerdrop": 0.0,
        "decoder_layerdrop": 0.0,
        "decoder_start_token_id": 50257,
        "use_cache": True,
        "is_encoder_decoder": True,
        "activation_function": "gelu",
        "d_model": 384,
        "dropout": 0.0,
        "attention_dropout": 0.0,
        "activation_dropout": 0.0,
        "init_std": 0.02,
        "scale_embedding": False,
        "max_source_positions": 1500,
        "max_target_positions": 448,
        "pad_token_id": 50256,
        "bos_token_id": 50256,
        "eos_token_id": 50256,
        "suppress_tokens": None,
        "begin_suppress_tokens": [220, 50256],
        "use_weighted_layer_sum": False,
        "classifier_proj_size": 256,
        "apply_spec_augment": False,
        "mask_time_prob": 0.05,
        "mask_time_length": 10,
        "mask_time_min_masks": 2,
        "mask_feature_prob": 0.0,
        "mask_feature_length": 10,
        "mask_feature_min_masks": 0,
        "median_filter_width": 7,
        "tie_word_embeddings": True,
    }

    def validate(self) -> None:
        for key in ("vocab_size", "num_mel_bins", "encoder_layers", "encoder_attention_heads", "decoder_layers",
                    "decoder_attention_heads", "encoder_ffn_dim", "decoder_ffn_dim", "d_model",
                    "max_source_positions", "max_target_positions", "classifier_proj_size"):
            positive_int(key, getattr(self, key))
        for side in ("encoder", "decoder"):
            heads = getattr(self, f"{side}_attention_heads")
            if self.d_model % heads:
                raise ConfigError(
                    f"d_model ({self.d_model}) must be a multiple of {side}_attention_heads ({heads}) so that every "
                    "head gets the same width."
                )
        if self.d_model % 2:
            raise ConfigError(
                f"d_model ({self.d_model}) must be even: the encoder's positions start as sine/cosine pairs."
            )
        for key in ("dropout", "attention_dropout", "activation_dropout", "encoder_layerdrop", "decoder_layerdrop"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ConfigError(f"{key} must be a probability between 0 and 1, got {value!r}.")
        get_activation(self.activation_function, "activation_function")
        for key in ("pad_token_id", "decoder_start_token_id"):
            value = getattr(self, key, None)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or not 0 <= value < self.vocab_size):
                raise ConfigError(f"{key}={value!r} is not a token id of a vocabulary of {self.vocab_size}.")


# -- modules ------------------------------------------------------------------------------------


def sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> torch.Tensor:
    """(length, channels) sines then cosines at ``channels // 2`` timescales from 1 to ``max_timescale``."""
    increment = math.log(max_timescale) / (channels // 2 - 1)
    inverse = torch.exp(-increment * torch.arange(channels // 2))
    angles = torch.arange(length).view(-1, 1) * inverse.view(1, -1)
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class WhisperEncoderPositions(nn.Embedding):
    """The encoder's position table: sinusoids when initialised, then whatever the checkpoint holds;
    frozen, as in the reference."""

    def __init__(self, positions: int, width: int) -> None:
        super().__init__(positions, width)
        self.weight.requires_grad_(False)


class WhisperAttention(nn.Module):
    """Multi-head attention; the key projection has no bias (as in OpenAI's model)."""

    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.k_proj = nn.Linear(width, width, bias=False)
        self.v_proj = nn.Linear(width, width)
        self.q_proj = nn.Linear(width, width)
        self.out_proj = nn.Linear(width, width)

    def forward(self, hidden, mask, need_weights, keys_values=None, cache=None, layer=0):
        """Self-attention over ``hidden`` (appending to the ``KVCache`` ``cache``), or cross-attention
        over projected encoder ``keys_values``."""
        key, value = keys_values if keys_values is not None else (self.k_proj(hidden), self.v_proj(hidden))
        context, weights = attend(
            self.q_proj(hidden), key, value, mask, heads=self.heads, need_weights=need_weights,
            dropout=self.dropout if self.training else 0.0, cache=cache, layer=layer,
        )
        return self.out_proj(context), weights


class WhisperEncoderLayer(nn.Module):
    """Pre-norm: x + attention(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, config: WhisperConfig, side: str = "encoder") -> None:
        super().__init__()
        width, ffn = config.d_model, getattr(config, f"{side}_ffn_dim")
        self.self_attn = WhisperAttention(width, getattr(config, f"{side}_attention_heads"), config.attention_dropout)
        self.self_attn_layer_norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, ffn)
        self.fc2 = nn.Linear(ffn, width)
        self.final_layer_norm = nn.LayerNorm(width)
        self.act = get_activation(config.activation_function, "activation_function")
        self.dropout, self.activation_dropout = config.dropout, config.activation_dropout

    def _add(self, hidden: torch.Tensor, update: torch.Tensor) -> torch.Tensor:
        return hidden + F.dropout(update, self.dropout, self.training)

    def _feed_forward(self, hidden: torch.Tensor) -> torch.Tensor:
        update = F.dropout(self.act(self.fc1(self.final_layer_norm(hidden))), self.activation_dropout, self.training)
        return self._add(hidden, self.fc2(update))

    def forward(self, hidden: torch.Tensor, need_weights: bool):
        update, weights = self.self_attn(self.self_attn_layer_norm(hidden), None, need_weights)
        hidden = self._feed_forward(self._add(hidden, update))
        if hidden.dtype == torch.float16 and not bool(torch.isfinite(hidden).all()):
            # As the reference: keep half-precision activations finite.
            limit = torch.finfo(torch.float16).max - 1000
            hidden = hidden.clamp(-limit, limit)
        return hidden, weights


class WhisperDecoderLayer(WhisperEncoderLayer):
    def __init__(self, config: WhisperConfig) -> None:
        super().__init__(config, side="decoder")
        self.encoder_attn = WhisperAttention(config.d_model, config.decoder_attention_heads, config.attention_dropout)
        self.encoder_attn_layer_norm = nn.LayerNorm(config.d_model)

    def forward(self, hidden, mask, encoder_hidden, need_weights, cache, layer):
        update, weights = self.self_attn(self.self_attn_layer_norm(hidden), mask, need_weights,
                                         cache=None if cache is None else cache.self_attention, layer=layer)
        hidden = self._add(hidden, update)
        attention = self.encoder_attn

        def project() -> tuple[torch.Tensor, torch.Tensor]:
            return attention.k_proj(encoder_hidden), attention.v_proj(encoder_hidden)

        keys_values = project() if cache is None else cache.cross_keys_values(layer, project)
        update, crossed = attention(self.encoder_attn_layer_norm(hidden), None, need_weights, keys_values)
        return self._feed_forward(self._add(hidden, update)), weights, crossed


class WhisperPreTrainedModel(PreTrainedModel):
    config_class = WhisperConfig
    base_model_prefix = "model"
    main_input_name = "input_features"

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.init_std
        with torch.no_grad():
            if isinstance(module, WhisperEncoderPositions):
                module.weight.copy_(sinusoids(*module.weight.shape))
            elif isinstance(module, (nn.Linear, nn.Conv1d, nn.Embedding)):
                module.weight.normal_(0.0, std)
                if not isinstance(module, nn.Embedding) and module.bias is not None:
                    module.bias.zero_()
                if isinstance(module, nn.Embedding) and module.padding_idx is not None:
                    module.weight[module.padding_idx].zero_()
            elif isinstance(module, nn.LayerNorm):
                module.weight.fill_(1.0)
                module.bias.zero_()
            elif isinstance(module, WhisperForAudioClassification) and self.config.use_weighted_layer_sum:
                module.layer_weights.fill_(1.0 / (self.config.encoder_layers + 1))


class WhisperEncoder(WhisperPreTrainedModel):
    """Convolutions, positions, pre-norm layers, final norm. Takes exactly
    ``2 * max_source_positions`` frames (the feature extractor pads every clip to 30 s)."""

    def __init__(self, config: WhisperConfig) -> None:
        super().__init__(config)
        width = config.d_model
        self.conv1 = nn.Conv1d(config.num_mel_bins, width, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(width, width, kernel_size=3, stride=2, padding=1)
        self.embed_positions = WhisperEncoderPositions(config.max_source_positions, width)
        self.layers = nn.ModuleList(WhisperEncoderLayer(config) for _ in range(config.encoder_layers))
        self.layer_norm = nn.LayerNorm(width)

    def _check_features(self, input_features: Any) -> torch.Tensor:
        config = self.config
        frames = 2 * config.max_source_positions
        expected = f"(batch, {config.num_mel_bins} mel bins, {frames} frames)"
        if not isinstance(input_features, torch.Tensor) or not input_features.is_floating_point():
            got = (f"a {input_features.dtype} tensor" if isinstance(input_features, torch.Tensor)
                   else type(input_features).__name__)
            raise InputError(
                f"Whisper's encoder takes input_features, a float tensor {expected} from the feature extractor "
                f"(WhisperFeatureExtractor(...)(audio, sampling_rate=16000, return_tensors='pt')), got {got}."
            )
        if input_features.dim() != 3 or tuple(input_features.shape[1:]) != (config.num_mel_bins, frames):
            raise InputError(
                f"input_features must have shape {expected}, got {tuple(input_features.shape)}. Whisper reads "
                f"whole {frames}-frame windows: keep the feature extractor's default padding='max_length'"
                + (" (and the model's num_mel_bins)." if input_features.dim() == 3 else ".")
            )
        return input_features

    def forward(
        self,
        input_features: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        input_ids: torch.Tensor | None = None,
    ) -> BaseModelOutput | tuple:
        """``input_ids`` is another name for ``input_features`` (the shared ``generate`` names its
        source so); ``attention_mask`` is not used (Whisper attends over the whole window)."""
        output_attentions, output_hidden_states, return_dict = self._resolve(
            output_attentions, output_hidden_states, return_dict
        )
        if input_features is not None and input_ids is not None:
            raise InputError("Pass the spectrogram once: input_features or (its alias) input_ids, not both.")
        features = self._check_features(input_features if input_features is not None else input_ids)
        features = features.to(self.conv1.weight.dtype)
        hidden = F.gelu(self.conv2(F.gelu(self.conv1(features)))).transpose(1, 2)
        hidden = F.dropout(hidden + self.embed_positions.weight.to(hidden.dtype), self.config.dropout, self.training)
        all_hidden = (hidden,) if output_hidden_states else None
        all_weights = () if output_attentions else None
        for index, layer in enumerate(self.layers):
            # Layer drop (training only) skips whole layers at random, as the reference.
            if self.training and self.config.encoder_layerdrop > 0 and torch.rand([]) < self.config.encoder_layerdrop:
                continue
            hidden, weights = layer(hidden, output_attentions)
            if output_hidden_states and index < len(self.layers) - 1:
                all_hidden += (hidden,)
            if output_attentions:
                all_weights += (weights,)
        hidden = self.layer_norm(hidden)
        if output_hidden_states:
            # As the reference: the last entry is the normalised output, not the last layer's.
            all_hidden += (hidden,)
        output = BaseModelOutput(hidden, all_hidden, all_weights)
        return output if return_dict else output.to_tuple()


class WhisperDecoder(WhisperPreTrainedModel):
    """Token embeddings plus learned positions, pre-norm layers with causal self-attention and
    cross-attention to the encoder output, final norm."""

    def __init__(self, config: WhisperConfig) -> None:
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.d_model, config.pad_token_id)
        self.embed_positions = nn.Embedding(config.max_target_positions, config.d_model)
        self.layers = nn.ModuleList(WhisperDecoderLayer(config) for _ in range(config.decoder_layers))
        self.layer_norm = nn.LayerNorm(config.d_model)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        past_key_values: Seq2SeqCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> BaseModelOutputWithPastAndCrossAttentions | tuple:
        config = self.config
        output_attentions, output_hidden_states, return_dict = self._resolve(
            output_attentions, output_hidden_states, return_dict
        )
        use_cache = config.use_cache if use_cache is None else use_cache
        cache = check_cache(past_key_values, len(self.layers))
        if cache is None and use_cache:
            cache = Seq2SeqCache(len(self.layers))
        past = 0 if cache is None else cache.get_seq_length()
        batch, seq = check_text_inputs(input_ids, inputs_embeds, config.d_model, config.max_target_positions)
        if past + seq > config.max_target_positions:
            raise InputError(
                f"The decoder has seen {past} positions and gets {seq} more, past its "
                f"max_target_positions={config.max_target_positions}; stop or truncate earlier."
            )
        embeds = embedding_lookup(self.embed_tokens, input_ids, "decoder_input_ids") if inputs_embeds is None \
            else inputs_embeds
        hidden = embeds + self.embed_positions.weight[past : past + seq].to(embeds.dtype)
        hidden = F.dropout(hidden, config.dropout, self.training)
        if not isinstance(encoder_hidden_states, torch.Tensor) or encoder_hidden_states.dim() != 3 \
                or encoder_hidden_states.shape[0] != batch:
            got = tuple(encoder_hidden_states.shape) if isinstance(encoder_hidden_states, torch.Tensor) else None
            raise InputError(
                f"The decoder needs encoder_hidden_states of shape (batch {batch}, source length, "
                f"{config.d_model}) (the encoder's last_hidden_state), got {got}."
            )
        mask = Mask.padding(attention_mask, batch, past + seq, hidden.device, causal=True, offset=past)
        all_hidden = (hidden,) if output_hidden_states else None
        self_weights = () if output_attentions else None
        cross_weights = () if output_attentions else None
        for index, layer in enumerate(self.layers):
            if self.training and config.decoder_layerdrop > 0 and torch.rand([]) < config.decoder_layerdrop:
                continue
            hidden, weights, crossed = layer(hidden, mask, encoder_hidden_states, output_attentions, cache, index)
            if output_hidden_states and index < len(self.layers) - 1:
                all_hidden += (hidden,)
            if output_attentions:
                self_weights += (weights,)
                cross_weights += (crossed,)
        hidden = self.layer_norm(hidden)
        if output_hidden_states:
            all_hidden += (hidden,)
        output = BaseModelOutputWithPastAndCrossAttentions(hidden, cache, all_hidden, self_weights, cross_weights)
        return output if return_dict else output.to_tuple()


# -- models -------------------------------------------------------------------------------------


class WhisperModel(WhisperPreTrainedModel):
    """Encoder and decoder; returns the decoder's last hidden state."""

    def __init__(self, config: WhisperConfig) -> None:
        super().__init__(config)
        self.encoder = WhisperEncoder(config)
        self.decoder = WhisperDecoder(config)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.decoder.embed_tokens

    def get_encoder(self) -> WhisperEncoder:
        return self.encoder

    def forward(
        self,
        input_features: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: Any = None,
        past_key_values: Seq2SeqCache | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> Seq2SeqModelOutput | tuple:
        """``attention_mask`` (over the feature frames) is accepted and not used: Whisper attends over
        the whole window. ``decoder_input_ids`` start with ``config.decoder_start_token_id``."""
        output_attentions, output_hidden_states, return_dict = self._resolve(
            output_attentions, output_hidden_states, return_dict
        )
        if decoder_input_ids is None and decoder_inputs_embeds is None:
            raise InputError(
                "Pass decoder_input_ids (starting with config.decoder_start_token_id) or decoder_inputs_embeds."
            )
        if encoder_outputs is None:
            if input_features is None:
                raise InputError("Pass input_features (the log-mel spectrogram) or encoder_outputs.")
            encoded = self.encoder(input_features, output_attentions=output_attentions,
                                   output_hidden_states=output_hidden_states, return_dict=True)
        else:
            encoded = encoder_outputs_of(encoder_outputs)
        decoded = self.decoder(
            input_ids=decoder_input_ids, attention_mask=decoder_attention_mask,
            encoder_hidden_states=encoded.last_hidden_state, past_key_values=past_key_values,
            inputs_embeds=decoder_inputs_embeds, use_cache=use_cache, output_attentions=output_attentions,
            output_hidden_states=output_hidden_states, return_dict=True,
        )
        output = model_output(encoded, decoded)
        return output if return_dict else output.to_tuple()


class WhisperForConditionalGeneration(GenerationMixin, WhisperPreTrainedModel):
    """Whisper with its language-model head ``proj_out`` (tied to the decoder's token embeddings)."""

    _tied_weights: ClassVar[dict[str, str]] = {"proj_out.weight": "model.decoder.embed_tokens.weight"}

    def __init__(self, config: WhisperConfig) -> None:
        super().__init__(config)
        self.model = WhisperModel(config)
        self.proj_out = nn.Linear(config.d_model, config.vocab_size, bias=False)

    def get_encoder(self) -> WhisperEncoder:
        return self.model.encoder

    def get_output_embeddings(self) -> nn.Linear:
        return self.proj_out

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """Teacher-forcing decoder inputs: labels shifted right after ``decoder_start_token_id``."""
        return shift_tokens_right(labels, self.config.pad_token_id, self.config.decoder_start_token_id)

    def forward(
        self,
        input_features: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: Any = None,
        past_key_values: Seq2SeqCache | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> Seq2SeqLMOutput | tuple:
        """``labels`` (batch, target length <= max_target_positions), -100 where ignored, give the
        mean cross-entropy ``loss`` and, when no decoder inputs are given, the decoder inputs (labels
        shifted right); with labels no cache is kept."""
        return_dict = self.config.use_return_dict if return_dict is None else return_dict
        if labels is not None:
            if not isinstance(labels, torch.Tensor) or labels.dim() != 2:
                got = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
                raise InputError(f"labels must be a (batch, target length) tensor of token ids, got {got}.")
            if labels.shape[1] > self.config.max_target_positions:
                raise InputError(
                    f"labels have {labels.shape[1]} tokens, more than the decoder's max_target_positions "
                    f"({self.config.max_target_positions}); truncate them."
                )
            use_cache = False
            if decoder_input_ids is None and decoder_inputs_embeds is None:
                decoder_input_ids = self.prepare_decoder_input_ids_from_labels(labels)
        outputs = self.model(
            input_features, attention_mask, decoder_input_ids, decoder_attention_mask, encoder_outputs,
            past_key_values, decoder_inputs_embeds, use_cache, output_attentions, output_hidden_states,
            return_dict=True,
        )
        logits = self.proj_out(outputs.last_hidden_state)
        loss = None
        if labels is not None:
            if labels.shape != logits.shape[:2]:
                raise InputError(f"labels must be shaped like the decoder inputs {tuple(logits.shape[:2])}, got "
                                 f"{tuple(labels.shape)}.")
            loss = masked_lm_loss(logits, labels)
        output = head_output(Seq2SeqLMOutput, loss, logits, outputs)
        return output if return_dict else output.to_tuple()


class WhisperForAudioClassification(WhisperPreTrainedModel):
    """A label per clip: the encoder's output (or, with ``use_weighted_layer_sum``, a learned
    softmax-weighted sum of every hidden state), projected to ``classifier_proj_size``, averaged
    over time, classified."""

    base_model_prefix = "encoder"

    def __init__(self, config: WhisperConfig) -> None:
        super().__init__(config)
        self.encoder = WhisperEncoder(config)
        if config.use_weighted_layer_sum:
            layers = config.encoder_layers + 1
            self.layer_weights = nn.Parameter(torch.full((layers,), 1.0 / layers))
        self.projector = nn.Linear(config.d_model, config.classifier_proj_size)
        self.classifier = nn.Linear(config.classifier_proj_size, config.num_labels)

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.conv1

    def forward(
        self,
        input_features: torch.Tensor | None = None,
        encoder_outputs: Any = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> SequenceClassifierOutput | tuple:
        output_attentions, output_hidden_states, return_dict = self._resolve(
            output_attentions, output_hidden_states, return_dict
        )
        weighted = self.config.use_weighted_layer_sum
        if encoder_outputs is None:
            encoded = self.encoder(input_features, output_attentions=output_attentions,
                                   output_hidden_states=output_hidden_states or weighted, return_dict=True)
        else:
            encoded = encoder_outputs_of(encoder_outputs)
        if weighted:
            if encoded.hidden_states is None:
                raise InputError("use_weighted_layer_sum needs every encoder hidden state: pass encoder_outputs "
                                 "computed with output_hidden_states=True, or input_features.")
            stacked = torch.stack(encoded.hidden_states, dim=1)
            hidden = (stacked * F.softmax(self.layer_weights, dim=-1).view(-1, 1, 1)).sum(dim=1)
        else:
            hidden = encoded.last_hidden_state
        logits = self.classifier(self.projector(hidden).mean(dim=1))
        loss = None if labels is None else sequence_classification_loss(logits, labels, self.config)
        output = SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=encoded.hidden_states,
                                          attentions=encoded.attentions)
        return output if return_dict else output.to_tuple()


__all__ = [
    "WhisperConfig",
    "WhisperForAudioClassification",
    "WhisperForConditionalGeneration",
    "WhisperModel",
]
