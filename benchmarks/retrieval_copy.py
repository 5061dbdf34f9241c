"""Copy detection on photos: find the original of an edited copy. Recall@1 and micro-AP per embedding.

Database: the photos under ../shared/data (sr-train, style-images, sr-benchmarks), 80 % of them
(a seeded split). Queries: every photo edited with genvision.ops in each of the ways of EDITS
(crop, rotate, colour jitter, JPEG re-encode, resize, and all of them at once). Edits of the other
20 % are distractor queries: their originals are not indexed, so any hit they get is a false
positive (the DISC21 setting). recall@1: matched queries whose first hit is their original; micro-AP:
the top-10 hits of every query pooled and ranked by score (genvision.apps.retrieval.metrics).

    OMP_NUM_THREADS=2 python benchmarks/retrieval_copy.py [--simclr runs/simclr-photos]
    python benchmarks/retrieval_copy.py --smoke       # 8 photos, 3 edits, phash
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import record
from retrieval_common import SHARED_DATA, cleanup, smoke_setup, usable

from genvision.apps.retrieval.embed import load_rgb
from genvision.apps.retrieval.metrics import micro_average_precision
from genvision.apps.retrieval.store import Index
from genvision.data.patches import list_image_files
from genvision.ops.chain import Chain

DEFAULT_SPECS = ["phash", "dhash", "phash:16", "efficientnet-lite0"]
PHOTO_FOLDERS = ["sr-train", "style-images", "sr-benchmarks"]
K = 10


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def _ops(texts: list[str]):
    chain = Chain.parse(texts)
    return lambda image: Image.fromarray(chain.apply_array(np.asarray(image)))  # uint8 (H, W, 3) in and out


EDITS = {
    "crop": _ops(["crop=center:0.7"]),
    "rotate": _ops(["rotate=8"]),
    "colour": _ops(["brightness=1.25", "saturation=0.6", "hue=12", "contrast=0.85"]),
    "jpeg": lambda image: _jpeg(image, 25),
    "resize": _ops(["resize=0.35"]),
    "all": lambda image: _jpeg(_ops(["crop=center:0.8", "rotate=5", "brightness=1.15", "resize=0.5"])(image), 40),
}


def _split(photos: list[Path], seed: int = 0) -> tuple[list[Path], list[Path]]:
    order = np.random.default_rng(seed).permutation(len(photos))
    cut = max(1, round(0.8 * len(photos)))
    return [photos[i] for i in sorted(order[:cut])], [photos[i] for i in sorted(order[cut:])]


def _queries(indexed: list[Path], held_out: list[Path], edits: dict):
    """Edited copies in memory: (images, edit names, the original's path or None for distractors)."""
    images, kinds, originals = [], [], []
    for path in indexed + held_out:
        photo = load_rgb(path)
        for name, edit in edits.items():
            images.append(edit(photo))
            kinds.append(name)
            originals.append(str(path.resolve()) if path in indexed else None)
    return images, kinds, originals


def evaluate(embedder, scratch: Path, indexed, queries, batch: int = 64) -> tuple[dict, dict]:
    images, kinds, originals = queries
    start = time.perf_counter()
    with Index.building(scratch / "copy.gvindex", embed=embedder, index_type="flat", overwrite=True) as index:
        index.add(indexed, progress=True)
    build_s = time.perf_counter() - start
    with Index.open(scratch / "copy.gvindex", embedder=embedder) as index:
        id_of = {name: item for item, name in index.names().items()}
        start = time.perf_counter()
        scores, ids = [], []
        for first in range(0, len(images), batch):
            s, i = index.search_vectors(index.embed_query(images[first:first + batch]), K)  # (b, K) each
            scores.append(s)
            ids.append(i)
        search_s = time.perf_counter() - start
    scores, ids = np.concatenate(scores), np.concatenate(ids)  # (Q, K)
    truth_ids = np.array([id_of[o] if o is not None else -1 for o in originals])  # (Q,)
    matched = truth_ids >= 0
    quality = {"recall_at_1": float((ids[matched, 0] == truth_ids[matched]).mean())}
    valid = ids >= 0
    query_of = np.repeat(np.arange(len(ids))[:, None], ids.shape[1], axis=1)  # (Q, K): each hit's query
    quality["micro_ap"] = micro_average_precision(query_of[valid], ids[valid], scores[valid],
                                                  {(q, int(t)) for q, t in enumerate(truth_ids) if t >= 0})
    for kind in dict.fromkeys(kinds):
        rows = matched & (np.array(kinds) == kind)
        quality[f"recall_at_1_{kind}"] = float((ids[rows, 0] == truth_ids[rows]).mean())
    throughput = {"index_images_per_s": len(indexed) / build_s, "queries_per_s": len(images) / search_s}
    return quality, throughput


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embed", action="append", help=f"an embedding spec (repeatable; default {DEFAULT_SPECS})")
    parser.add_argument("--simclr", action="append", default=[], help="a `genvision train simclr` run (simclr:PATH)")
    parser.add_argument("--model", action="append", default=[], help="a trained genvision model/run (model:PATH)")
    parser.add_argument("--photos", action="append", help="photo folders (default: ../shared/data/{sr-train, "
                        "style-images, sr-benchmarks})")
    parser.add_argument("--device", default=None)
    parser.add_argument("--smoke", action="store_true", help="8 photos, 3 edits, phash; results in a temporary folder")
    args = parser.parse_args()
    folders = [Path(p) for p in args.photos] if args.photos else [SHARED_DATA / f for f in PHOTO_FOLDERS]
    photos = sorted({p.resolve() for folder in folders for p in list_image_files(folder)})
    specs, edits = args.embed or DEFAULT_SPECS, EDITS
    if args.smoke:
        photos, specs = photos[:8], args.embed or ["phash"]
        edits = {name: EDITS[name] for name in ("crop", "jpeg", "resize")}
    specs += [f"simclr:{p}" for p in args.simclr] + [f"model:{p}" for p in args.model]
    indexed, held_out = _split(photos)
    scratch = smoke_setup(args.smoke)
    try:
        embedders, skipped = usable(specs, args.device)
        queries = _queries(indexed, held_out, edits)
        for embedder in embedders:
            start = time.perf_counter()
            quality, throughput = evaluate(embedder, scratch, indexed, queries)
            path = record("retrieval-copy", f"copy-detection-{embedder.spec.rsplit('/', 1)[-1]}",
                          recipe=f"{len(indexed)} photos indexed, {len(queries[0])} edited queries "
                                 f"({len(held_out) * len(edits)} distractors), edits {', '.join(edits)}, flat index",
                          wall_s=time.perf_counter() - start, throughput=throughput, quality=quality,
                          notes="; ".join([f"micro-AP over the top {K} hits of every query"] + skipped))
            print(embedder.spec, quality, "->", path)
            if args.smoke:
                print(path.read_text())
    finally:
        cleanup(scratch)


if __name__ == "__main__":
    main()
