"""Folder jobs split over processes (--shard I/N, or torchrun's rank) and resumed after a kill (--resume):
the shards write exactly the files one process writes, a resumed job redoes only what its manifest does
not record, and shard specifications that cannot work are one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from genvision.apps.sr.pipeline import upscale_path
from genvision.cli import main
from genvision.errors import ConfigError
from genvision.jobs import MANIFEST_DIR, Shard
from genvision.models.sr import bicubic_model
from genvision.outputs import OutputExistsError
from genvision.tiling import process_path


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and MANIFEST_DIR not in p.parts}


def test_shards_write_exactly_what_one_process_writes(photos, tmp_path):
    assert main(["upscale", str(photos), "-o", str(tmp_path / "one"), "--model", "bicubic", "--scale", "2"]) == 0
    for index in range(3):
        assert main(["upscale", str(photos), "-o", str(tmp_path / "three"), "--model", "bicubic", "--scale", "2",
                     "--shard", f"{index}/3"]) == 0
    single, sharded = _files(tmp_path / "one"), _files(tmp_path / "three")
    assert sorted(single) == sorted(sharded) and len(single) == 14  # 7 PNGs and their sidecars
    for name, data in single.items():
        if name.endswith(".png"):
            assert sharded[name] == data  # byte for byte
        else:  # the sidecars differ only in when and by which command line they were written
            one, three = json.loads(data), json.loads(sharded[name])
            for varying in ("created", "command"):
                one.pop(varying), three.pop(varying)
            assert one == three
    manifests = sorted((tmp_path / "three" / MANIFEST_DIR).iterdir())
    assert [m.name for m in manifests] == ["done-0-of-3.jsonl", "done-1-of-3.jsonl", "done-2-of-3.jsonl"]
    counts = [len(m.read_text().splitlines()) for m in manifests]
    assert counts == [3, 2, 2]  # round robin over the 7 files


def test_under_torchrun_the_rank_picks_the_shard(photos, tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    report = upscale_path(bicubic_model(2), photos, tmp_path / "all", progress=False, metadata={"model": "bicubic"})
    assert report.total == 7  # RANK and WORLD_SIZE alone (some schedulers set them): the whole job
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-1")  # torchrun started this process
    report = upscale_path(bicubic_model(2), photos, tmp_path / "out", progress=False, metadata={"model": "bicubic"})
    assert report.total == 3  # files 1, 3, 5 of 7


def test_a_killed_job_resumes_where_it_stopped_and_ends_like_an_uninterrupted_one(photos, tmp_path):
    out = tmp_path / "out"
    calls: list[str] = []
    kill_at = [4]

    def work(source: Path, output: Path, show: bool) -> Path:
        calls.append(source.name)
        if len(calls) in kill_at:
            raise KeyboardInterrupt  # the kill: three files are done and recorded
        output.parent.mkdir(parents=True, exist_ok=True)
        Image.open(source).save(output)
        output.with_name(output.name + ".json").write_text(json.dumps({"source": source.name}))
        return output

    with pytest.raises(KeyboardInterrupt):
        process_path(photos, out, work, progress=False, sidecar=True)
    with pytest.raises(OutputExistsError, match="already exists.*--overwrite"):
        process_path(photos, out, work, progress=False, sidecar=True)  # without --resume: refused, untouched
    with (out / MANIFEST_DIR / "done-0-of-1.jsonl").open("a") as manifest:
        manifest.write('{"output": "b/p')  # a line cut short by the kill
    calls.clear()
    kill_at.clear()
    report = process_path(photos, out, work, progress=False, sidecar=True, resume=True)
    assert report.total == 4 and len(calls) == 4  # only the four not recorded
    process_path(photos, tmp_path / "whole", work, progress=False, sidecar=True)
    assert _files(out) == _files(tmp_path / "whole")


def test_resume_redoes_a_recorded_file_that_is_gone(photos, tmp_path):
    out = tmp_path / "out"
    upscale_path(bicubic_model(2), photos, out, progress=False, metadata={"model": "bicubic"})
    (out / "a" / "p1.png").unlink()
    report = upscale_path(bicubic_model(2), photos, out, progress=False, metadata={"model": "bicubic"}, resume=True)
    assert [p.relative_to(out).as_posix() for p in report.written] == ["a/p1.png"]


@pytest.mark.parametrize("text, message", [
    ("3/3", "the index must be in 0..2"),
    ("0/0", "the index must be in 0..0"),
    ("1-2", "--shard takes I/N"),
    ("a/b", "--shard takes I/N"),
])
def test_impossible_shards_are_refused(text, message):
    with pytest.raises(ConfigError, match=message):
        Shard.parse(text)


def test_the_cli_refuses_a_bad_shard_in_one_line(photos, tmp_path, capsys):
    code = main(["upscale", str(photos), "-o", str(tmp_path / "out"), "--model", "bicubic", "--scale", "2",
                 "--shard", "2/2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "--shard 2/2" in err[0]
    assert not (tmp_path / "out").exists()


def test_edit_folders_shard_and_resume_too(photos, tmp_path):
    edit = ["--op", "flip=h", "--op", "rotate=90"]
    assert main(["edit", str(photos), "-o", str(tmp_path / "one"), *edit]) == 0
    assert main(["edit", str(photos), "-o", str(tmp_path / "two"), *edit, "--shard", "0/2"]) == 0
    (tmp_path / "two" / "a" / "p1.png").unlink()  # done by shard 0 (files 0, 2, 4, 6), then lost: --resume redoes it
    assert main(["edit", str(photos), "-o", str(tmp_path / "two"), *edit, "--shard", "1/2"]) == 0
    assert main(["edit", str(photos), "-o", str(tmp_path / "two"), *edit, "--resume"]) == 0
    pngs = {name: data for name, data in _files(tmp_path / "one").items() if name.endswith(".png")}
    assert pngs == {name: data for name, data in _files(tmp_path / "two").items() if name.endswith(".png")}
