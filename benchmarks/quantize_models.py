"""Quantization benchmark: every method on each model, side by side in one run (size, latency, quality).

    python benchmarks/quantize_models.py --data-root ../shared/data \
        --model benchmarks/results/runs/sr-espcn-x3-10min --model benchmarks/results/runs/sr-edsr-x3-15min \
        --model src/genvision/assets/extractors/mnist-cnn [--methods static,dynamic,fp16,bf16,int8-weights] \
        [--qat-steps 500]

Each (model, method) is exactly ``genvision quantize --model M --method X [--full-range] [--quantize-ends]``
(``static/full-range/quantize-ends`` names the flags; the same code path:
genvision.apps.deploy.quantize.run_quantize): SR models are calibrated on their training images (the
first 64 of ../shared/data/sr-train, LR by the protocol) and scored by Y-PSNR on Set5 (and Set14);
classifiers are calibrated on 512 training images and scored by test accuracy; GANs are calibrated on 512
latents of their prior and scored by domain FID on 10,000 samples. Latency: 20 interleaved rounds on one real
input (an SR model: the first calibration image; a classifier: a batch of 32; a GAN: 16 latents) of PyTorch
eager fp32, ONNX Runtime fp32 and the quantized model in turn, in the same process; each speed-up is the
median of the 20 per-round ratios, so a slow spell of the machine hits all three alike.
With ``--qat-steps N``, each SR model is also fine-tuned for N steps under int8 rounding (quantization-aware
training: ``genvision train sr-distill teacher=M init=M objective.qat=true objective.lr=1e-4``, the model
its own teacher, on its training images) and converted by ``genvision quantize --method qat``: variant
``qat``, whose report also scores the float model before the fine-tune.
Targets (issue 16): SR int8 costs <= 0.1 dB on Set5 at >= 1.5x the fp32 speed; classifier int8 loses
<= 0.1 points; models 4x smaller.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import ROOT, record, train

from genvision.apps.deploy.quantize import QuantizeJob, run_quantize
from genvision.checkpoints import resolve_model_dir
from genvision.export.quantize import INT8_METHODS

OUT = ROOT / "benchmarks" / "results" / "runs" / "quantized"


def qat_finetune(model: str, steps: int) -> Path:
    """Fine-tune ``model`` under int8 rounding, itself as the teacher, on its own training images."""
    card = json.loads((resolve_model_dir(model) / "config.json").read_text())
    data = card["run"]["recipe"]["data"]["name"]
    result = train("sr-distill", progress=True, overrides=[
        f"data.name={data}", f"teacher={model}", f"init={model}", "objective.qat=true", "objective.lr=1e-4",
        "objective.warmup_steps=0", f"steps={steps}", "batch_size=16", f"train.out_dir={OUT}",
        f"train.name={Path(model).name}-qat{steps}", "tensorboard=false", "sample_every=0"], overwrite=True)
    return result.run_dir


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", required=True)
    parser.add_argument("--methods", default="static,static/full-range,static/full-range/quantize-ends,dynamic,fp16,bf16,"
                        "int8-weights",
                        help="methods, each with /full-range and /quantize-ends to turn off the defaults")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--sr-sets", default="sr:Set5,sr:Set14")
    parser.add_argument("--qat-steps", type=int, default=0, help="also fine-tune SR models this long under "
                        "int8 rounding and convert them (variant qat); 0: no QAT")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    for model in args.model:
        name = Path(model).name
        is_sr = "sr-" in name
        variants = args.methods.split(",")
        if is_sr and args.qat_steps:
            qat_run = qat_finetune(model, args.qat_steps)
            variants.append("qat")
        for variant in variants:
            method, *flags = variant.split("/")
            for data in (args.sr_sets.split(",") if is_sr else [None]):
                slug = variant.replace("/", "-")
                target = OUT / f"{name}-{slug}{'-' + data.split(':')[-1] if data else ''}"
                output = target.with_suffix(".onnx") if method in INT8_METHODS else target
                started = time.perf_counter()
                report = run_quantize(QuantizeJob(str(qat_run) if method == "qat" else model, method, output, calibration_images=64 if is_sr else 512,
                                                  evaluate=data, data_root=args.data_root,
                                                  reduce_range="full-range" not in flags,
                                                  keep_ends=False if "quantize-ends" in flags else None))
                wall = time.perf_counter() - started
                q = report["quality"]
                metric = q["metric"]
                quality = {"before": round(q["original"][metric], 4), "after": round(q["quantized"][metric], 4),
                           "delta": round(q["delta"], 4), "size_ratio_vs_fp32": round(report["size_ratio"], 2)}
                throughput = {}
                if "latency_s" in report:
                    lat = report["latency_s"]
                    throughput = {"eager_ms": round(1000 * lat["torch_eager_fp32"], 2),
                                  "ort_fp32_ms": round(1000 * lat["onnxruntime_fp32"], 2),
                                  "quantized_ms": round(1000 * lat["quantized"], 2),
                                  "speedup_vs_eager": round(report["speedup_vs_eager"], 2),
                                  "speedup_vs_ort_fp32": round(report["speedup_vs_onnxruntime_fp32"], 2)}
                if "quality_before_qat" in report:  # the float model QAT started from: what int8 is compared with
                    before_qat = report["quality_before_qat"][metric]
                    quality.update(before=round(before_qat, 4), qat_float=quality["before"],
                                   delta=round(q["quantized"][metric] - before_qat, 4))
                print(name, variant, data, quality, throughput, flush=True)
                record("quantize", f"{name} {variant}{' on ' + data if data else ''}", recipe=f"{metric}, "
                       f"calibration {report.get('calibration_inputs', 0)} inputs", wall_s=wall,
                       throughput=throughput, quality=quality,
                       notes=f"latency input {report.get('latency_input')}; bytes {report['bytes']}")


if __name__ == "__main__":
    main()
