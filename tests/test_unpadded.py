"""Unpadded (packed) encoder execution of BERT and DistilBERT.

What is compared, and why: with padding in the batch, the packed path computes the real tokens only,
so per-token outputs (last_hidden_state, hidden_states[1:], token-classification / QA / MLM logits)
are compared with the reference ON REAL POSITIONS; at padded positions last_hidden_state and
hidden_states[1:] are exactly zero (checked), and per-token head logits there are the head applied
to that zero vector (not compared: the reference's values there are attention over real keys from
pad queries, meaningless and as costly to reproduce as the padding itself). Outputs that read only
real positions (BERT's pooler_output, sequence-classification logits, losses computed over real
positions, hidden_states[0], the embeddings) are compared in full. A QA loss (a softmax over every
position, as in the reference) is not compared when packed. With ``config.unpad_inputs = False``
every output, padded positions included, equals the reference.

The automatic choice (``unpad_inputs`` unset) packs only for the sequence classifiers, whose outputs
show no padded position, and only for models wide enough to gain; so the all-position parity tests
in test_bert.py / test_distilbert.py / test_real_checkpoint.py keep comparing every position.

Tiny random checkpoints are built and saved by the reference; ``config.unpad_inputs = True`` forces
packing there.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from parity import (
    assert_tensors_close,
    build_reference,
    load_reference,
    run,
    transformers,
)

from leanformers.errors import InputError
from leanformers.modeling import attention
from leanformers.modeling.attention import PackedBatch, pack_batch, plan_buckets
from leanformers.models import bert, distilbert

VOCAB = 99
FAMILIES = {
    "bert": (
        bert,
        lambda **kw: transformers.BertConfig(
            vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=64, **kw,
        ),
        ["BertModel", "BertForSequenceClassification", "BertForTokenClassification",
         "BertForQuestionAnswering", "BertForMaskedLM"],
    ),
    "distilbert": (
        distilbert,
        lambda **kw: transformers.DistilBertConfig(
            vocab_size=VOCAB, dim=32, n_layers=2, n_heads=4, hidden_dim=37, max_position_embeddings=64, **kw
        ),
        ["DistilBertModel", "DistilBertForSequenceClassification", "DistilBertForTokenClassification",
         "DistilBertForQuestionAnswering", "DistilBertForMaskedLM"],
    ),
}
CASES = [(family, name) for family, (_, _, names) in FAMILIES.items() for name in names]
# Outputs read at every position; the rest (hidden_states excepted) are per-token.
POOLED = {"pooler_output", "loss"}
SEQUENCE_LEVEL = ("ForSequenceClassification",)


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("unpadded")
    paths = {}
    for seed, (family, name) in enumerate(CASES):
        paths[name] = root / name
        build_reference(name, FAMILIES[family][1](), seed).save_pretrained(paths[name])
    return paths


def masks() -> dict[str, torch.Tensor]:
    """0/1 masks over 9 positions: the shapes of padding the packed path must handle."""
    mixed = torch.tensor([
        [1, 1, 1, 1, 1, 1, 1, 1, 1],  # full length
        [1, 1, 1, 1, 1, 1, 0, 0, 0],
        [1, 0, 0, 0, 0, 0, 0, 0, 0],  # a single real token
        [1, 1, 1, 1, 1, 1, 0, 0, 0],  # same length as row 1: one attention group of two rows
        [1, 1, 1, 0, 0, 0, 0, 0, 0],
    ])
    return {
        "mixed": mixed,
        "batch_of_one": torch.tensor([[1, 1, 1, 1, 0, 0, 0, 0, 0]]),
        "equal_lengths": torch.tensor([[1] * 5 + [0] * 4] * 3),
        "single_tokens": torch.tensor([[1] + [0] * 8] * 2),
        # Six distinct lengths (see test_bucket_layouts).
        "many_lengths": torch.tensor([[1] * n + [0] * (9 - n) for n in (9, 8, 7, 5, 3, 1)]),
        # Not right-padded: holes inside a row keep their column's position embedding.
        "holes": torch.tensor([[1, 1, 0, 1, 0, 1, 1, 0, 1], [1, 0, 1, 1, 1, 1, 1, 1, 0]]),
    }


def inputs_for(mask: torch.Tensor, seed: int = 1) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(1, VOCAB, mask.shape, generator=gen)
    input_ids[mask == 0] = 0
    token_type_ids = torch.zeros_like(mask)
    token_type_ids[:, 4:] = 1
    return {"input_ids": input_ids, "attention_mask": mask.clone(), "token_type_ids": token_type_ids}


def load(family: str, name: str, path, unpad: bool | None):
    model = getattr(FAMILIES[family][0], name).from_pretrained(path)
    model.config.unpad_inputs = unpad
    return model


def compare_real_positions(ours, ref, mask: torch.Tensor, what: str) -> None:
    """Every field the reference returns; per-token ones on real positions, zero padding checked."""
    assert list(ours.keys()) == list(ref.keys()), what
    real = mask.bool()
    for key in ref:
        a, b = ours[key], ref[key]
        if key == "hidden_states":
            assert_tensors_close(a[0], b[0], f"{what}.hidden_states[0]")  # embeddings: every position
            for i, (x, y) in enumerate(zip(a[1:], b[1:]), 1):
                assert_tensors_close(x[real], y[real], f"{what}.hidden_states[{i}]")
                assert not x[~real].any(), f"{what}.hidden_states[{i}] is not zero at padded positions"
        elif key in POOLED or what.split("/")[0].endswith(SEQUENCE_LEVEL):
            assert_tensors_close(a, b, f"{what}.{key}")
        else:
            assert_tensors_close(a[real], b[real], f"{what}.{key}")
            if key == "last_hidden_state":
                assert not a[~real].any(), f"{what}: last_hidden_state is not zero at padded positions"


# -- parity -----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(masks()))
@pytest.mark.parametrize("family,name", CASES)
def test_packed_matches_reference_and_dense(ckpts, packed_calls, family, name, case):
    mask = masks()[case]
    inputs = inputs_for(mask)
    if family == "distilbert":
        inputs.pop("token_type_ids")
    ref = run(load_reference(name, ckpts[name]), **inputs)
    dense = run(load(family, name, ckpts[name], unpad=False), **inputs)
    assert not packed_calls
    packed = run(load(family, name, ckpts[name], unpad=True), **inputs)
    assert len(packed_calls) == 2, "the packed path ran once per layer"
    compare_real_positions(packed, ref, mask, f"{name}/{case}")
    compare_real_positions(packed, dense, mask, f"{name}/{case}/vs-dense")


@pytest.mark.parametrize("family,name", CASES)
def test_packed_hidden_states_and_losses(ckpts, packed_calls, family, name):
    mask = masks()["mixed"]
    inputs = {**inputs_for(mask), "output_hidden_states": True}
    if family == "distilbert":
        inputs.pop("token_type_ids")
    if "Sequence" in name:
        inputs["labels"] = torch.tensor([0, 1, 1, 0, 1])
    elif "Token" in name or "Masked" in name:
        labels = inputs["input_ids"].clone() % 2 if "Token" in name else inputs["input_ids"].clone()
        labels[mask == 0] = -100  # padded positions never enter the loss
        inputs["labels"] = labels
    elif "Question" in name:
        inputs["start_positions"] = torch.tensor([1, 2, 0, 3, 1])
        inputs["end_positions"] = torch.tensor([4, 5, 0, 5, 2])
    ref = run(load_reference(name, ckpts[name]), **inputs)
    packed = run(load(family, name, ckpts[name], unpad=True), **inputs)
    assert packed_calls
    if "Question" in name:
        # The QA loss is a softmax over every position, padding included (as in the reference), so
        # packed (opt-in only) it sees the pad logits of a zero hidden state: not compared.
        assert torch.isfinite(packed.loss)
        packed, ref = ({k: v for k, v in out.items() if k != "loss"} for out in (packed, ref))
    compare_real_positions(packed, ref, mask, f"{name}/hidden_states")


@pytest.mark.parametrize("family,name", [CASES[0], CASES[5]])
def test_explicit_positions_and_embeds(ckpts, packed_calls, family, name):
    mask = masks()["mixed"]
    inputs = inputs_for(mask)
    if family == "distilbert":
        inputs.pop("token_type_ids")
    inputs["position_ids"] = torch.arange(9).flip(0).expand(5, 9).contiguous()
    ref_model = load_reference(name, ckpts[name])
    ours = load(family, name, ckpts[name], unpad=True)
    compare_real_positions(run(ours, **inputs), run(ref_model, **inputs), mask, f"{name}/position_ids")
    embeds = ref_model.get_input_embeddings()(inputs.pop("input_ids")).detach()
    inputs["inputs_embeds"] = embeds
    compare_real_positions(run(ours, **inputs), run(ref_model, **inputs), mask, f"{name}/inputs_embeds")
    assert len(packed_calls) == 4


@pytest.mark.parametrize("call_cost", [0, 10**12, None])
@pytest.mark.parametrize("mask_name", ["many_lengths", "holes"])
@pytest.mark.parametrize("family,name", [CASES[0], CASES[5]])
def test_bucket_layouts(ckpts, packed_calls, monkeypatch, family, name, call_cost, mask_name):
    """Many distinct lengths: one bucket per length (free attention calls), one bucket padded to the
    longest row (costly calls), or what the cost model picks; all equal the reference on real positions."""
    mask = masks()[mask_name]
    inputs = inputs_for(mask)
    if family == "distilbert":
        inputs.pop("token_type_ids")
    ref = run(load_reference(name, ckpts[name]), **inputs)
    if call_cost is not None:
        monkeypatch.setattr(attention, "PACK_CALL_COST_MACS", call_cost)
    packed = run(load(family, name, ckpts[name], unpad=True), **inputs)
    expected = {0: len(set(mask.sum(1).tolist())), 10**12: 1}.get(call_cost)
    assert packed_calls and (expected is None or packed_calls[0] == expected)
    compare_real_positions(packed, ref, mask, f"{name}/call cost {call_cost}")


def brute_force_plan(lengths, macs, call_cost):
    distinct = sorted(set(lengths))
    best = None
    for cuts in itertools.product([False, True], repeat=len(distinct) - 1):
        buckets, rows = [], 0
        for i, length in enumerate(distinct):
            rows += lengths.count(length)
            if i == len(distinct) - 1 or cuts[i]:
                buckets.append((rows, length))
                rows = 0
        cost = sum(r * n * macs for r, n in buckets) + len(buckets) * call_cost
        best = min(best, (cost, buckets)) if best else (cost, buckets)
    return best[0]


@pytest.mark.parametrize("seed", range(20))
def test_plan_buckets_is_optimal(seed):
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 30, (int(torch.randint(1, 12, (1,), generator=gen)),), generator=gen).tolist()
    macs, call_cost = 100, int(torch.randint(0, 5000, (1,), generator=gen))
    buckets = plan_buckets(lengths, macs, call_cost)
    assert sum(rows for rows, _ in buckets) == len(lengths)
    assert [length for _, length in buckets] == sorted({length for _, length in buckets})
    cost = sum(rows * length * macs for rows, length in buckets) + len(buckets) * call_cost
    assert cost == brute_force_plan(lengths, macs, call_cost)


# -- when the packed path runs ----------------------------------------------------------------


@pytest.mark.parametrize("family,name", [CASES[0], CASES[5]])
def test_off_switch_gives_the_dense_path_and_full_parity(ckpts, packed_calls, family, name):
    inputs = inputs_for(masks()["mixed"])
    if family == "distilbert":
        inputs.pop("token_type_ids")
    ours = load(family, name, ckpts[name], unpad=False)
    ref = run(load_reference(name, ckpts[name]), **inputs)
    out = run(ours, **inputs)
    assert not packed_calls
    assert_tensors_close(out.last_hidden_state, ref.last_hidden_state, f"{name}: every position")
    ours.config.unpad_inputs = True
    assert not torch.equal(run(ours, **inputs).last_hidden_state, out.last_hidden_state)
    assert packed_calls


@pytest.mark.parametrize("family,name", [CASES[0], CASES[5]])
def test_attention_weights_keep_the_dense_path(ckpts, packed_calls, family, name):
    inputs = {**inputs_for(masks()["mixed"]), "output_attentions": True}
    if family == "distilbert":
        inputs.pop("token_type_ids")
    out = run(load(family, name, ckpts[name], unpad=True), **inputs)
    ref = run(load_reference(name, ckpts[name], eager=True), **inputs)
    assert not packed_calls
    assert_tensors_close(out.attentions, ref.attentions, "attentions")
    assert_tensors_close(out.last_hidden_state, ref.last_hidden_state, "last_hidden_state")


def test_pack_batch_decisions(monkeypatch):
    # The bucket plan charges each attention call per thread; pin one so the plan is known.
    monkeypatch.setattr(attention.torch, "get_num_threads", lambda: 1)
    big = 768 * (4 * 768 + 2 * 3072)  # BERT-base multiply-adds per token per layer
    tiny = 32 * (4 * 32 + 2 * 37)
    mixed = masks()["mixed"]

    def decide(mask, unpad=None, macs=big):
        return pack_batch(mask, *mask.shape, torch.device("cpu"), unpad, macs)

    assert pack_batch(None, 3, 9, torch.device("cpu"), True, big) is None
    assert decide(torch.ones(3, 9, dtype=torch.long), unpad=True) is None, "nothing to skip"
    assert decide(mixed, unpad=False) is None
    assert isinstance(decide(mixed), PackedBatch), "large model, 42% padding: packed automatically"
    assert decide(mixed, macs=tiny) is None, "tiny model: the extra attention calls cost more"
    assert isinstance(decide(mixed, unpad=True, macs=tiny), PackedBatch)
    few_pads = torch.ones(4, 40, dtype=torch.long)
    few_pads[0, -3:] = 0
    assert decide(few_pads) is None, "under 10% padding: dense"
    left_padded = torch.tensor([[0, 1, 1], [1, 1, 1]])
    assert decide(left_padded, unpad=True) is None, "position 0 padded: heads read it, stay dense"
    empty_row = torch.tensor([[0, 0, 0], [1, 1, 0]])
    assert decide(empty_row, unpad=True) is None
    with pytest.raises(InputError):
        decide(mixed, unpad="yes")
    with pytest.raises(InputError):
        pack_batch(mixed, 5, 5, torch.device("cpu"), True, big)  # the mask does not fit the inputs

    packing = decide(mixed)
    lengths = mixed.sum(1).tolist()
    assert [group[:3] for group in packing.groups] == [(0, 1, 1), (1, 1, 3), (4, 2, 6), (16, 1, 9)]
    assert all(group[3] is None for group in packing.groups) and packing.real is None
    assert packing.index.numel() == sum(lengths)
    hidden = torch.randn(5, 9, 4)
    packed = packing.pack(hidden)
    assert torch.equal(packing.unpack(packed)[mixed.bool()], hidden[mixed.bool()])
    assert not packing.unpack(packed)[~mixed.bool()].any()

    # One bucket padded to the longest row: every row's real tokens first, then its own pads.
    assert plan_buckets(lengths, big, 10**15) == [(5, 9)]
    monkeypatch.setattr(attention, "PACK_CALL_COST_MACS", 10**15)
    bucketed = decide(mixed, unpad=True)
    assert len(bucketed.groups) == 1 and bucketed.index.numel() == 45
    key_mask = bucketed.groups[0][3]
    assert key_mask.shape == (5, 1, 1, 9)
    assert key_mask.sum(-1).flatten().tolist() == sorted(lengths)
    assert int(bucketed.real.sum()) == sum(lengths)
    packed = bucketed.pack(hidden)
    assert torch.equal(bucketed.unpack(packed)[mixed.bool()], hidden[mixed.bool()])
    assert not bucketed.unpack(packed)[~mixed.bool()].any()


WIDE = {
    "bert": {"hidden_size": 256, "num_hidden_layers": 1, "num_attention_heads": 4, "intermediate_size": 1024},
    "distilbert": {"dim": 256, "n_layers": 1, "n_heads": 4, "hidden_dim": 1024},
}


@pytest.mark.parametrize("family", ["bert", "distilbert"])
def test_automatic_choice_on_a_wider_model(packed_calls, family):
    """Automatic: the sequence classifier (which reads no padded position) packs once the skipped
    projections outweigh the extra attention calls; outputs that show padded positions stay dense."""
    module, _, names = FAMILIES[family]
    config = module.__dict__[names[0].replace("Model", "Config")](vocab_size=VOCAB, **WIDE[family])
    mask = torch.zeros(8, 64, dtype=torch.long)
    for row, length in enumerate([64, 40, 30, 30, 20, 12, 9, 5]):
        mask[row, :length] = 1
    inputs = inputs_for(mask)
    if family == "distilbert":
        inputs.pop("token_type_ids")
    torch.manual_seed(0)
    classifier = getattr(module, names[1])(config).eval()
    auto = run(classifier, **inputs)
    assert len(packed_calls) == 1, "auto mode packed a 58%-padded batch of a 256-wide model"
    classifier.config.unpad_inputs = False
    dense = run(classifier, **inputs)
    assert len(packed_calls) == 1
    assert_tensors_close(auto.logits, dense.logits, "logits: packed vs dense")
    classifier.config.unpad_inputs = None
    run(classifier, **inputs, output_hidden_states=True)
    assert len(packed_calls) == 1, "hidden states show padded positions: dense"
    for name in (names[0], names[2], names[3], names[4]):
        torch.manual_seed(0)
        run(getattr(module, name)(config).eval(), **inputs)
        assert len(packed_calls) == 1, f"{name} shows padded positions: dense unless unpad_inputs=True"
    # A caller that reads no padded position (a pipeline) says so, and the per-token heads pack too.
    real = mask.bool()
    for count, name in enumerate((names[0], names[2], names[3], names[4]), 2):
        torch.manual_seed(0)
        model = getattr(module, name)(config).eval()
        dense = run(model, **inputs)
        packed = run(model, **inputs, padding_in_output=False)
        assert len(packed_calls) == count, f"{name} with padding_in_output=False did not pack"
        for key, value in dense.items():
            per_token = value.shape[:2] == mask.shape  # pooler_output is per text
            assert_tensors_close(packed[key][real] if per_token else packed[key], value[real] if per_token else value,
                                 f"{name}.{key}: packed vs dense")
        if name.endswith("ForMaskedLM"):  # its vocabulary projection ran on the real positions only
            assert not packed.logits[~real].any()


# -- training ---------------------------------------------------------------------------------


@pytest.mark.parametrize("family,name", [("bert", "BertForTokenClassification"), ("distilbert", "DistilBertForMaskedLM")])
def test_training_works_packed(ckpts, packed_calls, family, name, tmp_path):
    """Training mode runs packed too. Without dropout its loss and gradients equal the dense path's;
    with dropout the random draws differ from the dense path's (fewer elements), but one seed gives
    one result."""
    mask = masks()["mixed"]
    inputs = inputs_for(mask)
    if family == "distilbert":
        inputs.pop("token_type_ids")
    labels = inputs["input_ids"].clone() % 2
    labels[mask == 0] = -100
    inputs["labels"] = labels
    no_dropout = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "classifier_dropout": 0.0}
    if family == "distilbert":
        no_dropout = {"dropout": 0.0, "attention_dropout": 0.0}

    def loss_and_grads(unpad, **overrides):
        model = getattr(FAMILIES[family][0], name).from_pretrained(ckpts[name], **overrides).train()
        model.config.unpad_inputs = unpad
        loss = model(**inputs).loss
        loss.backward()
        return loss.detach(), {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}

    dense_loss, dense_grads = loss_and_grads(False, **no_dropout)
    packed_loss, packed_grads = loss_and_grads(True, **no_dropout)
    assert packed_calls
    assert_tensors_close(packed_loss, dense_loss, "training loss")
    assert dense_grads.keys() == packed_grads.keys()
    for key in dense_grads:
        assert_tensors_close(packed_grads[key], dense_grads[key], f"grad {key}", {"rtol": 1e-4, "atol": 1e-5})

    torch.manual_seed(3)
    first, _ = loss_and_grads(True)
    torch.manual_seed(3)
    second, _ = loss_and_grads(True)
    torch.manual_seed(4)
    third, _ = loss_and_grads(True)
    assert torch.equal(first, second) and not torch.equal(first, third), "dropout active and seeded"


def test_module_documents_the_policy():
    assert "zero" in attention.__doc__ and "unpad_inputs" in attention.__doc__


@pytest.mark.parametrize("family,name", [CASES[0], CASES[5]])
def test_random_masks_and_bucket_plans(ckpts, monkeypatch, family, name):
    """Random batches (right-padded rows, holes, single tokens) under random bucket costs: the packed
    run equals the dense run on every real position and is zero elsewhere."""
    ours = load(family, name, ckpts[name], unpad=True)
    dense = load(family, name, ckpts[name], unpad=False)
    gen = torch.Generator().manual_seed(7)
    for trial in range(12):
        rows, seq = int(torch.randint(1, 9, (1,), generator=gen)), int(torch.randint(2, 14, (1,), generator=gen))
        lengths = torch.randint(1, seq + 1, (rows,), generator=gen)
        mask = (torch.arange(seq)[None, :] < lengths[:, None]).long()
        if trial % 3 == 2:  # holes: drop some non-first positions anywhere in the row
            mask = mask * (torch.rand(rows, seq, generator=gen) > 0.3).long()
            mask[:, 0] = 1
        if bool(mask.all()):
            mask[0, -1] = 0 if seq > 1 else 1
        inputs = inputs_for(mask, seed=trial)
        if family == "distilbert":
            inputs.pop("token_type_ids")
        monkeypatch.setattr(attention, "PACK_CALL_COST_MACS", int(torch.randint(0, 10**6, (1,), generator=gen)))
        packed, plain = run(ours, **inputs), run(dense, **inputs)
        real = mask.bool()
        what = f"trial {trial}: mask {mask.tolist()}"
        assert_tensors_close(packed.last_hidden_state[real], plain.last_hidden_state[real], what)
        assert not packed.last_hidden_state[~real].any(), what
