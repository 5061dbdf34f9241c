"""Standard FID protocol check on real photos: the Inception behind `genvision evaluate --features inception`.

    python benchmarks/fid_protocol.py            # 291 sr-train photos + their 128 px tiles (~10-15 min, 2 idle cores)
    python benchmarks/fid_protocol.py --limit 8 --splits 2 --no-record        # a smoke run (~1-2 min)
    python benchmarks/fid_protocol.py --fid-weights pt_inception-2015-12-05-6726825d.pth   # + pytorch-fid parity

Features come from genvision.workflows.extractors.pretrained_inception_extractor (the extractor
`--features inception` uses: the `inception-fid` backbone, needs `genvision weights get inception-fid`).
Two sets from ../shared/data/sr-train (T91 + BSD200, the classic 291 SR photos, offline):

- ``photos``: each photo's centre square at its own resolution (pytorch-fid's bilinear resize to 299);
- ``tiles``: every non-overlapping 128x128 tile of every photo (more rows: ~1,400 vs 2048 dims).

Per set: (1) FID of the set against itself, once from one stream and once from a shuffled re-stream in
other batch sizes (must be ~0: tests the statistics, not the network); (2) FID and KID between two
disjoint random halves, over ``--splits`` seeds: the small-sample baseline below which no FID
difference on this many images means anything; (3) the same for smaller disjoint subsets, to show
FID's 1/n bias (KID is unbiased); (4) photos only: T91 against BSD200 at equal n, a real change of
distribution, against the BSD200-vs-BSD200 baseline at the same n.

Parity with pytorch-fid's weights: the card records how far the converted module is from the pinned
TorchScript (max abs pool3 difference on random inputs); both it and pytorch-fid's
pt_inception-2015-12-05 are ports of TF's inception-2015-12-05. With pytorch-fid's file (--fid-weights,
or torch hub's cache) the script also compares the two directly: the folded conv+BN parameters, the pool3
features of the same photos, and the half-split FID each gives. Without it that comparison is reported
as not run (the file is not on the package index; it needs a download from GitHub).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import record, render_docs  # noqa: E402

from genvision.io import load_image_tensor  # noqa: E402
from genvision.metrics.distribution import FeatureStats, fid_from_stats, kernel_inception_distance  # noqa: E402
from genvision.metrics.inception import InceptionExtractor, fid_weights_cache_path  # noqa: E402
from genvision.tiling import image_files  # noqa: E402
from genvision.workflows.extractors import pretrained_inception_extractor  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "sr-train"
TILE = 128  # px: big enough to hold texture, small enough to give several per 481x321 photo
PARITY_IMAGES = 64  # photos fed to both networks for the pytorch-fid comparison


# --- images and features ---------------------------------------------------------------------


def photo_square(image: torch.Tensor) -> torch.Tensor:
    """(3, H, W) in [0, 1] -> the centred (3, S, S) square, S = min(H, W), in [-1, 1]."""
    h, w = image.shape[-2:]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return image[:, top:top + s, left:left + s] * 2 - 1


def tiles(image: torch.Tensor, size: int = TILE) -> torch.Tensor:
    """(3, H, W) in [0, 1] -> every non-overlapping (size x size) tile, (T, 3, size, size) in [-1, 1]."""
    h, w = image.shape[-2:]
    out = [image[:, y:y + size, x:x + size] for y in range(0, h - size + 1, size) for x in range(0, w - size + 1, size)]
    return torch.stack(out) * 2 - 1 if out else torch.empty(0, 3, size, size)


def features(extractor, files: list[Path], kind: str, batch: int = 25) -> tuple[torch.Tensor, list[str]]:
    """Feature rows (N, 2048) and, per row, the collection it came from (T91 or BSD200)."""
    rows, origin, pending, pending_origin = [], [], [], []
    start = time.perf_counter()

    def flush():
        if pending:
            rows.append(extractor(torch.cat(pending)).features)
            origin.extend(pending_origin)
            pending.clear()
            pending_origin.clear()

    for i, path in enumerate(files):
        image = load_image_tensor(path, channels=3)  # (3, H, W) in [0, 1]
        if kind == "photos":  # sizes differ: one photo per forward pass, resized by the extractor
            rows.append(extractor(photo_square(image)[None]).features)
            origin.append(path.parent.name)
        else:
            t = tiles(image)
            pending.append(t)
            pending_origin.extend([path.parent.name] * len(t))
            if sum(len(p) for p in pending) >= batch:
                flush()
        if (i + 1) % 25 == 0 or i + 1 == len(files):
            done = i + 1
            eta = (time.perf_counter() - start) / done * (len(files) - done)
            print(f"  {kind}: {done}/{len(files)} photos, ETA {eta:.0f} s", flush=True)
    flush()
    return torch.cat(rows), origin


def stats(rows: torch.Tensor, batch: int | None = None) -> FeatureStats:
    s = FeatureStats()
    for chunk in (rows.split(batch) if batch else (rows,)):
        s.update(chunk)
    return s


# --- the protocol ----------------------------------------------------------------------------


def split_fids(rows: torch.Tensor, n: int, splits: int) -> tuple[list[float], list[float]]:
    """FID and KID of two disjoint random subsets of ``n`` rows each, one pair per seed."""
    fids, kids = [], []
    for seed in range(splits):
        perm = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))
        a, b = rows[perm[:n]], rows[perm[n:2 * n]]
        fids.append(fid_from_stats(stats(a), stats(b)))
        kids.append(kernel_inception_distance(a, b, subsets=1, subset_size=n)[0])  # all rows: one exact MMD^2
    return fids, kids


def mean_std(values: list[float]) -> tuple[float, float]:
    t = torch.tensor(values, dtype=torch.float64)
    return float(t.mean()), float(t.std(unbiased=False)) if len(values) > 1 else 0.0


def protocol(name: str, rows: torch.Tensor, origin: list[str], splits: int) -> dict:
    n = len(rows)
    shuffled = rows[torch.randperm(n, generator=torch.Generator().manual_seed(123))]
    out = {f"{name} rows": n,
           f"{name} FID self": fid_from_stats(stats(rows), stats(rows)),
           f"{name} FID self reordered": fid_from_stats(stats(rows, 50), stats(shuffled, 7))}
    half = n // 2
    sizes = sorted({half, *[m for m in (half // 4, half // 2) if m >= 10]})
    for m in sizes:
        fids, kids = split_fids(rows, m, splits)
        fm, fs = mean_std(fids)
        tag = f"halves n={m}" if m == half else f"n={m}"
        out[f"{name} FID {tag}"] = fm
        out[f"{name} FID {tag} std"] = fs
        out[f"{name} KID {tag}"] = mean_std(kids)[0]
        print(f"  {name}: disjoint subsets of {m}: FID {fm:.2f} +- {fs:.2f}, KID {out[f'{name} KID {tag}']:.5f}")
    groups = {g: rows[[i for i, o in enumerate(origin) if o == g]] for g in ("T91", "BSD200")}
    if name == "photos" and all(len(g) >= 20 for g in groups.values()):
        m = min(len(groups["T91"]), len(groups["BSD200"]) // 2)
        cross, same = [], []
        for seed in range(splits):
            perm = torch.randperm(len(groups["BSD200"]), generator=torch.Generator().manual_seed(seed))
            bsd_a, bsd_b = groups["BSD200"][perm[:m]], groups["BSD200"][perm[m:2 * m]]
            t91 = groups["T91"][torch.randperm(len(groups["T91"]), generator=torch.Generator().manual_seed(seed))[:m]]
            cross.append(fid_from_stats(stats(t91), stats(bsd_a)))
            same.append(fid_from_stats(stats(bsd_b), stats(bsd_a)))
        out[f"photos FID T91 vs BSD200 (n={m})"], out[f"photos FID BSD200 vs BSD200 (n={m})"] = \
            mean_std(cross)[0], mean_std(same)[0]
        print(f"  T91 vs BSD200 at n={m}: FID {mean_std(cross)[0]:.2f}; "
              f"BSD200 vs BSD200 at n={m}: {mean_std(same)[0]:.2f}")
    return out


# --- parity with pytorch-fid's weights -----------------------------------------------------------


def folded(net) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Each BasicConv2d's conv and (eval-mode) batch norm folded into one weight and bias: the function
    the layer computes, whatever way a port split it into gamma/beta/mean/var (the TF graph has no gamma)."""
    out = {}
    for name, module in net.named_modules():
        if hasattr(module, "conv") and hasattr(module, "bn"):
            bn = module.bn
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (C,)
            out[name] = (module.conv.weight * scale[:, None, None, None], bn.bias - bn.running_mean * scale)
    return out


