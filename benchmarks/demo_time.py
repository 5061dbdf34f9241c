"""How long `genvision demo` takes, panel by panel (issue 17: the whole product in <= 3 minutes on 2 cores).

    python benchmarks/demo_time.py [--out /tmp/demo-bench]

Runs ``genvision demo`` in a fresh process exactly as ``make demo`` does after its install step (the
backbones already fetched), times the whole process from the outside (start-up and imports included),
and records the per-panel seconds the demo writes to its demo.json. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import record, render_docs

BUDGET_S = 180.0


def slug(title: str) -> str:
    """A panel's title as a short column name: its first two words ("latent-traversal")."""
    words = re.sub(r"[^a-z0-9]+", " ", title.split(":")[0].split(" (")[0].lower()).split()
    return "-".join(words[:2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/demo-bench"))
    args = parser.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    genvision = Path(sys.executable).with_name("genvision")
    start = time.perf_counter()
    done = subprocess.run([str(genvision), "demo", "--out", str(args.out)], check=False)
    wall = time.perf_counter() - start
    summary = json.loads((args.out / "demo.json").read_text())
    seconds = {slug(title): round(value, 1) for title, value in summary["seconds"].items() if title != "total"}
    path = record("demo", "genvision demo (defaults: 1 min training)", recipe="make demo, backbones fetched",
                  wall_s=wall, throughput={"process_s": round(wall, 1), "panels_s": round(summary["seconds"]["total"], 1),
                                           **{f"{k}_s": v for k, v in seconds.items()}},
                  quality={"within_3_min": wall <= BUDGET_S, "exit_code": done.returncode,
                           "failed": len(summary["failed"]), "skipped": len(summary["skipped"])})
    print(f"{wall:.1f} s (budget {BUDGET_S:.0f} s), exit {done.returncode} -> {path}")
    render_docs()


if __name__ == "__main__":
    main()
