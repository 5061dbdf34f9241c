"""The SR evaluation through `genvision evaluate` (the one evaluation entry point: a weightless
registered model, its kind's evaluator), checked against the protocol's recorded bicubic cells.

    python benchmarks/sr_evaluate_check.py [--data-root ../shared/data]

Bicubic interpolation is deterministic, so the same protocol must give the same PSNR to the last
recorded digit: any difference is a regression of the evaluation path, not noise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import RESULTS, ROOT, record  # noqa: E402

from genvision.evaluation import EvaluationRequest  # noqa: E402
from genvision.workflows.evaluate import evaluate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    args = parser.parse_args()
    reference = json.loads((RESULTS / "sr-protocol" / "bicubic-set5-set14.json").read_text())["quality"]
    quality, start, same = {}, time.perf_counter(), True
    for scale in (2, 3, 4):
        result = evaluate(EvaluationRequest(model="bicubic", scale=scale, data="sr:Set5", data_root=args.data_root,
                                            progress=False))
        before = reference[f"Set5 x{scale} dB"]
        quality[f"Set5 x{scale} dB"] = round(result.metrics["psnr"], 4)
        quality[f"Set5 x{scale} dB before"] = round(before, 4)
        same &= round(result.metrics["psnr"], 3) == before  # the recorded cells keep 3 decimals
        print(f"Set5 x{scale}: {result.metrics['psnr']:.4f} dB (recorded {before:.4f})")
    quality["identical"] = "yes" if same else "NO"
    path = record("sr-protocol", "bicubic Set5 through genvision evaluate", wall_s=time.perf_counter() - start,
                  recipe="genvision evaluate --model bicubic --scale N --data sr:Set5", quality=quality,
                  notes="the redesigned evaluation path (workflows.evaluate, weightless model, the sr evaluator) "
                        "against the protocol cells recorded before it")
    print(path)


if __name__ == "__main__":
    main()
