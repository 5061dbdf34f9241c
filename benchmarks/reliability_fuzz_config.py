"""Reliability fuzz of recipes and model directories (issue 11): the Hypothesis tests of
tests/test_fuzz_config.py under the "long" profile (2000 examples per test, random seeds),
recorded as one result row.

    HYPOTHESIS_PROFILE=long python benchmarks/reliability_fuzz_config.py

Writes benchmarks/results/reliability-fuzz/config.json: examples tried per test (passing and
failing, summed over Hypothesis' phases; discarded draws counted apart as invalid), failures
(must be 0), wall time, machine (CPU model, cores, torch version) and date. Extra pytest arguments are passed through (e.g.
``-k recipe`` or ``-x``). The exit status is pytest's.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import ROOT, record  # noqa: E402

TEST_FILE = ROOT / "tests" / "test_fuzz_config.py"
# One line per Hypothesis phase in the statistics that --hypothesis-show-statistics collects.
_PHASE_COUNTS = re.compile(r"(\d+) passing, (\d+) failing, and (\d+) invalid")


class FuzzStatistics:
    """A pytest plugin that keeps, per test, Hypothesis' example counts and the outcome."""

    def __init__(self) -> None:
        self.tests: dict[str, dict] = {}

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        report = (yield).get_result()
        row = self.tests.setdefault(item.nodeid.split("::", 1)[-1],
                                    {"passing": 0, "failing": 0, "invalid": 0, "outcome": "passed"})
        if report.failed:
            row["outcome"] = "failed"
        elif report.skipped and report.when == "setup":
            row["outcome"] = "skipped"
        if report.when == "call":
            for passing, failing, invalid in _PHASE_COUNTS.findall(getattr(item, "hypothesis_statistics", "")):
                row["passing"] += int(passing)
                row["failing"] += int(failing)
                row["invalid"] += int(invalid)


def main(argv: list[str]) -> int:
    profile = os.environ.setdefault("HYPOTHESIS_PROFILE", "long")
    stats = FuzzStatistics()
    start = time.perf_counter()
    code = pytest.main([str(TEST_FILE), "-q", "-p", "no:cacheprovider", "--hypothesis-show-statistics",
                        "--timeout=0", *argv], plugins=[stats])
    wall_s = time.perf_counter() - start
    tested = {k: v for k, v in stats.tests.items() if v["outcome"] != "skipped"}
    failures = sum(v["outcome"] == "failed" for v in tested.values())
    examples = sum(v["passing"] + v["failing"] for v in tested.values())
    invalid = sum(v["invalid"] for v in tested.values())
    path = record("reliability-fuzz", "config", recipe=f"tests/test_fuzz_config.py, profile {profile}",
                  wall_s=wall_s, throughput={"examples_per_s": round(examples / max(wall_s, 1e-9), 1)},
                  quality={"tests": len(tested), "examples": examples, "failures": failures},
                  notes=f"examples = test cases run to completion (passing + failing) over all Hypothesis "
                        f"phases; {invalid} more were discarded while drawing (invalid)")
    row = json.loads(path.read_text())
    row["torch"] = torch.__version__
    row["examples_per_test"] = tested
    path.write_text(json.dumps(row, indent=2) + "\n")
    print(f"{path}: {len(tested)} tests, {examples} examples, {failures} failures, {wall_s:.0f} s")
    return int(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
