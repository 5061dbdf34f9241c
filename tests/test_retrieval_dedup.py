"""``genvision dedup``: planted exact copies and edited copies are grouped, distinct images are not,
the JSON report and the sheets are written, and every bad input is one ``error:`` line."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from genvision.apps.retrieval.dedup import UnionFind, find_duplicates, near_pairs
from genvision.apps.retrieval.embed import Embedder, make_embedder
from genvision.cli import main
from genvision.errors import ConfigError


def _pattern(seed: int, size: int = 96) -> Image.Image:
    """A smooth random picture: 6x6 random colours upsampled, so perceptual hashes of two seeds differ."""
    cells = np.random.default_rng(seed).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    return Image.fromarray(cells).resize((size, size), Image.BICUBIC)


@pytest.fixture()
def photos(tmp_path):
    """img0 + a byte copy in a sub-folder; img1 + a smaller copy + a re-encoded darker JPEG; 4 distinct
    images; one broken file."""
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for seed in range(6):
        _pattern(seed).save(folder / f"img{seed}.png")
    shutil.copyfile(folder / "img0.png", folder / "sub" / "img0_copy.png")
    _pattern(1).resize((64, 64), Image.LANCZOS).save(folder / "img1_small.png")
    darker = Image.fromarray((np.asarray(_pattern(1).resize((80, 80))) * 0.9).astype(np.uint8))
    darker.save(folder / "sub" / "img1_edit.jpg", quality=70)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(40)))
    return folder


def _names(group) -> set[str]:
    return {m.path.rsplit("/", 1)[-1] for m in group.members}


def test_exact_and_edited_copies_are_grouped_and_distinct_images_are_not(photos):
    files = sorted(p for p in photos.rglob("*") if p.is_file())
    report = find_duplicates(files, make_embedder("phash"))
    assert report.images == 10 and report.distinct == 9
    assert [_names(g) for g in report.groups] == [{"img1.png", "img1_small.png", "img1_edit.jpg"},
                                                  {"img0.png", "img0_copy.png"}]
    near, exact = report.groups
    assert near.keep.endswith("/img1.png") and not near.exact  # the most pixels
    # Hamming bits to the kept file: the LANCZOS-shrunk copy hashes identically, the darker JPEG 2 bits off
    assert [(m.path.rsplit("/", 1)[-1], m.distance, m.exact_copy) for m in near.members] == [
        ("img1.png", 0, False), ("img1_edit.jpg", 2, False), ("img1_small.png", 0, False)]
    assert exact.exact and [m.exact_copy for m in exact.members] == [False, True]
    assert exact.members[0].sha256 == exact.members[1].sha256
    assert [p.rsplit("/", 1)[-1] for p, _ in report.unreadable] == ["broken.png"]
    assert report.duplicates == 3


def test_a_zero_threshold_keeps_exact_copies_and_identical_hashes_only(photos):
    report = find_duplicates(sorted(p for p in photos.rglob("*") if p.is_file()), make_embedder("phash"), threshold=0)
    assert [_names(g) for g in report.groups] == [{"img0.png", "img0_copy.png"}, {"img1.png", "img1_small.png"}]


def test_range_search_includes_the_threshold_and_union_find_chains_pairs():
    # bits: a = 0, b differs from a in 3 bits, c differs from b in 3 more (6 from a), d far away
    rows = np.zeros((4, 8), np.uint8)
    rows[1, 0], rows[2, 0], rows[3] = 0b111, 0b111111, 0xFF
    i, j, distance = near_pairs(rows, binary=True, dim=64, threshold=3)
    assert sorted(zip(i.tolist(), j.tolist(), distance.tolist())) == [(0, 1, 3.0), (1, 2, 3.0)]
    sets = UnionFind(4)
    for a, b in zip(i.tolist(), j.tolist()):
        sets.union(a, b)
    assert sets.find(0) == sets.find(2) != sets.find(3)
    # float: cosine distances 1 - 0.8 = 0.2 and 1 - 0.6 = 0.4 from the first vector
    unit = np.array([[1, 0, 0], [0.8, 0.6, 0], [0.6, 0.8, 0]], np.float32)
    i, j, distance = near_pairs(unit, binary=False, dim=3, threshold=0.2)
    assert list(zip(i.tolist(), j.tolist())) == [(0, 1), (1, 2)] and distance == pytest.approx([0.2, 0.04], abs=1e-6)


class _MeanColour(Embedder):
    """A float embedder without weights: centred 2x2 colour layout, L2-normalised."""

    spec, dim, binary = "test:mean-colour", 12, False

    def embed(self, images):
        rows = np.stack([np.asarray(im.convert("RGB").resize((2, 2), Image.BOX), np.float32).reshape(-1)
                         for im in images])  # (N, 2 * 2 * 3)
        rows -= rows.mean(axis=1, keepdims=True)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_float_embeddings_group_by_cosine_distance(photos):
    files = sorted(photos.glob("img*.png"))
    report = find_duplicates(files, _MeanColour(), threshold=0.01)
    assert report.metric == "cosine distance"
    assert [_names(g) for g in report.groups] == [{"img1.png", "img1_small.png"}]
    with pytest.raises(ConfigError, match="cosine distance 0..2"):
        find_duplicates(files, _MeanColour(), threshold=3)


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_writes_the_json_report_and_both_sheets(photos, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, err = run_cli(capsys, "dedup", photos, "-o", out / "groups.json", "--sheet", out / "dups.html")
    assert code == 0, err
    assert "2 groups (1 exact, 1 near) among 10 images; 3 duplicates" in stdout
    assert err.count("warning: skipped") == 1 and "broken.png" in err
    report = json.loads((out / "groups.json").read_text())
    assert report["embed"] == "phash" and report["threshold"] == 10 and report["duplicates"] == 3
    assert [len(g["members"]) for g in report["groups"]] == [3, 2]
    assert report["unreadable"][0]["path"].endswith("broken.png")
    page = (out / "dups.html").read_text()
    assert page.count("<figure>") == 5 and page.count("data:image/jpeg;base64,") == 5 and "img1_edit.jpg" in page
    code, _, err = run_cli(capsys, "dedup", photos, "--sheet", out / "dups.png", "--threshold", "0")
    assert code == 0, err
    sheet = Image.open(out / "dups.png")
    assert sheet.width >= 2 * 128 and sheet.height >= 2 * 128  # two rows (bytes, identical hashes) of two
    assert not list(photos.rglob("*.json")) and not list(photos.rglob("dups*"))  # the input folder is untouched


@pytest.mark.parametrize("args, message", [
    (["{missing}"], "no such folder"),
    (["{empty}"], "no image files found"),
    (["{photos}", "--threshold", "65"], "whole bits 0..64"),
    (["{photos}", "--threshold", "2.5"], "whole bits 0..64"),
    (["{photos}", "--threshold", "nan"], "--threshold"),
    (["{photos}", "--embed", "nohash"], "unknown embedding 'nohash'"),
    (["{photos}", "--sheet", "{tmp}/dups.gif"], "write a .html page or a .png sheet"),
    (["{photos}", "-o", "{photos}/groups.json"], "inside the input folder"),
    (["{photos}", "-o", "{tmp}/exists.json"], "already exists"),
    (["{unreadable}"], "none of the 1 image files could be read"),
])
def test_cli_errors_are_one_line(photos, tmp_path, capsys, args, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "unreadable").mkdir()
    (tmp_path / "unreadable" / "bad.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "exists.json").write_text("{}")
    names = {"missing": tmp_path / "missing", "empty": tmp_path / "empty", "photos": photos, "tmp": tmp_path,
             "unreadable": tmp_path / "unreadable"}
    code, _, err = run_cli(capsys, "dedup", *[a.format(**names) for a in args])
    assert code in (1, 2) and err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err and "Traceback" not in err and "unexpected" not in err, err
    assert (tmp_path / "exists.json").read_text() == "{}" and not (photos / "groups.json").exists()
