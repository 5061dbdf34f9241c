"""The SR evaluation through `genvision evaluate` (the one evaluation entry point: a weightless
registered model, its kind's evaluator), checked against what the same command gave before the
redesign of issue 12 and against the protocol's recorded bicubic cells.

    python benchmarks/sr_evaluate_check.py [--data-root ../shared/data]

Everything here is deterministic, so any difference is a regression of the evaluation path, not
noise. Two columns are checked: the weightless ``bicubic`` model (bicubic on the float LR image)
and the protocol's MATLAB bicubic baseline (on the 8-bit LR image) that the evaluator scores beside
every model.
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

# `genvision evaluate --model bicubic --scale N --data sr:Set5` at commit 16bd9d9 (before the
# redesign), metrics["psnr"] of evaluation.json, full precision.
BEFORE_REDESIGN = {2: 33.67795225509072, 3: 30.404263414684294, 4: 28.4305212612418}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    args = parser.parse_args()
    protocol = json.loads((RESULTS / "sr-protocol" / "bicubic-set5-set14.json").read_text())["quality"]
    quality, start, same = {}, time.perf_counter(), True
    for scale in (2, 3, 4):
        metrics = evaluate(EvaluationRequest(model="bicubic", scale=scale, data="sr:Set5",
                                             data_root=args.data_root, progress=False)).metrics
        model_same = abs(metrics["psnr"] - BEFORE_REDESIGN[scale]) < 1e-9
        baseline_same = round(metrics["bicubic_psnr"], 3) == protocol[f"Set5 x{scale} dB"]  # cells keep 3 decimals
        same &= model_same and baseline_same
        quality[f"x{scale} model dB"] = round(metrics["psnr"], 4)
        quality[f"x{scale} model dB before"] = round(BEFORE_REDESIGN[scale], 4)
        quality[f"x{scale} baseline dB"] = round(metrics["bicubic_psnr"], 3)
        quality[f"x{scale} protocol cell dB"] = protocol[f"Set5 x{scale} dB"]
        print(f"Set5 x{scale}: model {metrics['psnr']:.6f} dB (before {BEFORE_REDESIGN[scale]:.6f}), "
              f"MATLAB baseline {metrics['bicubic_psnr']:.4f} dB (protocol cell {protocol[f'Set5 x{scale} dB']:.3f})")
    quality["identical"] = "yes" if same else "NO"
    path = record("sr-protocol", "bicubic Set5 through genvision evaluate", wall_s=time.perf_counter() - start,
                  recipe="genvision evaluate --model bicubic --scale N --data sr:Set5", quality=quality,
                  notes="the redesigned evaluation path (workflows.evaluate, weightless model, the sr evaluator) "
                        "against the same command at commit 16bd9d9 and the protocol cells recorded before it")
    print(path)
    if not same:
        sys.exit("the redesigned evaluation path changed a number")


if __name__ == "__main__":
    main()
