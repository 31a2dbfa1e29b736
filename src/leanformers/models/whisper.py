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

``WhisperForConditionalGeneration.generate`` follows the reference's Whisper rules on top of the
shared decoding loop (``modeling/generation.decode``): the decoder prompt (start, language,
task, no-timestamps), the timestamp logits rules, and the window-by-window loop over the audio
(``WhisperGeneration``).
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

    def generate(
        self,
        input_features: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        generation_config: Any = None,
        language: str | list[str] | None = None,
        task: str | None = None,
        return_timestamps: bool | None = None,
        is_multilingual: bool | None = None,
        prompt_ids: Any = None,
        temperature: float | list[float] | tuple[float, ...] | None = None,
        return_segments: bool = False,
        streamer: Any = None,
        monitor_progress: Any = None,
        **kwargs: Any,
    ) -> torch.Tensor | dict[str, Any]:
        """Transcribe (or translate) log-mel ``input_features`` (batch, mel bins, frames), as the
        reference's Whisper ``generate``: the (batch * num_return_sequences, length) generated ids
        without the decoder prompt and EOS, right-padded with ``pad_token_id``.

        ``language`` ("en", "english" or "<|en|>", or one per clip) and ``task`` ("transcribe",
        "translate") fill the decoder prompt; a multilingual model given no language detects each
        clip's from the first window. ``return_timestamps`` lets the model predict timestamp
        tokens (kept in the output). Audio longer than one window (``2 * max_source_positions``
        frames, 30 s) is decoded window by window, led by the timestamps; a batch of long clips
        needs the feature extractor's ``attention_mask``. ``prompt_ids`` (``<|startofprev|>`` and
        text ids) condition the first window. Sampling happens when ``temperature`` > 0 (the first
        value of a sequence), as in the reference, whatever ``do_sample`` says. ``return_segments``
        returns ``{"sequences", "segments"}`` with each segment's start and end in seconds, tokens
        and the window's full output. Other keyword arguments are generation settings
        (``num_beams``, ``max_new_tokens``, ...)."""
        return WhisperGeneration(self)(
            input_features, attention_mask, generation_config, language, task, return_timestamps, is_multilingual,
            prompt_ids, temperature, return_segments, streamer, monitor_progress, kwargs,
        )

    def detect_language(self, input_features: torch.Tensor, generation_config: Any = None) -> torch.Tensor:
        """(batch,) the language token id the model finds likeliest for each clip's first window."""
        generation = WhisperGeneration(self)
        config = generation_config if generation_config is not None else self.generation_config
        if config.__dict__.get("lang_to_id") is None or config.decoder_start_token_id is None:
            raise ConfigError(
                "Language detection needs generation_config.lang_to_id and decoder_start_token_id (a multilingual "
                "Whisper checkpoint's generation config)."
            )
        features = generation._check_features(input_features)[:, :, : generation.window]
        features = F.pad(features, (0, generation.window - features.shape[-1]))
        with torch.no_grad():
            encoded = self.get_encoder()(input_features=features, return_dict=True).last_hidden_state
            return generation.detect_language(encoded, config)

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


# -- generation ---------------------------------------------------------------------------------

TIME_PRECISION = 0.02  # seconds per timestamp token
FRAME_PRECISION = 0.01  # seconds per mel frame
TASKS = ("translate", "transcribe")

# Options of the reference's Whisper generate that this one does not implement: refused, never ignored.
UNSUPPORTED = {
    "return_token_timestamps": "token-level timestamps (cross-attention alignment)",
    "condition_on_prev_tokens": "conditioning each window on the previous one's text",
    "compression_ratio_threshold": "temperature fallback",
    "logprob_threshold": "temperature fallback",
    "no_speech_threshold": "no-speech detection",
    "return_dict_in_generate": "dictionary outputs (return_segments=True gives the segments)",
    "force_unique_generate_call": "a single decoding call over long audio",
    "decoder_input_ids": "a hand-made decoder prompt (use language=, task= and prompt_ids=)",
    "encoder_outputs": "precomputed encoder outputs",
    "logits_processor": "custom logits processors",
    "stopping_criteria": "custom stopping criteria",
    "prefix_allowed_tokens_fn": "constrained decoding",
}
ACCEPTED = (
    "input_features, attention_mask, generation_config, language, task, return_timestamps, is_multilingual, "
    "prompt_ids, temperature, return_segments, streamer, monitor_progress"
)


