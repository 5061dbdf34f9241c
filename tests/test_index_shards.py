"""Sharded ``genvision index build`` and ``genvision stylize`` over a folder: shards (by hand or under torchrun)
end in the index, or the files, one process makes; a killed shard resumes without redoing its finished batches;
what cannot work is one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from genvision.apps.retrieval import ingest
from genvision.apps.retrieval.shards import parts_dir
from genvision.apps.retrieval.store import Index
from genvision.cli import main
from genvision.jobs import MANIFEST_DIR


def _contents(index_path: Path) -> dict[str, tuple[bytes, dict]]:
    with Index.open(index_path) as index:
        ids, vectors = index._db.vectors()
        names, metadata = index._db.names(), index._db.metadata()
        return {names[i]: (vector.tobytes(), metadata[i]) for i, vector in zip(ids.tolist(), vectors)}


def _build(capsys, photos: Path, out: Path, *extra: str) -> tuple[int, str, str]:
    code = main(["index", "build", str(photos), "-o", str(out), "--embed", "phash", *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_two_shards_and_a_merge_build_the_index_one_process_builds(photos, tmp_path, capsys):
    assert _build(capsys, photos, tmp_path / "one.gvindex")[0] == 0
    out = tmp_path / "two.gvindex"
    code, stdout, _ = _build(capsys, photos, out, "--shard", "0/2")
    assert code == 0 and "shard 0/2: 4 embedded" in stdout and "merge them: genvision index build" in stdout
    assert not out.exists() and (parts_dir(out) / "part-0-of-2" / "done").is_file()
    assert _build(capsys, photos, out, "--shard", "1/2")[0] == 0
    code, stdout, _ = _build(capsys, photos, out)
    assert code == 0 and "added 7" in stdout and "(0 embedded, 7 from the cache)" in stdout
    assert _contents(out) == _contents(tmp_path / "one.gvindex")
    assert not parts_dir(out).exists()  # the parts are gone once the index is committed
    # A file of the user's in OUT.shards/ is never deleted with the parts.
    assert _build(capsys, photos, out, "--shard", "0/2", "--overwrite")[0] == 0
    (parts_dir(out) / "notes.txt").write_text("mine")
    assert _build(capsys, photos, out, "--overwrite")[0] == 0
    assert sorted(p.name for p in parts_dir(out).iterdir()) == ["notes.txt"]


def test_a_killed_shard_resumes_without_redoing_its_committed_batches(photos, tmp_path, capsys, monkeypatch):
    out = tmp_path / "idx.gvindex"
    monkeypatch.setattr(ingest, "EMBED_BATCH", 2)  # shard 0 has 4 files: two batches of two
    batches: list[int] = []
    make_embedder = ingest.make_embedder

    def dying_embedder(*args, **kwargs):
        embedder = make_embedder(*args, **kwargs)
        embed = embedder.embed

        def counted(images):
            batches.append(len(images))
            if len(batches) == 2:
                raise KeyboardInterrupt  # the kill, after the first batch was committed to the part
            return embed(images)

        embedder.embed = counted
        return embedder

    monkeypatch.setattr(ingest, "make_embedder", dying_embedder)
    code, _, err = _build(capsys, photos, out, "--shard", "0/2")
    assert code == 130 and "error:" in err
    assert not (parts_dir(out) / "part-0-of-2" / "done").exists()
    code, _, err = _build(capsys, photos, out, "--shard", "0/2")
    assert code == 1 and "exists from an earlier run: pass --resume" in err and len(err.strip().splitlines()) == 1
    code, stdout, _ = _build(capsys, photos, out, "--shard", "0/2", "--resume")
    assert code == 0 and "shard 0/2: 2 embedded, 2 already in" in stdout
    assert batches == [2, 2, 2]  # the first batch was embedded once, not again


def test_under_torchrun_each_rank_embeds_its_share_and_rank_0_merges(photos, tmp_path):
    out = tmp_path / "tr.gvindex"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m",
               "genvision", "index", "build", str(photos), "-o", str(out), "--embed", "phash"]
    done = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "shard 0/2" in done.stdout and "shard 1/2" in done.stdout and done.stdout.count("added 7") == 1
    assert main(["index", "build", str(photos), "-o", str(tmp_path / "one.gvindex"), "--embed", "phash"]) == 0
    assert _contents(out) == _contents(tmp_path / "one.gvindex")


def test_shards_that_cannot_work_are_refused_in_one_line(photos, tmp_path, capsys):
    code, _, err = _build(capsys, photos, tmp_path / "x.gvindex", "--resume")
    assert code != 0 and "--resume continues a shard's part" in err
    code = main(["index", "build", "mnist-mini:test", "-o", str(tmp_path / "m.gvindex"), "--embed", "phash",
                 "--limit", "4", "--shard", "0/2"])
    err = capsys.readouterr().err
    assert code != 0 and "--shard splits a folder's files" in err and len(err.strip().splitlines()) == 1


# --- genvision stylize over a folder ----------------------------------------------------------------------

def _pngs(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.png"))
            if MANIFEST_DIR not in p.parts}


def test_stylize_a_folder_in_shards_and_resume_like_one_process(photos, tmp_path, capsys):
    style = ["--model", "zoo:johnson-starry-night"]
    assert main(["stylize", str(photos), "-o", str(tmp_path / "one"), *style]) == 0
    assert main(["stylize", str(photos), "-o", str(tmp_path / "two"), *style, "--shard", "0/2"]) == 0
    (tmp_path / "two" / "a" / "p1.png").unlink()  # done by shard 0, then lost: --resume redoes it
    assert main(["stylize", str(photos), "-o", str(tmp_path / "two"), *style, "--shard", "1/2"]) == 0
    assert main(["stylize", str(photos), "-o", str(tmp_path / "two"), *style, "--resume"]) == 0
    one = _pngs(tmp_path / "one")
    assert len(one) == 7 and one == _pngs(tmp_path / "two")
    assert (tmp_path / "one" / "a" / "p1.png.json").is_file()  # each result keeps its sidecar
    capsys.readouterr()
    adain_style = tmp_path / "one" / "a" / "p1.png"  # a style image where an output would go: never written over
    before = adain_style.read_bytes()
    code = main(["stylize", str(photos), "-o", str(tmp_path / "one"), "--model", "zoo:adain-vgg19", "--style",
                 str(adain_style), "--overwrite"])
    err = capsys.readouterr().err
    assert code != 0 and "p1.png" in err and adain_style.read_bytes() == before
    code = main(["stylize", str(photos), "-o", str(tmp_path / "three"), *style, "--mask", str(photos / "a" / "p1.png")])
    err = capsys.readouterr().err
    assert code != 0 and "--mask is drawn for one content image" in err
