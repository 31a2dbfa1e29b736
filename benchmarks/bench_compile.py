"""torch.compile on leanformers models: eager against ``model.compile()`` (in place), CPU, one run.

    .venv/bin/python benchmarks/bench_compile.py [--rounds 7] [--threads N] [--dynamic none|true|false]
        [--only bert-mixed,bert-short,vit-8,vit-1] [--shape-changes 6] [--log-recompiles] [--no-explain]
        [--warm-cache]

Four cases, each under ``torch.inference_mode()``, with leanformers' public classes on checkpoints
built once by the reference (random weights; common.py):

| case | model | input |
| --- | --- | --- |
| bert-mixed | BERT-base ``AutoModelForSequenceClassification`` | the 32 mixed-length texts (1,406 real tokens padded to 79; packed automatically) |
| bert-short | the same | one text of 12 tokens (no padding: dense) |
| vit-8 | ViT-base ``AutoModelForImageClassification`` | 8 images 224 x 224 |
| vit-1 | the same | 1 image |

Each case gets two fresh models: one eager, one with ``model.compile(dynamic=...)`` (torch's
``nn.Module.compile``, default backend inductor, ``dynamic=None`` unless asked). Reported:
- **first call**: seconds of the compiled model's first call on the case's input (tracing, inductor's
  code generation and C++ builds: the compile cost), next to the eager model's first call. Inductor
  keeps compiled code on disk; unless ``--warm-cache``, the run gets a fresh, empty cache directory
  (``TORCHINDUCTOR_CACHE_DIR``), so the first case's first call is a cold compile (later cases may
  reuse kernels compiled for earlier ones in the same process, as an application would);
- **second call**: the compiled model's second call on the same input (a recompile would show here);
- **steady state**: medians of ``--rounds`` interleaved rounds (eager, compiled, each once per
  round, after a warm-up round), and the ratio eager / compiled (> 1: compiled is faster);
- the largest logit difference between the two;
- graphs compiled and graph breaks (torch's dynamo counters, a diagnostic) during the first call,
  and, unless ``--no-explain``, ``torch._dynamo.explain`` on the eager model: where the package's
  code breaks the graph (file, line, reason).

Then **shape changes** (the bert-mixed compiled model, already warm): ``--shape-changes`` new mixed
batches, each with other lengths (so other packed shapes and length buckets), one call each, timed
against the eager model on the same batch, with the graphs compiled per call: does every new batch
recompile? ``--log-recompiles`` prints torch's recompilation reasons (``TORCH_LOGS=recompiles``) to
stderr. Dynamo keeps compiled code per function (code object), shared by every model instance that
runs it, up to 8 entries each by default (``torch._dynamo.config.recompile_limit``); past it that
function runs eagerly. The cases here share BERT's functions, so their recompiles add up.

The bar for keeping ``model.compile()`` as the documented fast path: steady-state eager / compiled
>= 1.15x on bert-mixed or bert-short.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

SHORT_TEXT = "The quick brown fox jumps over the lazy dog near the river."


def dynamo_counts() -> dict[str, int]:
    """Graphs compiled and graph breaks so far (dynamo's counters: a diagnostic, not package code)."""
    from torch._dynamo.utils import counters

    return {"graphs": int(counters["stats"]["unique_graphs"]), "breaks": int(sum(counters["graph_break"].values()))}


def cases() -> dict[str, tuple]:
    """name -> (load a fresh model, inputs)."""
    import torch

    import leanformers

    bert, vit = common.bert_base_classifier(), common.vit_base_classifier()
    short = leanformers.AutoTokenizer.from_pretrained(bert)(SHORT_TEXT, return_tensors="pt")
    gen = torch.Generator().manual_seed(0)

    def load_bert():
        return leanformers.AutoModelForSequenceClassification.from_pretrained(bert).eval()

    def load_vit():
        return leanformers.AutoModelForImageClassification.from_pretrained(vit).eval()

    return {
        "bert-mixed": (load_bert, common.mixed_batch()),
        "bert-short": (load_bert, dict(short)),
        "vit-8": (load_vit, {"pixel_values": torch.randn(8, 3, 224, 224, generator=gen)}),
        "vit-1": (load_vit, {"pixel_values": torch.randn(1, 3, 224, 224, generator=gen)}),
    }


def explain(model, inputs) -> str:
    """Graphs and graph breaks dynamo finds in one forward, with the package's frames that break."""
    import torch

    try:
        result = torch._dynamo.explain(model)(**inputs)
    except Exception as error:  # noqa: BLE001 - a diagnostic: report it and go on
        return f"explain failed: {type(error).__name__}: {error}"
    lines = [f"{result.graph_count} graph(s), {result.graph_break_count} break(s)"]
    for reason in result.break_reasons[:8]:
        frames = [frame for frame in reason.user_stack if "leanformers" in frame.filename] or reason.user_stack
        where = f"{frames[-1].filename.split('src/')[-1]}:{frames[-1].lineno}" if frames else "?"
        lines.append(f"    break at {where}: {reason.reason.splitlines()[0][:200]}")
    return "\n".join(lines)


def run_case(name: str, load, inputs, args, dynamic) -> dict:
    import torch

    eager, compiled = load(), load()
    torch.set_num_threads(args.threads)
    compiled.compile(dynamic=dynamic)
    row: dict = {"case": name}
    with torch.inference_mode():
        start = time.perf_counter()
        expected = eager(**inputs).logits
        row["eager first"] = time.perf_counter() - start
        before = dynamo_counts()
        start = time.perf_counter()
        try:
            got = compiled(**inputs).logits
        except Exception as error:  # noqa: BLE001 - the point of the experiment is to report it
            row["error"] = "".join(traceback.format_exception(error)[-12:])
            return row
        row["first"] = time.perf_counter() - start
        after = dynamo_counts()
        row["graphs"], row["breaks"] = after["graphs"] - before["graphs"], after["breaks"] - before["breaks"]
        start = time.perf_counter()
        compiled(**inputs)
        row["second"] = time.perf_counter() - start
        row["recompiled on 2nd"] = dynamo_counts()["graphs"] - after["graphs"]
        row["diff"] = (got - expected).abs().max().item()
        times = common.interleaved({"eager": common.stopwatch(eager, **inputs),
                                    "compiled": common.stopwatch(compiled, **inputs)},
                                   rounds=args.rounds, warmup=1)
    row["eager"], row["compiled"] = common.median(times["eager"]), common.median(times["compiled"])
    row["models"] = (eager, compiled)
    if not args.no_explain:
        with torch.inference_mode():
            row["explain"] = explain(load(), inputs)
    return row


def shape_changes(eager, compiled, count: int) -> list[str]:
    """New mixed batches on the warm compiled model: time, and graphs compiled, per call."""
    import torch

    lines = []
    with torch.inference_mode():
        for k in range(count):
            gen = torch.Generator().manual_seed(100 + k)
            longest = 60 + 7 * k
            lengths = torch.randint(8, longest + 1, (common.BATCH,), generator=gen).tolist()
            lengths[0] = longest
            inputs = common.batch_of(lengths, longest, seed=100 + k)
            start = time.perf_counter()
            expected = eager(**inputs).logits
            eager_s = time.perf_counter() - start
            before = dynamo_counts()["graphs"]
            start = time.perf_counter()
            got = compiled(**inputs).logits
            compiled_s = time.perf_counter() - start
            graphs = dynamo_counts()["graphs"] - before
            start = time.perf_counter()
            compiled(**inputs)
            again = time.perf_counter() - start
            lines.append(f"| {k + 1} | 32 x {longest}, {sum(lengths)} real tokens | {eager_s:.3f} | {compiled_s:.3f} "
                         f"| {graphs} | {again:.3f} | {(got - expected).abs().max().item():.1e} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--dynamic", choices=["none", "true", "false"], default="none")
    parser.add_argument("--only", help="comma-separated cases (default: all)")
    parser.add_argument("--shape-changes", type=int, default=6, help="new mixed batches after bert-mixed (0: skip)")
    parser.add_argument("--log-recompiles", action="store_true", help="torch's recompilation reasons to stderr")
    parser.add_argument("--no-explain", action="store_true", help="skip torch._dynamo.explain's graph-break report")
    parser.add_argument("--warm-cache", action="store_true", help="keep inductor's usual on-disk cache (default: "
                        "a fresh empty one, for cold compile times)")
    args = parser.parse_args()
    if not args.warm_cache:  # before torch is imported: inductor reads it then
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench-compile-inductor-")
        atexit.register(shutil.rmtree, os.environ["TORCHINDUCTOR_CACHE_DIR"], ignore_errors=True)

    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    args.threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(args.threads)
    if args.log_recompiles:
        torch._logging.set_logs(recompiles=True)
    dynamic = {"none": None, "true": True, "false": False}[args.dynamic]

    chosen = cases()
    if args.only:
        chosen = {name: chosen[name] for name in args.only.split(",")}
    print(common.machine_line())
    cache = "warm (inductor's usual on-disk cache)" if args.warm_cache else "cold (a fresh inductor cache directory)"
    print(f"model.compile(dynamic={dynamic}), backend inductor, {cache}; medians of {args.rounds} interleaved rounds "
          "after a warm-up round; under torch.inference_mode()\n", flush=True)
    print("| case | eager first call (s) | compiled first call (s) | graphs / breaks (1st call) | 2nd call (s) "
          "| recompiled on 2nd | eager median (s) | compiled median (s) | eager / compiled | max |logit diff| |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |", flush=True)
    rows, notes = [], []
    for name, (load, inputs) in chosen.items():  # each row printed as soon as it is measured
        print(f"[{name}] compiling...", file=sys.stderr, flush=True)
        row = run_case(name, load, inputs, args, dynamic)
        rows.append(row)
        if "error" in row:
            print(f"| {name} | {row['eager first']:.3f} | FAILED | | | | | | | |", flush=True)
            notes.append(f"{name}: compile FAILED:\n{row['error']}")
            continue
        print(f"| {name} | {row['eager first']:.3f} | {row['first']:.1f} | {row['graphs']} / {row['breaks']} "
              f"| {row['second']:.3f} | {row['recompiled on 2nd']} | {row['eager']:.4f} | {row['compiled']:.4f} "
              f"| {row['eager'] / row['compiled']:.2f}x | {row['diff']:.1e} |", flush=True)
        if "explain" in row:
            notes.append(f"{name}, torch._dynamo.explain: {row['explain']}")
        if name == "bert-mixed" and args.shape_changes:
            notes.append(f"shape changes on the warm bert-mixed compiled model (dynamic={dynamic}):\n"
                         "| batch | shape | eager (s) | compiled 1st call (s) | graphs compiled | compiled 2nd call (s) "
                         "| max |logit diff| |\n| --- | --- | ---: | ---: | ---: | ---: | ---: |")
            for line in shape_changes(*row["models"], args.shape_changes):
                notes[-1] += "\n" + line
                print(f"  shape change: {line}", file=sys.stderr, flush=True)
        row.pop("models", None)
    for note in notes:
        print(f"\n{note}", flush=True)
    bert = [row["eager"] / row["compiled"] for row in rows if row["case"].startswith("bert") and "error" not in row]
    if bert:
        verdict = "met" if max(bert) >= 1.15 else "NOT met"
        print(f"\nbar (eager / compiled >= 1.15x on bert-mixed or bert-short): {verdict} (best {max(bert):.2f}x)")


if __name__ == "__main__":
    main()