class WhisperTimestamps:
    """The timestamp rules of Whisper's decoding, on each step's scores: no ``<|notimestamps|>``;
    timestamps come in pairs (a timestamp after text must be followed by another, unless the text
    ends, and a pair by text); they never go back in time, and a pair never repeats its start;
    the first token is a timestamp no later than ``max_initial_timestamp_index``; and when the
    timestamps together are more likely than the likeliest text token, a timestamp it is."""

    def __init__(self, no_timestamps: int, eos: int, begin: int, max_initial: int | None) -> None:
        self.no_timestamps, self.first, self.eos = no_timestamps, no_timestamps + 1, eos
        self.begin, self.max_initial = begin, max_initial

    def __call__(self, ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        scores = scores.clone()
        scores[:, self.no_timestamps] = -math.inf
        floors = []
        for row, tokens in enumerate(ids[:, self.begin:].tolist()):
            last_is_time = len(tokens) >= 1 and tokens[-1] >= self.first
            before_last_is_time = len(tokens) < 2 or tokens[-2] >= self.first
            if last_is_time:
                if before_last_is_time:
                    scores[row, self.first:] = -math.inf
                else:
                    scores[row, : self.eos] = -math.inf
            times = [token for token in tokens if token >= self.first]
            if not times:
                floors.append(self.first)
            else:  # the closing timestamp of a pair may equal its start; a new pair starts later
                floors.append(times[-1] if last_is_time and not before_last_is_time else times[-1] + 1)
        vocab = torch.arange(scores.shape[-1], device=scores.device)
        floor = torch.tensor(floors, device=scores.device)[:, None]
        scores.masked_fill_((vocab >= self.first) & (vocab < floor), -math.inf)
        if ids.shape[1] == self.begin:
            scores[:, : self.first] = -math.inf
            if self.max_initial is not None:
                scores[:, self.first + self.max_initial + 1:] = -math.inf
        log_probs = F.log_softmax(scores.float(), dim=-1)
        time_mass = log_probs[:, self.first:].logsumexp(dim=-1)
        best_text = log_probs[:, : self.first].max(dim=-1).values
        scores[:, : self.first].masked_fill_((time_mass > best_text)[:, None], -math.inf)
        return scores


def _setting(config: Any, key: str) -> Any:
    """A generation config's value for ``key``, None when it has no such entry."""
    return config.__dict__.get(key)


def _language_id(language: Any, config: Any) -> int:
    """The token id of ``language``, given as a code ("en"), a name ("english") or a token ("<|en|>")."""
    from ..processing.seq2seq_tokenizers import (
        WHISPER_LANGUAGE_CODES,
        WHISPER_LANGUAGES,
    )

    lang_to_id = _setting(config, "lang_to_id")
    known = sorted(token[2:-2] for token in lang_to_id)
    if not isinstance(language, str):
        raise InputError(f"language must be a string such as 'en', 'english' or '<|en|>', got {language!r}.")
    key = language.lower()
    if key in lang_to_id:
        token = key
    elif key in WHISPER_LANGUAGE_CODES:
        token = f"<|{WHISPER_LANGUAGE_CODES[key]}|>"
    elif key in WHISPER_LANGUAGES:
        token = f"<|{key}|>"
    else:
        raise InputError(
            f"Unknown language {language!r}: give a Whisper language code, name or token, e.g. 'en', 'english' or "
            f"'<|en|>'. This model knows: {', '.join(known)}."
        )
    if token not in lang_to_id:
        raise InputError(
            f"Language {language!r} ({token}) is not one this model was trained on (generation_config.lang_to_id); "
            f"it knows: {', '.join(known)}."
        )
    return lang_to_id[token]


def _forced_prompt(config: Any, model_config: Any) -> list[int | None]:
    """The tokens after the start token that an older checkpoint fixes with ``forced_decoder_ids``
    (pairs of position and token, from position 1 on; None: the language is to be detected)."""
    forced = _setting(config, "forced_decoder_ids")
    if forced is None:
        forced = getattr(model_config, "forced_decoder_ids", None)
    if not forced:
        return []
    try:
        pairs = [(int(position), token) for position, token in forced]
    except (TypeError, ValueError):
        raise ConfigError(f"forced_decoder_ids must be a list of [position, token id] pairs, got {forced!r}.") from None
    if pairs[0][0] != 1:
        return []
    tokens = []
    for position, token in pairs:
        if position != len(tokens) + 1:
            raise ConfigError(
                f"forced_decoder_ids {forced!r} do not fill the decoder prompt from position 1 on without gaps, as "
                "Whisper's prompt needs: set language= and task= instead."
            )
        tokens.append(token)
    return tokens


class WhisperGeneration:
    """Whisper's ``generate``: the decoder prompt (start, language, task, no-timestamps), the
    window-by-window loop over the audio, and the tokens kept from each window, as the reference.

    The reference decodes audio of any length the same way: it decodes a 30-second window, keeps
    the text up to the last complete pair of timestamps, moves on to that time (or to the end of
    the window) and decodes again, until every clip is done. A short clip is one window, but a
    model may still emit timestamp pairs inside it, and then the window is decoded again from
    there; the tokens of all windows are joined, without prompt and EOS, and the rows right-padded
    with ``pad_token_id``."""

    def __init__(self, model: WhisperForConditionalGeneration) -> None:
        self.model = model
        encoder = model.model.encoder
        self.stride = encoder.conv1.stride[0] * encoder.conv2.stride[0]
        self.window = self.stride * model.config.max_source_positions

    def _check_features(self, input_features: Any) -> torch.Tensor:
        bins = self.model.config.num_mel_bins
        if not isinstance(input_features, torch.Tensor) or not input_features.is_floating_point() \
                or input_features.dim() != 3 or input_features.shape[1] != bins or 0 in input_features.shape:
            got = (f"{input_features.dtype} {tuple(input_features.shape)}" if isinstance(input_features, torch.Tensor)
                   else type(input_features).__name__)
            raise InputError(
                f"generate takes input_features, a float tensor (batch, {bins} mel bins, frames) from the feature "
                f"extractor, got {got}."
            )
        return input_features.to(self.model.device)

    @staticmethod
    def _refuse_unsupported(chosen: dict[str, Any]) -> None:
        """Raise for an option of the reference's Whisper generate that this one lacks, set to do something."""
        for key, feature in UNSUPPORTED.items():
            if chosen.get(key) not in (None, False):
                raise InputError(
                    f"Whisper's generate does not implement {key}={chosen[key]!r} ({feature}); leave it unset."
                )
        condition = chosen.get("prompt_condition_type")
        if condition not in (None, "first-segment"):
            raise InputError(
                f"prompt_condition_type={condition!r} is not implemented: prompt_ids condition the first window only "
                "('first-segment')."
            )

    def prompt_tokens(
        self, config: Any, batch: int, language: Any, task: Any, return_timestamps: bool,
        detect: Any,
    ) -> torch.Tensor:
        """(batch, prompt length): start token, language, task, ``<|notimestamps|>``, as the reference
        builds them. ``detect()`` gives each row's language id when the model must find it."""
        start = config.decoder_start_token_id
        if start is None:
            raise ConfigError("Whisper's generation config has no decoder_start_token_id (<|startoftranscript|>).")
        base: list[int | None] = [start]
        if task is None and language is None:
            base += _forced_prompt(config, self.model.config)
        undefined_language = len(base) <= 1 or base[1] is None
        if isinstance(language, (list, tuple)):
            if any(entry is None for entry in language):
                raise InputError(f"language must name a language for every row, got {list(language)!r}.")
            if len(language) != batch:
                raise InputError(
                    f"language lists {len(language)} languages for a batch of {batch} clips: give one per clip, or "
                    "one string for all."
                )
            languages = list(language)
        else:
            languages = [language] if language is not None else [None] * batch
        rows = [list(base) for _ in languages]
        language_ids = None
        if language is not None:
            language_ids = [_language_id(entry, config) for entry in languages]
        elif _setting(config, "lang_to_id") is not None and undefined_language:
            language_ids = detect().tolist()
        if language_ids is not None:
            for row, language_id in zip(rows, language_ids):
                if len(row) > 1:
                    row[1] = language_id
                else:
                    row.append(language_id)
        task_to_id = _setting(config, "task_to_id")
        no_timestamps = _setting(config, "no_timestamps_token_id")
        for index, row in enumerate(rows):
            if task is not None:
                row.append(task_to_id[task])
            elif language is not None and task_to_id is not None \
                    and not any(token in row for token in task_to_id.values()):
                row.append(task_to_id["transcribe"])
            if not return_timestamps and no_timestamps is not None and row[-1] != no_timestamps:
                row.append(no_timestamps)
            elif return_timestamps and row[-1] == no_timestamps:
                row.pop()
            rows[index] = [token for token in row if token is not None]
        return torch.tensor(rows, dtype=torch.long, device=self.model.device).expand(batch, -1)

    def _language_and_task(self, config: Any, language: Any, task: Any, is_multilingual: bool | None) -> tuple:
        if is_multilingual is not None:
            if "is_multilingual" not in config.__dict__:
                raise ConfigError(
                    "is_multilingual= needs a Whisper generation config that has is_multilingual (and lang_to_id, "
                    "task_to_id); this checkpoint's generation_config.json predates them."
                )
            config.is_multilingual = is_multilingual
        if _setting(config, "is_multilingual") is False and (task is not None or language is not None):
            raise InputError(
                f"This is an English-only Whisper model: it takes neither language= ({language!r}) nor task= "
                f"({task!r}). Leave them unset, or pass is_multilingual=True if the model is in fact multilingual."
            )
        for value, key, what in ((language, "lang_to_id", "language"), (task, "task_to_id", "task")):
            if value is not None:
                if _setting(config, key) is None:
                    raise ConfigError(
                        f"{what}={value!r} needs generation_config.{key}, which this checkpoint's generation config "
                        "lacks (it predates language and task selection)."
                    )
                config.__dict__[what] = value
        language, task = _setting(config, "language"), _setting(config, "task")
        if task is not None and task not in TASKS:
            raise InputError(f"Unknown task {task!r}: Whisper's tasks are 'transcribe' and 'translate'.")
        if task is not None and task not in (_setting(config, "task_to_id") or {}):
            raise ConfigError(f"generation_config.task_to_id has no id for task {task!r}.")
        return language, task

    def _length_limit(self, config: Any, prompt_length: int) -> int:
        """The total decoder length of one window's run; as the reference, a max_length (not
        max_new_tokens) grows by the prompt, up to the decoder's positions, at every window."""
        limit = self.model.config.max_target_positions
        new_tokens = config.max_new_tokens or 0
        if new_tokens + prompt_length > limit:
            raise InputError(
                f"The decoder prompt has {prompt_length} tokens (start, language, task, timestamps mode and any "
                f"prompt_ids) and max_new_tokens is {new_tokens}: together {new_tokens + prompt_length}, more than "
                f"the decoder's max_target_positions ({limit}). Lower max_new_tokens or shorten prompt_ids."
            )
        if config.max_new_tokens is not None:
            return config.max_new_tokens + prompt_length
        config.max_length = min(config.max_length + min(limit // 2 - 1, prompt_length), limit)
        return config.max_length

    def _length_fixed(self, config: Any) -> bool:
        """Whether the next window's run has the length of this one's."""
        return config.max_new_tokens is not None or config.max_length >= self.model.config.max_target_positions

    def segments_of(
        self, tokens: torch.Tensor, time_offset: torch.Tensor, window_frames: int, timestamp_begin: int,
        prompt_length: int, result: torch.Tensor,
    ) -> tuple[list[dict[str, Any]], int]:
        """The segments one window's tokens make and how many frames the window consumed: text up
        to the last complete timestamp pair (the decoding resumes at that pair's time), or
        everything when the tokens end with a single timestamp or have no pair."""
        is_time = [token >= timestamp_begin for token in tokens.tolist()]
        single_ending = is_time[-2:] == [False, True]
        cuts = [i + 1 for i in range(len(is_time) - 1) if is_time[i] and is_time[i + 1]]
        precision = torch.float64

        def segment(start: Any, end: Any, piece: torch.Tensor, first: int, last: int) -> dict[str, Any]:
            return {"start": time_offset + start, "end": time_offset + end, "tokens": piece,
                    "idxs": (prompt_length + first, prompt_length + last), "result": result}

        if not cuts:
            times = [i for i, flag in enumerate(is_time) if flag]
            last_time: Any = int(window_frames * FRAME_PRECISION / TIME_PRECISION)
            if times and tokens[times[-1]] != timestamp_begin:
                last_time = (tokens[times[-1]] - timestamp_begin).to(precision)
            return [segment(0, last_time * TIME_PRECISION, tokens, 0, len(tokens))], window_frames
        if single_ending:
            cuts.append(len(tokens))
        else:
            cuts[-1] += 1
        segments, previous = [], 0
        for index, cut in enumerate(cuts):
            piece = tokens[previous:cut]
            closing = -1 if index < len(cuts) - 1 or single_ending else -2
            start = (piece[0] - timestamp_begin).to(precision) * TIME_PRECISION
            end = (piece[closing] - timestamp_begin).to(precision) * TIME_PRECISION
            segments.append(segment(start, end, piece, previous, cut))
            previous = cut
        if single_ending:
            return segments, window_frames
        return segments, int(tokens[previous - 2] - timestamp_begin) * self.stride

    @torch.no_grad()
    def __call__(
        self, input_features: Any, attention_mask: torch.Tensor | None, generation_config: Any, language: Any,
        task: Any, return_timestamps: bool | None, is_multilingual: bool | None, prompt_ids: Any, temperature: Any,
        return_segments: bool, streamer: Any, monitor_progress: Any, kwargs: dict[str, Any],
    ) -> torch.Tensor | dict[str, Any]:
        from ..modeling.generation import (
            GenerationConfig,
            _is_number,
            check_streamer,
            decode,
            resolve_config,
            suppress_tokens,
        )

        model = self.model
        if generation_config is not None and not isinstance(generation_config, GenerationConfig):
            raise InputError(f"generation_config must be a GenerationConfig, got {type(generation_config).__name__}.")
        check_streamer(streamer)
        options = {key: kwargs.pop(key) for key in [*UNSUPPORTED, "prompt_condition_type"] if key in kwargs}
        self._refuse_unsupported(options)
        features = self._check_features(input_features)
        config = resolve_config(model, generation_config, kwargs, inputs=ACCEPTED)
        self._refuse_unsupported(config.__dict__)
        if temperature is not None and not (
            _is_number(temperature)
            or (isinstance(temperature, (list, tuple)) and all(_is_number(value) for value in temperature))
        ):
            raise InputError(f"temperature must be a number or a sequence of numbers, got {temperature!r}.")
        batch, frames = features.shape[0], features.shape[-1]
        short_form = frames <= self.window

        if return_timestamps is None:
            return_timestamps = _setting(config, "return_timestamps")
        if not short_form:
            if return_timestamps is False:
                raise InputError(
                    f"The audio has {frames} frames, more than one {self.window}-frame window: Whisper decodes long "
                    "audio window by window, led by the timestamps it predicts. Leave return_timestamps unset (or "
                    f"True), or pass at most {self.window} frames (for instance through pipeline(..., "
                    "chunk_length_s=30))."
                )
            return_timestamps = True
        no_timestamps = _setting(config, "no_timestamps_token_id")
        if return_timestamps and no_timestamps is None:
            raise ConfigError(
                "return_timestamps needs generation_config.no_timestamps_token_id (the id of <|notimestamps|>; the "
                "timestamp tokens follow it), which this checkpoint's generation config lacks."
            )
        timestamp_begin = no_timestamps + 1 if no_timestamps is not None else model.config.vocab_size + 1
        language, task = self._language_and_task(config, language, task, is_multilingual)
        if attention_mask is not None and (
            not isinstance(attention_mask, torch.Tensor) or tuple(attention_mask.shape) != (batch, frames)
        ):
            got = tuple(attention_mask.shape) if isinstance(attention_mask, torch.Tensor) else type(attention_mask)
            raise InputError(f"attention_mask must have shape (batch, frames) = {(batch, frames)}, got {got}.")
        if batch > 1 and not short_form and attention_mask is None:
            raise InputError(
                "A batch of long clips needs the feature extractor's attention_mask (return_attention_mask=True), "
                "so that each clip ends where its audio ends."
            )
        prompt = None
        if prompt_ids is not None:
            prompt = torch.as_tensor(prompt_ids, device=model.device)
            if prompt.dim() != 1 or prompt.is_floating_point() or prompt.numel() == 0:
                raise InputError(f"prompt_ids must be a non-empty 1-D sequence of token ids, got {prompt_ids!r}.")
            prompt = prompt.long()

        # Language detection reads the first window (zero-padded when the audio is shorter); its
        # encoding serves again when the first decoded window is the same.
        first_window = features[:, :, : self.window]
        first_window = F.pad(first_window, (0, self.window - first_window.shape[-1]))
        detected: list[torch.Tensor] = []

        def encode(window: torch.Tensor) -> torch.Tensor:
            if detected and window.shape == first_window.shape and torch.equal(window, first_window):
                return detected[0]
            return model.get_encoder()(input_features=window, return_dict=True).last_hidden_state

        def detect() -> torch.Tensor:
            detected.append(encode(first_window))
            return self.detect_language(detected[0], config)

        init = self.prompt_tokens(config, batch, language, task, bool(return_timestamps), detect)

        # As the reference, the sampling temperature is generate's own argument (a sequence: its
        # first value; the later ones are fallbacks, which need the thresholds this does not
        # implement), and it alone decides between sampling and searching.
        if isinstance(temperature, (list, tuple)):
            temperature = temperature[0] if temperature else None
        config.do_sample = temperature is not None and temperature > 0.0
        config.temperature = temperature if config.do_sample else 1.0
        if config.do_sample:
            config.num_beams = 1
        config.validate()

        eos, pad = config.eos_token_id, config.pad_token_id
        eos_ids = set(eos) if isinstance(eos, (list, tuple)) else {eos}
        processors_of = self._processors(config, timestamp_begin, return_timestamps, suppress_tokens)
        config.suppress_tokens = config.begin_suppress_tokens = None  # applied by Whisper's own processors

        if batch > 1 and not short_form:
            max_frames = attention_mask.sum(-1).to(device="cpu", dtype=torch.long)
        else:
            max_frames = torch.full((batch,), frames, dtype=torch.long)
        seek = torch.zeros(batch, dtype=torch.long)
        copies = config.num_return_sequences
        rows = torch.arange(batch)
        if copies > 1:  # each returned sequence is decoded as a row of its own
            rows, max_frames = rows.repeat_interleave(copies), max_frames.repeat_interleave(copies)
            seek, init = seek.repeat_interleave(copies), init.repeat_interleave(copies, dim=0)
            config.num_return_sequences = 1
        total = rows.shape[0]
        segments: list[list[dict[str, Any]]] = [[] for _ in range(total)]
        if prompt is not None:
            previous_start = _setting(config, "prev_sot_token_id")
            shown = prompt[1:] if int(prompt[0]) == previous_start else prompt
            segments = [[{"tokens": shown}] for _ in range(total)]

        while bool((seek < max_frames).any()):
            if monitor_progress is not None:
                monitor_progress(torch.stack((seek, max_frames), dim=1))
            active = [i for i in range(total) if seek[i] < max_frames[i]]
            time_offset = seek.to(torch.float64) * TIME_PRECISION / self.stride
            window_frames = (max_frames - seek).clamp(max=self.window)
            windows = []
            for i in active:
                piece = features[rows[i], :, seek[i]: seek[i] + window_frames[i]]
                windows.append(F.pad(piece, (0, self.window - piece.shape[-1])))
            window = torch.stack(windows)
            decoder_ids = init[active]
            if prompt is not None:
                decoder_ids = torch.cat([prompt[None].expand(len(active), -1), decoder_ids], dim=-1)
            prompt_length = decoder_ids.shape[1]
            max_length = self._length_limit(config, prompt_length)
            out = decode(
                model, config, decoder_ids, torch.ones_like(decoder_ids), max_length,
                encoded=BaseModelOutput(encode(window)), streamer=streamer, processors=processors_of(prompt_length),
            )
            for position, i in enumerate(active):
                tokens = out[position, prompt_length:]
                if pad is not None and int(tokens[-1]) == pad:
                    padding = int((tokens == pad).sum()) - (1 if pad in eos_ids else 0)
                    if padding:
                        tokens = tokens[:-padding]
                if len(tokens) and int(tokens[-1]) in eos_ids:
                    tokens = tokens[:-1]
                found, consumed = self.segments_of(
                    tokens, time_offset[i], int(window_frames[i]), timestamp_begin, prompt_length, out[position]
                )
                if consumed <= 0 and not config.do_sample and self._length_fixed(config):
                    # The same window, decoded again deterministically with the same length, would
                    # give the same tokens forever (the reference loops here): it counts as done.
                    consumed = int(window_frames[i])
                seek[i] += consumed
                segments[i] += found

        if prompt is not None:
            segments = [row[1:] for row in segments]
        joined = [torch.cat([s["tokens"] for s in row]) if row else init.new_zeros(0) for row in segments]
        longest = max(len(row) for row in joined)
        sequences = torch.stack([F.pad(row, (0, longest - len(row)), value=pad) for row in joined])
        if return_segments:
            return {"sequences": sequences, "segments": segments}
        return sequences

    def detect_language(self, encoded: torch.Tensor, config: Any) -> torch.Tensor:
        """(batch,) the likeliest language token after the start token, for encoder outputs of one window."""
        model = self.model
        start = torch.full((encoded.shape[0], 1), config.decoder_start_token_id, dtype=torch.long, device=model.device)
        logits = model(encoder_outputs=BaseModelOutput(encoded), decoder_input_ids=start, use_cache=False,
                       return_dict=True).logits[:, -1]
        allowed = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
        allowed[list(_setting(config, "lang_to_id").values())] = True
        return logits.masked_fill(~allowed, -math.inf).argmax(-1)

    @staticmethod
    def _processors(config: Any, timestamp_begin: int, return_timestamps: bool, suppress: Any) -> Any:
        """The processors Whisper adds to a window's run (given its decoder prompt's length), in the
        reference's order: tokens banned at the first position, tokens banned always, timestamps."""
        eos = config.eos_token_id or config.bos_token_id  # as the reference (an id of 0 falls through)
        eos = eos[0] if isinstance(eos, (list, tuple)) else eos
        always, at_start = config.suppress_tokens, config.begin_suppress_tokens
        max_initial = _setting(config, "max_initial_timestamp_index")

        def processors(prompt_length: int) -> list[Any]:
            steps = []
            if at_start is not None:
                steps.append(suppress(at_start, at_length=prompt_length))
            if always is not None:
                steps.append(suppress(always))
            if return_timestamps:
                steps.append(WhisperTimestamps(timestamp_begin - 1, eos, prompt_length, max_initial))
            return steps

        return processors


__all__ = [
    "WhisperConfig",
    "WhisperForAudioClassification",
    "WhisperForConditionalGeneration",
    "WhisperModel",
]
