"""The real all-MiniLM-L6-v2 checkpoint: the seed's token ids and the reference's hidden states."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import transformers
from parity import assert_tensors_close

from leanformers import AutoModel, AutoTokenizer

SEED_SENTENCE = "In a hole in the ground there lived a hobbit."
SEED_IDS = [101, 1999, 1037, 4920, 1999, 1996, 2598, 2045, 2973, 1037, 7570, 10322, 4183, 1012, 102]


def test_seed_token_ids(minilm_dir):
    encoding = AutoTokenizer.from_pretrained(minilm_dir)(SEED_SENTENCE)
    assert encoding["input_ids"] == SEED_IDS
    assert encoding["token_type_ids"] == [0] * len(SEED_IDS)
    assert encoding["attention_mask"] == [1] * len(SEED_IDS)


@pytest.fixture(scope="module")
def both_models(minilm_dir):
    ours = AutoModel.from_pretrained(minilm_dir)
    ref = transformers.AutoModel.from_pretrained(minilm_dir).eval()
    return ours, ref


def test_last_hidden_state_matches_reference(minilm_dir, both_models):
    ours, ref = both_models
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_dir)
    batch = tokenizer([SEED_SENTENCE, "Short one.", "A much longer sentence, with commas, numbers 1234 and émojis 🤗."],
                      padding=True, return_tensors="pt")
    with torch.no_grad():
        got = ours(**batch)
        want = ref(**batch)
    real = batch["attention_mask"].bool()
    # Padded positions hold values nobody reads (pad queries over real keys); after the last
    # LayerNorm they amplify rounding differences, so they get the project tolerance, and real
    # positions a tighter bound.
    assert (got.last_hidden_state - want.last_hidden_state)[real].abs().max().item() <= 1e-5
    for name in ("last_hidden_state", "pooler_output"):
        assert_tensors_close(getattr(got, name), getattr(want, name), name)


def test_parameters_identical(both_models):
    ours, ref = both_models
    ref_state = ref.state_dict()
    for key, value in ours.state_dict().items():
        assert torch.equal(value, ref_state[key]), key
    assert ours.dtype == torch.float32 and not ours.training


def test_demo_runs(minilm_dir):
    demo = Path(__file__).resolve().parents[1] / "examples" / "seed_demo.py"
    out = subprocess.run([sys.executable, str(demo), str(minilm_dir)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert str(SEED_IDS)[1:-1] in out.stdout
    assert "BertTokenizer(" in out.stdout and "pt_predictions" in out.stdout
