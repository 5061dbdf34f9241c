"""Reliability of a user's files, searched hard: the image-loader and output-planner fuzz tests
under Hypothesis' "long" profile, the loader under an address-space limit on many more damaged
files, and a folder upscale SIGKILLed many times (half of the kills while a file is being written).

    python benchmarks/reliability_fuzz_files.py                 # long profile, 20,000 memory cases, 100 kills
    python benchmarks/reliability_fuzz_files.py --kills 3 --memory-cases 100 --profile fast --dry-run   # smoke

Writes one row to benchmarks/results/reliability-fuzz/files.json: Hypothesis examples tried,
memory cases, kills (and how many landed during a write), partial files found under final names
(must be 0), failures, wall time, machine (CPU model from /proc/cpuinfo, torch version), date.
Exits non-zero when anything failed.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests"))
from harness import machine, record  # noqa: E402
from kill_folder_job import kill_campaign  # noqa: E402
from test_fuzz_images import run_memory_fuzz  # noqa: E402

# the property-based tests of this area: the loader fuzz and the output planner's invariants
FUZZ_TESTS = ["tests/test_fuzz_images.py", "tests/test_outputs.py::test_naming_rule_properties",
              "tests/test_outputs.py::test_folder_plan_never_maps_onto_an_input", "tests/test_flags.py"]


def run_hypothesis(profile: str) -> dict:
    """pytest over FUZZ_TESTS (the memory test is run apart, with its own count) -> counts."""
    env = {**os.environ, "HYPOTHESIS_PROFILE": profile, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout", "0",
                             "--hypothesis-show-statistics", "-k", "not memory_stays_within", *FUZZ_TESTS],
                            cwd=ROOT, env=env, capture_output=True, text=True)
    out = result.stdout + result.stderr
    examples = sum(int(n) for n in re.findall(r"(\d+) passing", out))
    failing = sum(int(n) for n in re.findall(r"(\d+) failing", out))
    summary = re.findall(r"(\d+) (passed|failed|error)", out.splitlines()[-1] if out.strip() else "")
    counts = {kind: int(n) for n, kind in summary}
    return {"examples": examples + failing, "tests_passed": counts.get("passed", 0),
            "tests_failed": counts.get("failed", 0) + counts.get("error", 0) + (result.returncode not in (0, 1)),
            "log_tail": out[-3000:] if result.returncode else ""}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="long", choices=["fast", "long"], help="Hypothesis profile")
    parser.add_argument("--memory-cases", type=int, default=20_000, help="damaged files loaded under the memory limit")
    parser.add_argument("--kills", type=int, default=100, help="SIGKILLs of the folder upscale")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dry-run", action="store_true", help="print the row instead of recording it")
    args = parser.parse_args()

    start = time.perf_counter()
    fuzz = run_hypothesis(args.profile)
    print(f"hypothesis ({args.profile}): {fuzz['examples']} examples, {fuzz['tests_passed']} tests passed, "
          f"{fuzz['tests_failed']} failed", flush=True)
    memory = run_memory_fuzz(args.memory_cases, seed=args.seed, timeout=24 * 3600)
    print(f"memory: {memory['cases']} cases, {memory['bad_count']} bad, peak RSS growth "
          f"{memory['rss_growth'] / 2**20:.1f} MiB", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        kills = kill_campaign(Path(tmp), args.kills, seed=args.seed)
    print(f"kills: {kills['kills']} ({kills['kills_while_writing']} while writing), partial files "
          f"{kills['partial_files']}, re-run complete: {kills['rerun_complete']}", flush=True)
    wall = time.perf_counter() - start

    failures = fuzz["tests_failed"] + memory["bad_count"] + kills["partial_files"] + (not kills["rerun_complete"])
    quality = {
        "hypothesis_examples": fuzz["examples"], "memory_cases": memory["cases"],
        "memory_rss_growth_mib": round(memory["rss_growth"] / 2**20, 1),
        "kills": kills["kills"], "kills_while_writing": kills["kills_while_writing"],
        "partial_files": kills["partial_files"], "rerun_complete": kills["rerun_complete"], "failures": failures,
    }
    notes = (f"torch {torch.__version__}; profile {args.profile}; the loader runs with a 2**20-pixel cap under a "
             f"256 MiB address-space allowance; partial files must be 0")
    if fuzz["log_tail"] or memory["bad"] or kills["partial_examples"]:
        notes += f"; first problems: {(memory['bad'] + kills['partial_examples'])[:5]} {fuzz['log_tail'][-500:]}"
    recipe = (f"test_fuzz_images + planner/flag properties (HYPOTHESIS_PROFILE={args.profile}), "
              f"{args.memory_cases} damaged files under RLIMIT_AS, {args.kills} SIGKILLs of upscale IN -o OUT")
    if args.dry_run:
        print({"recipe": recipe, "wall_s": round(wall, 1), "quality": quality, "notes": notes, "machine": machine()})
    else:
        print(f"recorded {record('reliability-fuzz', 'files', recipe=recipe, wall_s=wall, quality=quality, notes=notes)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
