"""The long run of the training fault-injection test: many SIGKILLs at random moments.

    python benchmarks/reliability_faults.py --kills 100 [--seed 1]

Runs tests/test_fault_injection.py with GENVISION_FAULT_KILLS kills (make test runs 3) and
records what the test reports — kills, kills that landed inside a checkpoint write, and that the
final weights and metrics rows equal an uninterrupted run's — as a benchmark result row. A kill
that broke the run fails the test, and then no row is written.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import ROOT, record  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.kills < 1:
        parser.error("--kills must be >= 1")
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        env = {**os.environ, "GENVISION_FAULT_KILLS": str(args.kills), "GENVISION_FAULT_SEED": str(args.seed),
               "GENVISION_FAULT_REPORT": str(report)}
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout=0",
                               "tests/test_fault_injection.py"], cwd=ROOT, env=env)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            sys.exit("the fault-injection test failed: see its output above; no result recorded")
        counts = json.loads(report.read_text())
    path = record("reliability-faults", f"training-sigkill-{args.kills}", wall_s=wall,
                  recipe="tiny DCGAN on mnist-mini, runs of 60 steps, a checkpoint every step, 1 thread",
                  quality=counts, notes=f"seed {args.seed}; one kill per launch, then --resume")
    print(path)


if __name__ == "__main__":
    main()
