#!/usr/bin/env bash
# Set up, then run the seed tutorial's text examples on a real checkpoint, offline.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
HF_HUB_OFFLINE=1 .venv/bin/python examples/seed_demo.py "$@"
