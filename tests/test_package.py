"""Package hygiene: the reference library is never imported, and importing stays light."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

SRC = pathlib.Path(__file__).resolve().parents[1] / "src" / "leanformers"


def test_source_never_imports_reference():
    offenders = []
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            if any(n == "transformers" or n.startswith("transformers.") for n in names):
                offenders.append(f"{path}:{node.lineno}")
    assert not offenders, offenders


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_using_the_library_does_not_load_reference(minilm_dir):
    code = (
        "import sys, torch, leanformers\n"
        f"m = leanformers.AutoModel.from_pretrained({str(minilm_dir)!r})\n"
        f"t = leanformers.AutoTokenizer.from_pretrained({str(minilm_dir)!r})\n"
        "m(**t('hello', return_tensors='pt'))\n"
        "print(any(k == 'transformers' or k.startswith('transformers.') for k in sys.modules))\n"
    )
    assert _run(code) == "False"


def test_import_is_light():
    code = "import sys, leanformers; leanformers.AutoTokenizer; leanformers.AutoConfig; print('torch' in sys.modules)"
    assert _run(code) == "False"
