"""The training losses the task heads return when given labels, computed as the reference does."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..configuration import PretrainedConfig
from ..errors import InputError


def sequence_classification_loss(logits: torch.Tensor, labels: torch.Tensor, config: PretrainedConfig) -> torch.Tensor:
    """MSE, cross-entropy or binary cross-entropy, chosen by ``config.problem_type``.

    When the config names no problem type it is inferred from ``num_labels`` and the labels' dtype
    (one label: regression; integer labels: single-label; otherwise multi-label) and written back
    to the config, so later calls and a saved config agree with the first call, as in the reference.
    """
    num_labels = config.num_labels
    labels = labels.to(logits.device)
    problem = config.problem_type
    if problem is None:
        if num_labels == 1:
            problem = "regression"
        elif labels.dtype in (torch.long, torch.int):
            problem = "single_label_classification"
        else:
            problem = "multi_label_classification"
        config.problem_type = problem
    if problem == "regression":
        labels = labels.to(logits.dtype)
        if num_labels == 1:
            return F.mse_loss(logits.squeeze(), labels.squeeze())
        return F.mse_loss(logits, labels)
    if problem == "single_label_classification":
        if labels.is_floating_point():
            raise InputError(
                "problem_type='single_label_classification' needs integer class labels, got "
                f"{labels.dtype}; pass class indices, or use problem_type='multi_label_classification'."
            )
        return F.cross_entropy(logits.view(-1, num_labels), labels.view(-1))
    if problem == "multi_label_classification":
        return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
    raise InputError(f"Unknown problem_type {problem!r} in the config.")


def token_classification_loss(logits: torch.Tensor, labels: torch.Tensor, num_labels: int) -> torch.Tensor:
    """Cross-entropy over every token; label -100 marks tokens to ignore (padding, sub-words)."""
    return F.cross_entropy(logits.view(-1, num_labels), labels.to(logits.device).view(-1))


def masked_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the vocabulary at each position; label -100 marks unmasked positions."""
    return F.cross_entropy(logits.view(-1, logits.size(-1)), labels.to(logits.device).view(-1))


def question_answering_loss(
    start_logits: torch.Tensor,
    end_logits: torch.Tensor,
    start_positions: torch.Tensor,
    end_positions: torch.Tensor,
) -> torch.Tensor:
    """Mean of the start and end cross-entropies.

    Positions outside the sequence (an answer cut off by truncation) are clamped to the sequence
    length and that index is ignored, so such examples add nothing to the loss.
    """
    if start_positions.dim() > 1:
        start_positions = start_positions.squeeze(-1)
    if end_positions.dim() > 1:
        end_positions = end_positions.squeeze(-1)
    ignored = start_logits.size(1)
    start_positions = start_positions.to(start_logits.device).clamp(0, ignored)
    end_positions = end_positions.to(end_logits.device).clamp(0, ignored)
    start_loss = F.cross_entropy(start_logits, start_positions, ignore_index=ignored)
    end_loss = F.cross_entropy(end_logits, end_positions, ignore_index=ignored)
    return (start_loss + end_loss) / 2


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy (in float32) of each position's logits against the next label; -100 ignored."""
    if not isinstance(labels, torch.Tensor) or labels.shape != logits.shape[:2]:
        got = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise InputError(
            f"labels must be a (batch, seq) tensor of token ids like the logits' {tuple(logits.shape[:2])}, got {got}."
        )
    targets = labels[:, 1:].to(logits.device)
    return F.cross_entropy(logits[:, :-1].float().flatten(0, 1), targets.flatten(), ignore_index=-100)
