"""One runner for every benchmark: records results as JSON and regenerates docs/BENCHMARKS.md tables.

Each result is a JSON file ``benchmarks/results/<capability>/<name>.json`` with the capability,
recipe, command, machine, date, wall time, throughput and quality numbers. ``render_docs()``
rewrites only the generated block of docs/BENCHMARKS.md (between the two markers), so the
hand-written analysis around it survives.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "BENCHMARKS.md"
BEGIN, END = "<!-- generated results: begin (benchmarks/harness.py) -->", "<!-- generated results: end -->"
EXIT_ON_SIGNAL = {"SIGINT": 130, "SIGTERM": 143}


def train(*args, **kwargs):
    """genvision's ``train``, but a run stopped by Ctrl-C or SIGTERM ends the benchmark too (the
    library returns normally after its checkpoint, so a script would otherwise train its next model)."""
    from genvision.workflows.train import train as train_run

    result = train_run(*args, **kwargs)
    if result.stopped_by == "signal":
        print(f"interrupted ({result.signal}) at step {result.step}; checkpoint in {result.run_dir}", file=sys.stderr)
        sys.exit(EXIT_ON_SIGNAL.get(result.signal, 130))
    return result


def machine() -> str:
    cpu = platform.processor() or "cpu"
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        cpuinfo = []
    for line in cpuinfo:
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    # Machines of one model name ("AMD EPYC") differ in vector width, and an EDSR step here ran 3x slower
    # without AVX-512: the row names it so two rows of the same name can be compared.
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo if line.startswith("flags")), [])
    if flags:
        cpu += " (AVX-512)" if "avx512f" in flags else " (AVX2)" if "avx2" in flags else ""
    desc = f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__.split('+')[0]}, {torch.get_num_threads()} threads"
    if torch.cuda.is_available():
        desc += f", {torch.cuda.get_device_name()}"
    return desc


def run_summary(run_dir: str | Path) -> tuple[int | None, float]:
    """(last logged step, training seconds) of a run, summed over its resumed segments (each
    process logs its own elapsed time from zero)."""
    log = Path(run_dir) / "metrics.jsonl"
    if not log.is_file():
        return None, 0.0
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "elapsed_s" in r]
    total, last = 0.0, 0.0
    for row in rows:
        if row["elapsed_s"] < last:  # a new segment (resumed) started
            total += last
        last = row["elapsed_s"]
    return (rows[-1]["step"] if rows else None), total + last


def command_line() -> str:
    return " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv])


def record(capability: str, name: str, *, recipe: str, wall_s: float, throughput: dict | None = None,
           quality: dict | None = None, notes: str = "") -> Path:
    result = {
        "capability": capability, "name": name, "recipe": recipe, "command": command_line(),
        "machine": machine(), "date": time.strftime("%Y-%m-%d"), "wall_s": round(wall_s, 1),
        "throughput": throughput or {}, "quality": quality or {}, "notes": notes,
    }
    slug = re.sub(r"[^A-Za-z0-9.]+", "-", name).strip("-").lower()
    path = RESULTS / capability / f"{slug}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def score_generator(model, label: str, recipe: str, settings: list[dict], extractor, reference, *, n: int,
                    train_info: dict, capability: str, keys: tuple[str, ...], save: bool = True,
                    batch: int = 500) -> list[tuple[float, dict]]:
    """One domain-FID row per sampling setting of a generator (``genvision.sampling.generate`` keywords);
    ``img/s`` counts generation alone, not the feature extraction. Returns (fid, setting) pairs."""
    from genvision.metrics.samples import sample_metrics
    from genvision.sampling import generate

    scored = []
    for sampling in settings:
        spent = {"s": 0.0}

        def sampler(k: int, seed: int, s=sampling, spent=spent) -> torch.Tensor:
            t = time.perf_counter()
            images = generate(model, k, seed=seed, batch_size=batch, **s)
            spent["s"] += time.perf_counter() - t
            return images

        t0 = time.perf_counter()
        metrics = sample_metrics(sampler, extractor, reference, n=n, batch_size=batch, seed=0, progress=False)
        wall = time.perf_counter() - t0
        desc = " ".join(f"{k}={v}" for k, v in sampling.items()) or "default"
        quality = {k: metrics[k] for k in keys if k in metrics}
        if save:
            record(capability, f"{label} {desc}", recipe=recipe, wall_s=wall,
                   throughput={"train min": train_info["minutes"], "train steps": train_info["steps"],
                               "sampling s": spent["s"], "img/s": n / spent["s"]},
                   quality=quality, notes=f"{n} samples vs the MNIST test split; {extractor.describe()}")
        print(f"{label} {desc}", {k: round(v, 4) for k, v in quality.items()},
              f"{n / spent['s']:.0f} img/s, {wall:.0f} s", flush=True)
        scored.append((metrics["fid"], sampling))
    return scored


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.0f}"
    return str(value)


def render_table(results: list[dict]) -> str:
    metric_keys: list[str] = []
    for r in results:
        for k in [*r["throughput"], *r["quality"]]:
            if k not in metric_keys:
                metric_keys.append(k)
    header = ["name", "recipe", *metric_keys, "wall s", "date"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        values = {**r["throughput"], **r["quality"]}
        cells = [r["name"], r["recipe"], *[_fmt(values.get(k, "")) for k in metric_keys], _fmt(r["wall_s"]), r["date"]]
        lines.append("| " + " | ".join(cells) + " |")
    commands = sorted({(r["command"], r["machine"]) for r in results})
    lines.append("")
    for command, mach in commands:
        lines.append(f"- `{command}` on {mach}")
    return "\n".join(lines)


def render_docs() -> Path:
    groups: dict[str, list[dict]] = {}
    for path in sorted(RESULTS.glob("*/*.json")):
        if path.parent.name == "runs":  # training runs and their evaluations, not results
            continue
        result = json.loads(path.read_text())
        if not isinstance(result, dict) or "capability" not in result:  # raw data beside the results (rd-points)
            continue
        groups.setdefault(result["capability"], []).append(result)
    block = [BEGIN, ""]
    for capability, results in groups.items():
        block += [f"### {capability}", "", render_table(results), ""]
    block.append(END)
    text = DOC.read_text() if DOC.is_file() else "# Benchmarks\n\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + "\n".join(block) + tail
    else:
        text = text.rstrip() + "\n\n## Recorded results\n\n" + "\n".join(block) + "\n"
    DOC.write_text(text)
    return DOC


if __name__ == "__main__":
    print(render_docs())
