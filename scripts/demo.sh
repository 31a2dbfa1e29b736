#!/usr/bin/env bash
# Set up, then run the main job offline on a real checkpoint (all-MiniLM-L6-v2): the `leanformers`
# command (inspect, embeddings of a corpus, semantic search), then the seed tutorial's text examples.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
PY=.venv/bin/python bash examples/cli_demo.sh
echo
.venv/bin/python examples/seed_demo.py "$@"
