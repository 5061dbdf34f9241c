"""How long ``genvision export`` takes: ONNX export of the any-size networks at their registry default
configs (random weights: tracing does not depend on them), this checkout against an older one.

    git worktree add /tmp/before 7fc2697
    python benchmarks/export_time.py --before /tmp/before --before-label 7fc2697 [--rounds 3]

Each export runs in a fresh interpreter with one thread, timed from the call of ``export_onnx`` to its
return (tracing, translation, the parity check on a probe input, the file written); the rounds interleave
the checkouts (A, then B, then A again, ...) so a busy machine slows both alike, and the rows give the
median. ESPCN pads nothing and is the control: its ratio shows the noise of the rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import ROOT, record, render_docs  # noqa: E402

# label -> (registry name, config overrides); AdaIN with its seeded random encoder (the VGG-19 weights are
# an install step, and tracing does not depend on them)
CASES = {
    "espcn x3 (control: no padding)": ("espcn", {"scale": 3}),
    "johnson": ("johnson", {}),
    "johnson, 7 styles": ("johnson", {"styles": 7}),
    "adain (random encoder)": ("adain", {"encoder": "random"}),
    "cyclegan (a2b + b2a)": ("cyclegan", {}),
    "lama": ("lama", {}),
}
SNIPPET = """
import json, sys, time, torch
import genvision.models
from genvision.export import export_onnx
from genvision.registry import create_model
name, overrides, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
torch.manual_seed(0)
model = create_model(name, overrides).eval()
t0 = time.perf_counter()
reports = export_onnx(model, out)
print(json.dumps({"s": time.perf_counter() - t0, "error": max(r.max_abs_error for r in reports)}))
"""


def export_seconds(checkout: Path, name: str, overrides: dict, out: Path) -> tuple[float, float]:
    env = {**os.environ, "PYTHONPATH": str(checkout / "src"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", SNIPPET, name, json.dumps(overrides), str(out)], env=env,
                          check=True, capture_output=True, text=True, timeout=900)
    out.unlink(missing_ok=True)
    for extra in out.parent.glob(f"{out.stem}.*.onnx"):  # multi-graph exports write STEM.GRAPH.onnx
        extra.unlink()
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["s"], result["error"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="an older checkout to measure in the same rounds")
    parser.add_argument("--before-label", default="before", help="its name in the rows (e.g. a commit)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not 1 <= args.rounds <= 100:
        parser.error(f"--rounds must be 1..100, got {args.rounds}")
    if not (args.before / "src" / "genvision").is_dir():
        parser.error(f"--before {args.before} is not a genvision checkout (no src/genvision)")
    checkouts = {"this checkout": ROOT, args.before_label: args.before.resolve()}
    times: dict[tuple[str, str], list[float]] = {(c, case): [] for c in checkouts for case in CASES}
    errors: dict[tuple[str, str], float] = {}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for round_index in range(args.rounds):
            for case, (name, overrides) in CASES.items():
                for label, checkout in checkouts.items():
                    seconds, error = export_seconds(checkout, name, overrides, Path(tmp) / "model.onnx")
                    times[label, case].append(seconds)
                    errors[label, case] = error
            print(f"round {round_index + 1}/{args.rounds} done", flush=True)
    wall = time.perf_counter() - t0
    for case, (name, overrides) in CASES.items():
        now, before = (statistics.median(times[label, case]) for label in checkouts)
        record("export-time", case, recipe=f"export_onnx(create_model({name!r}, {overrides}))", wall_s=wall,
               throughput={"this checkout s": round(now, 1), f"{args.before_label} s": round(before, 1),
                           "this checkout / before": round(now / before, 2)},
               quality={"max abs error": f"{errors['this checkout', case]:.1e}"},
               notes=f"median of {args.rounds} interleaved rounds, fresh interpreter, OMP_NUM_THREADS=1")
    print(render_docs())


if __name__ == "__main__":
    main()