def parity(port: InceptionExtractor, weights: Path, rows_port: torch.Tensor, files: list[Path], splits: int) -> dict:
    """The port against pytorch-fid's file: parameters, features of the same photos, half-split FID."""
    reference = InceptionExtractor(weights)
    ours, theirs = folded(port.model), folded(reference.model)
    weight_diff = max(float((ours[k][0] - theirs[k][0]).abs().max()) for k in ours)
    bias_diff = max(float((ours[k][1] - theirs[k][1]).abs().max()) for k in ours)
    photos = [photo_square(load_image_tensor(p, channels=3))[None] for p in files[:PARITY_IMAGES]]
    a = torch.cat([port(x).features for x in photos])  # (M, 2048)
    b = torch.cat([reference(x).features for x in photos])
    fid_theirs = mean_std(split_fids(torch.cat([reference(photo_square(load_image_tensor(p, channels=3))[None])
                                                .features for p in files]), len(files) // 2, splits)[0])[0]
    fid_ours = mean_std(split_fids(rows_port, len(files) // 2, splits)[0])[0]
    return {"pytorch-fid weights": weights.name,
            "max abs folded conv weight diff": weight_diff, "max abs folded bias diff": bias_diff,
            "max abs pool3 diff": float((a - b).abs().max()),
            "rel pool3 diff": float((a - b).norm() / b.norm()),
            "FID port vs pytorch-fid, same photos": fid_from_stats(stats(a), stats(b)),
            "photos FID halves, pytorch-fid weights": fid_theirs, "photos FID halves, port": fid_ours}


# --- main --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="folder of photos (default ../shared/data/sr-train)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N photos (a smoke run)")
    parser.add_argument("--sets", default="photos,tiles", help="comma-separated: photos, tiles")
    parser.add_argument("--splits", type=int, default=5, help="random disjoint splits per subset size")
    parser.add_argument("--fid-weights", type=Path, default=None,
                        help="pytorch-fid's pt_inception-2015-12-05-6726825d.pth (default: torch hub's cache, "
                             "if it is there)")
    parser.add_argument("--no-record", action="store_true", help="print only; write no result file")
    args = parser.parse_args()
    files = image_files(args.data)[:args.limit]
    if len(files) < 4:
        sys.exit(f"need at least 4 photos under {args.data}, found {len(files)}")
    start = time.perf_counter()
    extractor = pretrained_inception_extractor()
    card_note = extractor.note or "weights: pytorch-fid's file"
    print(f"{len(files)} photos from {args.data}; {extractor.describe()}")
    quality: dict = {}
    photo_rows = None
    extract_s, extracted = 0.0, 0
    for kind in [s.strip() for s in args.sets.split(",") if s.strip()]:
        t0 = time.perf_counter()
        rows, origin = features(extractor, files, kind)
        extract_s, extracted = extract_s + time.perf_counter() - t0, extracted + len(rows)
        photo_rows = rows if kind == "photos" else photo_rows
        quality.update(protocol(kind, rows, origin, args.splits))
    weights = args.fid_weights or (fid_weights_cache_path() if fid_weights_cache_path().is_file() else None)
    if weights is not None and photo_rows is not None:
        quality.update(parity(extractor, weights, photo_rows, files, args.splits))
    else:
        quality["pytorch-fid parity"] = "not run (no pytorch-fid file here; see notes)"
    for key, value in quality.items():
        print(f"  {key}: {value:.6g}" if isinstance(value, float) else f"  {key}: {value}")
    wall = time.perf_counter() - start
    notes = (f"{card_note}. Self-FID ~0 checks the statistics; the disjoint-halves FID is the floor for "
             "differences on this many images (FID is biased upward ~1/n: compare only at equal n; KID is "
             "unbiased). Both the port and pytorch-fid's pt_inception-2015-12-05 derive from TF's "
             "inception-2015-12-05; genvision feeds pytorch-fid's preprocessing (bilinear 299, 2x-1) to either.")
    if args.no_record:
        print(f"(not recorded) {wall:.1f} s")
        return
    path = record("fid-protocol", f"inception-fid on sr-train ({len(files)} photos)",
                  recipe="genvision evaluate --features inception's extractor; photos: centre squares; tiles: "
                         f"{TILE}px non-overlapping; {args.splits} random disjoint splits",
                  wall_s=wall, throughput={"img/s": round(extracted / extract_s, 2)}, quality=quality, notes=notes)
    print(f"recorded {path}; {render_docs()}")


if __name__ == "__main__":
    main()
