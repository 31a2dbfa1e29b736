"""Beam search, as the reference library runs it (greedy or sampled beams).

Every batch row keeps ``num_beams`` running hypotheses and ``num_beams`` finished ones. Each step
scores every continuation of every running beam (accumulated log-probabilities), takes the best
``keep`` of them per row (more than ``num_beams``, so that enough stay open when some finish), moves
those that finish into the finished set (scored with the length penalty) and continues with the best
``num_beams`` open ones. The run stops when no row can improve its finished set, when every row's
finished set is full (``early_stopping=True``), or when every candidate hits a stopping rule.

The tensors and arithmetic follow the reference step by step (its -1e9 sentinels, its order of
operations), so scores tie and break ties as its do and the chosen ids are the same. The model is
behind ``step``: this module knows nothing of caches or attention masks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

NEVER = -1.0e9  # the reference's score for a hypothesis that must not be chosen

Step = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]
Processor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Stop = Callable[[torch.Tensor], torch.Tensor]


def _gather(tensor: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """tensor[b, index[b, j], ...] for each row b."""
    while index.dim() < tensor.dim():
        index = index.unsqueeze(-1)
    return torch.take_along_dim(tensor, index, dim=1)


def beam_search(
    step: Step,
    input_ids: torch.Tensor,
    processors: list[Processor],
    stops: list[Stop],
    *,
    num_beams: int,
    max_length: int,
    length_penalty: float,
    early_stopping: bool | str,
    do_sample: bool,
    num_return_sequences: int,
    eos: torch.Tensor | None,
    fill: int,
) -> torch.Tensor:
    """The best ``num_return_sequences`` hypotheses per row, (batch * num_return_sequences, length).

    ``input_ids`` holds each prompt ``num_beams`` times (rows b * num_beams ... + num_beams - 1).
    ``step(sequences, rows)`` returns the (batch * num_beams, vocab) float32 logits of each running
    sequence's next token; ``rows`` (None on the first call) says which previous row each running
    beam continues, for the caller's cache. ``stops`` are extra stopping rules on whole sequences
    (stop strings); EOS ids and ``max_length`` are handled here. Unfilled positions hold ``fill``.
    """
    flat_batch, prompt_length = input_ids.shape
    batch, device = flat_batch // num_beams, input_ids.device
    keep = max(2, 1 + (0 if eos is None else eos.shape[0])) * num_beams
    among_best = torch.cat([torch.ones(num_beams, dtype=torch.bool), torch.zeros(keep - num_beams, dtype=torch.bool)])
    among_best = among_best.to(device)

    running = torch.full((batch, num_beams, max_length), fill, dtype=torch.int64, device=device)
    running[:, :, :prompt_length] = input_ids.view(batch, num_beams, prompt_length)
    finished_ids = running.clone()
    running_scores = torch.zeros(batch, num_beams, dtype=torch.float, device=device)
    running_scores[:, 1:] = NEVER  # the beams start identical: only the first may expand at first
    finished_scores = torch.full((batch, num_beams), NEVER, dtype=torch.float, device=device)
    finished = torch.zeros(batch, num_beams, dtype=torch.bool, device=device)
    improvable = torch.ones(batch, 1, dtype=torch.bool, device=device)
    # Per generated position, the flat row each beam came from (-1: not generated).
    running_origin = torch.full((batch, num_beams, max_length - prompt_length), -1, dtype=torch.int32, device=device)
    finished_origin = running_origin.clone()
    offsets = torch.arange(batch, device=device).view(-1, 1) * num_beams

    length, sequences, rows = prompt_length, input_ids, None
    while True:
        log_probs = F.log_softmax(step(sequences, rows), dim=-1)
        for process in processors:
            log_probs = process(sequences, log_probs)
        vocab = log_probs.shape[-1]
        totals = (log_probs.view(batch, num_beams, vocab) + running_scores[:, :, None]).reshape(batch, -1)

        # The best ``keep`` continuations over all of a row's beams.
        if do_sample:
            picked = torch.multinomial(F.softmax(totals, dim=-1), num_samples=keep)
            picked_scores = torch.gather(totals, 1, picked)
        else:
            picked_scores, picked = torch.topk(totals, k=keep)
        source_beam, token = picked // vocab, picked % vocab
        candidates = _gather(running, source_beam)
        candidates[:, :, length] = token
        candidate_origin = _gather(running_origin, source_beam)
        candidate_origin[:, :, length - prompt_length] = source_beam + offsets

        flat_candidates = candidates[:, :, : length + 1].reshape(batch * keep, length + 1)
        hits = torch.full((batch * keep,), length + 1 >= max_length, dtype=torch.bool, device=device)
        if eos is not None:
            hits |= torch.isin(flat_candidates[:, -1], eos)
        for stop in stops:
            hits |= stop(flat_candidates)
        hits = hits.view(batch, keep)

        # Open beams for the next step: the best candidates that did not just finish.
        open_scores = picked_scores + hits.to(torch.float32) * NEVER
        best_open = torch.topk(open_scores, k=num_beams)[1]
        running = _gather(candidates, best_open)
        running_scores = _gather(open_scores, best_open)
        running_origin = _gather(candidate_origin, best_open)

        # Finished set: the old one merged with the candidates among the best num_beams that just
        # finished, scored with the length penalty, unless the row can no longer take them.
        just_finished = hits & among_best[None, :]
        scored = picked_scores / ((length + 1 - prompt_length) ** length_penalty)
        scored += (torch.all(finished, dim=-1, keepdim=True) & (early_stopping is True)).to(torch.float32) * NEVER
        scored += (~improvable).to(torch.float32) * NEVER
        scored += (~just_finished) * NEVER
        best = torch.topk(torch.cat((finished_scores, scored), dim=1), k=num_beams)[1]
        finished_ids = _gather(torch.cat((finished_ids, candidates), dim=1), best)
        finished_scores = _gather(torch.cat((finished_scores, scored), dim=1), best)
        finished_origin = _gather(torch.cat((finished_origin, candidate_origin), dim=1), best)
        finished = _gather(torch.cat((finished, just_finished), dim=1), best)

        rows = running_origin[..., length - prompt_length].reshape(-1)
        length += 1
        improvable = _still_improvable(
            improvable, running_scores, finished_scores, finished, length, max_length, prompt_length,
            early_stopping, length_penalty,
        )
        carry_on = improvable.any() & ~(finished.all() & (early_stopping is True)) & ~hits.all()
        if not bool(carry_on):
            break
        sequences = running[:, :, :length].reshape(batch * num_beams, length)

    chosen = finished_ids[:, :num_return_sequences].reshape(batch * num_return_sequences, max_length)
    origin = finished_origin[:, :num_return_sequences].reshape(batch * num_return_sequences, -1)
    generated = int((origin + 1).bool().sum(dim=1).max())
    return chosen[:, : prompt_length + generated]


def _still_improvable(
    improvable: torch.Tensor, running_scores: torch.Tensor, finished_scores: torch.Tensor, finished: torch.Tensor,
    length: int, max_length: int, prompt_length: int, early_stopping: Any, length_penalty: float,
) -> torch.Tensor:
    """Rows whose best open beam could still beat their worst finished one. With a length penalty
    favouring length and ``early_stopping="never"``, the best score is estimated at ``max_length``;
    otherwise at the current length (the reference's heuristic)."""
    if early_stopping == "never" and length_penalty > 0.0:
        best_length = max_length - prompt_length
    else:
        best_length = length - prompt_length
    best_open = running_scores[:, :1] / (best_length**length_penalty)
    worst_finished = torch.where(finished, torch.min(finished_scores, dim=1, keepdim=True)[0], NEVER)
    return improvable & torch.any(best_open > worst_finished, dim=-1, keepdim=True)


__all__ = ["beam_search"]
