"""Writes nothing it shouldn't: the output guard, the naming rule, folder jobs, and every command that writes.

Every test that runs a command hashes the inputs (sha256) before and after and asserts they are
untouched; refusals are checked to leave the output side as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path, PurePath

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from genvision import io as gio
from genvision.cli import main
from genvision.errors import GenvisionError
from genvision.jobs import MANIFEST_DIR
from genvision.outputs import (
    JobReport,
    NumberedNames,
    OutputError,
    OutputExistsError,
    OutputGuard,
    output_names,
    plan_folder_job,
    run_job,
)


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tree_hashes(root: Path) -> dict[str, str]:
    """Every file under ``root`` (hidden ones too) -> its sha256."""
    return {p.relative_to(root).as_posix(): sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(err: str) -> str:
    lines = [line for line in re.split(r"[\r\n]", err) if line.startswith("error:")]  # \r: progress bars
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def rgb_png(path: Path, h: int = 8, w: int = 10, seed: int = 0, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path, format=fmt)
    return path


# ----------------------------------------------------------------------------- the naming rule


def test_colliding_names_get_their_source_suffix():
    names = output_names(["x.jpg", "x.png", "x.tif", "y.png", "sub/x.jpg", "Photo.JPEG"])
    assert [n.as_posix() for n in names] == ["x_jpg.png", "x_png.png", "x_tif.png", "y.png", "sub/x.png", "Photo.png"]


@pytest.mark.parametrize("inputs, first, second, target", [
    (["x.png", "X.PNG"], "x.png", "X.PNG", "X_PNG.png"),  # tagging cannot separate them: names ignore case
    (["x.jpg", "x.png", "x_jpg.png"], "x.jpg", "x_jpg.png", "x_jpg.png"),  # a tagged name meets a real one
    (["A/x.png", "a/x.png"], "A/x.png", "a/x.png", "a/x_png.png"),  # folders are compared ignoring case too
])
def test_collisions_that_remain_are_refused_naming_both_inputs(inputs, first, second, target):
    with pytest.raises(OutputError) as info:
        output_names(inputs)
    message = str(info.value)
    assert f"{first} and {second} would both be written to {target}" in message and "\n" not in message


_DIRS = st.sampled_from(["", "a/", "A/", "a/b/", "b/"])
_STEMS = st.sampled_from(["x", "X", "x_jpg", "x_png", "x_tif", "y", "photo", "x.tar"])
_SUFFIXES = st.sampled_from([".jpg", ".JPG", ".png", ".PNG", ".tif", ".jpeg", ".webp", ".bmp"])
_NAME_SETS = st.lists(st.tuples(_DIRS, _STEMS, _SUFFIXES).map(lambda t: f"{t[0]}{t[1]}{t[2]}"),
                      min_size=1, max_size=12, unique=True)


@given(names=_NAME_SETS, order=st.randoms(use_true_random=False))
def test_naming_rule_properties(names, order):
    """Unique outputs (ignoring case) in the input's folder, natural names kept where nothing collides,
    the same mapping for any input order; or a refusal naming two of the inputs."""
    try:
        outputs = output_names(names)
    except OutputError as exc:
        message = str(exc)
        assert sum(name in message for name in names) >= 2, message
        shuffled = list(names)
        order.shuffle(shuffled)
        with pytest.raises(OutputError):  # refused whatever the order
            output_names(shuffled)
        return
    keys = [o.as_posix().casefold() for o in outputs]
    assert len(set(keys)) == len(outputs)
    natural = [PurePath(n).with_suffix(".png") for n in names]
    for name, out, nat in zip(names, outputs, natural):
        assert out.suffix == ".png" and out.parent == PurePath(name).parent
        alone = sum(n.as_posix().casefold() == nat.as_posix().casefold() for n in natural) == 1
        assert out == nat if alone else out.name == f"{PurePath(name).stem}_{PurePath(name).suffix[1:]}.png"
    shuffled = list(names)
    order.shuffle(shuffled)
    assert dict(zip(shuffled, output_names(shuffled))) == dict(zip(names, outputs))


@given(names=_NAME_SETS, where=st.sampled_from(["sibling", "parent", "same", "inside", "nested-deeper"]),
       overwrite=st.booleans())
def test_folder_plan_never_maps_onto_an_input(names, where, overwrite):
    """On real files: an output folder equal to or inside the input folder is refused; otherwise no
    planned output is an input file, outputs are unique, and nothing is written by planning."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "in"
        for name in names:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(name.encode())
        sources = sorted(p for p in root.rglob("*") if p.is_file())
        out = {"sibling": Path(tmp) / "out", "parent": Path(tmp), "same": root, "inside": root / "a",
               "nested-deeper": root / "a" / "b" / "out"}[where]
        before = tree_hashes(Path(tmp))
        try:
            plan = plan_folder_job(sources, root, out, guard=OutputGuard(overwrite=overwrite))
        except OutputError as exc:
            message = str(exc)
            if where in ("same", "inside", "nested-deeper"):
                assert "input folder" in message
            else:
                assert "would both be written" in message or "already exists" in message, message
            assert tree_hashes(Path(tmp)) == before
            return
        assert where in ("sibling", "parent")
        resolved_inputs = {p.resolve() for p in sources}
        outputs = [p.output for p in plan]
        assert not any(o.resolve() in resolved_inputs for o in outputs)
        assert len({str(o).casefold() for o in outputs}) == len(outputs)
        assert tree_hashes(Path(tmp)) == before


def test_numbered_names_without_a_list():
    names = NumberedNames("7_", 100_000_000, ".png")
    assert len(names) == 100_000_000 and names[0] == "7_00000.png" and names[-1] == "7_99999999.png"
    assert "7_00042.png" in names and "7_42.png" not in names and "7_100000000.png" not in names
    assert "8_00001.png" not in names and names[3:5] == ["7_00003.png", "7_00004.png"]


def test_guard_refuses_inputs_links_folders_and_existing_files(tmp_path):
    src = rgb_png(tmp_path / "a.png")
    (tmp_path / "link.png").symlink_to(src)
    os.link(src, tmp_path / "hard.png")
    guard = OutputGuard(overwrite=True).add_inputs(src)
    for target in (src, tmp_path / "link.png", tmp_path / "hard.png", tmp_path / "." / "a.png"):
        with pytest.raises(OutputError, match="it is the input"):
            guard.claim(target)
    with pytest.raises(OutputError, match="is a folder"):
        guard.claim(tmp_path)
    (tmp_path / "old.png").write_bytes(b"old")
    with pytest.raises(OutputExistsError, match=r"old\.png already exists; pass --overwrite to replace it"):
        OutputGuard().claim(tmp_path / "old.png")
    with pytest.raises(OutputExistsError, match=r"new\.png\.json already exists"):
        (tmp_path / "new.png.json").write_text("{}")
        OutputGuard().claim(tmp_path / "new.png", sidecar=True)
    twice = OutputGuard()
    twice.claim(tmp_path / "c.png")
    with pytest.raises(OutputError, match="named twice"):
        twice.claim(tmp_path / "C.png")
    folder_guard = OutputGuard(overwrite=True).add_input_folder(tmp_path / "in")
    with pytest.raises(OutputError, match="inside the input folder"):
        folder_guard.claim(tmp_path / "in" / "deep" / "x.png")
    assert sha256(src) == sha256(tmp_path / "hard.png")


def test_claim_numbered_finds_existing_outputs_either_way(tmp_path):
    (tmp_path / "3_00002.png.json").write_text("{}")
    (tmp_path / "unrelated.png").write_bytes(b"x")
    for count in (5, 10**8):  # few names: each is checked; many: the folder listing is checked
        with pytest.raises(OutputExistsError, match=r"3_00002\.png\.json already exists"):
            OutputGuard().claim_numbered(tmp_path, NumberedNames("3_", count, ".png"), sidecar=True)
        OutputGuard().claim_numbered(tmp_path, NumberedNames("4_", count, ".png"), sidecar=True)
        OutputGuard(overwrite=True).claim_numbered(tmp_path, NumberedNames("3_", count, ".png"), sidecar=True)


def test_run_job_reports_failures_and_counts_truly(tmp_path, capsys):
    def work(name):
        if name.startswith("bad"):
            raise GenvisionError(f"{name}: corrupt")
        return tmp_path / name

    report = run_job(["a", "bad1", "b", "bad2"], work, total=4, progress=False)
    assert [p.name for p in report.written] == ["a", "b"] and len(report.failed) == 2
    assert report.summary("out") == "wrote 2 of 4 images to out; 2 failed"
    err = capsys.readouterr().err
    assert err.splitlines() == ["error: bad1: corrupt", "error: bad2: corrupt"]
    with pytest.raises(GenvisionError, match=r"bad1: corrupt \(--fail-fast: stopped after writing 1 of 4\)"):
        run_job(["a", "bad1", "b"], work, total=4, progress=False, fail_fast=True)
    with pytest.raises(GenvisionError, match="wrote 2 of 4 images to out; 2 failed"):
        report.raise_if_failed("out")
    assert JobReport(3, [tmp_path] * 3).summary("out") == "wrote 3 images to out"

    def buggy(name):
        raise KeyError(name)

    with pytest.raises(KeyError):  # a bug is not a bad file: it is not swallowed
        run_job(["a"], buggy, total=1, progress=False)


# ----------------------------------------------------------------------------- upscale folder jobs


@pytest.fixture
def photos(tmp_path) -> Path:
    """A folder whose names collide once their suffix becomes .png."""
    root = tmp_path / "in"
    rgb_png(root / "x.jpg", seed=1, fmt="JPEG")
    rgb_png(root / "x.png", seed=2)
    rgb_png(root / "x.tif", seed=3, fmt="TIFF")
    rgb_png(root / "y.png", seed=4)
    rgb_png(root / "sub" / "x.png", seed=5)
    return root


UPSCALE = ["--model", "bicubic", "--scale", "2"]


def test_upscale_folder_disambiguates_and_never_touches_inputs(photos, tmp_path, capsys):
    before = tree_hashes(photos)
    out = tmp_path / "out"
    code, stdout, err = run_cli(capsys, "upscale", photos, "-o", out, *UPSCALE)
    assert code == 0, err
    assert stdout.strip() == f"wrote 5 images to {out}"
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == ["sub/x.png", "x_jpg.png", "x_png.png", "x_tif.png", "y.png"]
    for name, source in (("x_png.png", "x.png"), ("x_tif.png", "x.tif"), ("y.png", "y.png")):
        got = np.asarray(Image.open(out / name))
        assert got.shape == (16, 20, 3)
        assert np.abs(got[::2, ::2].astype(int) - np.asarray(Image.open(photos / source)).astype(int)).mean() < 40
    assert json.loads((out / "x_jpg.png.json").read_text())["source"] == str(photos / "x.jpg")
    assert tree_hashes(photos) == before
    assert not [p for p in out.rglob(".*") if MANIFEST_DIR not in p.parts]  # no temporary files left (the manifest stays)

    outputs = tree_hashes(out)
    code, stdout, err = run_cli(capsys, "upscale", photos, "-o", out, *UPSCALE)
    line = one_line_error(err)
    assert code != 0
    assert f"{out / 'sub' / 'x.png'} already exists (and 4 more of the 5 outputs); pass --overwrite to replace them" in line
    assert tree_hashes(out) == outputs and tree_hashes(photos) == before

    code, stdout, err = run_cli(capsys, "upscale", photos, "-o", out, *UPSCALE, "--overwrite")
    assert code == 0 and stdout.strip() == f"wrote 5 images to {out}"
    assert tree_hashes(photos) == before


@pytest.mark.parametrize("where", ["same", "inside", "deeper"])
def test_upscale_output_folder_in_the_input_folder_is_refused(photos, where, capsys):
    before = tree_hashes(photos)
    out = {"same": photos, "inside": photos / "sub", "deeper": photos / "new" / "out"}[where]
    code, _, err = run_cli(capsys, "upscale", photos, "-o", out, *UPSCALE, "--overwrite")
    line = one_line_error(err)
    assert code != 0 and "input folder" in line and "choose an output folder outside it" in line
    assert tree_hashes(photos) == before and not (photos / "new").exists()


def test_upscale_never_replaces_its_input_file(photos, tmp_path, capsys):
    source = photos / "y.png"
    (tmp_path / "link.png").symlink_to(source)
    os.link(source, tmp_path / "hard.png")
    before = tree_hashes(photos)
    for target in (source, tmp_path / "link.png", tmp_path / "hard.png"):
        code, _, err = run_cli(capsys, "upscale", source, "-o", target, *UPSCALE, "--overwrite")
        assert code != 0 and "it is the input" in one_line_error(err)
    assert tree_hashes(photos) == before
    assert sha256(tmp_path / "hard.png") == before["y.png"]


def test_upscale_existing_file_needs_overwrite(photos, tmp_path, capsys):
    target = tmp_path / "big.png"
    target.write_bytes(b"precious")
    code, _, err = run_cli(capsys, "upscale", photos / "y.png", "-o", target, *UPSCALE)
    assert code != 0 and f"{target} already exists; pass --overwrite to replace it" in one_line_error(err)
    assert target.read_bytes() == b"precious"
    code, out, err = run_cli(capsys, "upscale", photos / "y.png", "-o", target, *UPSCALE, "--overwrite")
    assert code == 0 and Image.open(target).size == (20, 16)


@pytest.fixture
def mixed(tmp_path) -> Path:
    root = tmp_path / "mixed"
    rgb_png(root / "a.png", seed=1)
    (root / "b_random.png").write_bytes(os.urandom(300))
    good = (rgb_png(tmp_path / "c.png", h=40, w=40, seed=2)).read_bytes()
    (root / "c_truncated.png").write_bytes(good[:len(good) // 2])
    rgb_png(root / "d.png", seed=3)
    return root


def test_folder_job_reports_bad_files_and_goes_on(mixed, tmp_path, capsys):
    before = tree_hashes(mixed)
    out = tmp_path / "out"
    code, stdout, err = run_cli(capsys, "upscale", mixed, "-o", out, *UPSCALE)
    assert code != 0
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 3, err
    assert "b_random.png" in errors[0] and "c_truncated.png" in errors[1]
    assert errors[2] == f"error: wrote 2 of 4 images to {out}; 2 failed"
    assert sorted(p.name for p in out.glob("*.png")) == ["a.png", "d.png"]
    assert Image.open(out / "d.png").size == (20, 16)
    assert tree_hashes(mixed) == before and [p.name for p in out.glob(".*")] == [MANIFEST_DIR]


def test_fail_fast_stops_at_the_first_bad_file(mixed, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "upscale", mixed, "-o", out, *UPSCALE, "--fail-fast")
    line = one_line_error(err)
    assert code != 0 and "b_random.png" in line and "--fail-fast: stopped after writing 1 of 4" in line
    assert sorted(p.name for p in out.glob("*.png")) == ["a.png"]


def test_a_failed_write_leaves_no_partial_file_and_keeps_the_old_one(photos, tmp_path, capsys, monkeypatch):
    from genvision.apps.sr import pipeline as up

    target = tmp_path / "out.png"
    target.write_bytes(b"the previous output")
    original = up.PNGStreamWriter.write_rows
    calls = {"n": 0}

    def fail_on_second_chunk(self, rows):
        calls["n"] += 1
        if calls["n"] == 2:
            raise GenvisionError(f"{self.path}: cannot write (No space left on device)")
        original(self, rows)

    monkeypatch.setattr(up.PNGStreamWriter, "write_rows", fail_on_second_chunk)
    big = rgb_png(tmp_path / "big.png", h=300, w=40, seed=9)
    code, _, err = run_cli(capsys, "upscale", big, "-o", target, *UPSCALE, "--overwrite", "--tile", "32")
    assert code != 0 and "No space left on device" in one_line_error(err)
    assert target.read_bytes() == b"the previous output"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


# ----------------------------------------------------------------------------- every other writing command


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from genvision.checkpoints import save_pretrained
    from genvision.registry import create_model

    root = tmp_path_factory.mktemp("models")
    save_pretrained(create_model("dcgan", {"image_size": 28, "width": 8}), root / "gan")
    save_pretrained(create_model("vae", {"arch": "mlp", "hidden": 16, "latent_dim": 4}), root / "vae")
    save_pretrained(create_model("cnn", {"width": 8, "feature_dim": 16}), root / "cnn")
    return root


@pytest.fixture
def digits(tmp_path) -> list[Path]:
    rng = np.random.default_rng(0)
    return [gio.save_image(Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)), tmp_path / f"d{i}.png")
            for i in range(2)]


def _refused_then_overwritten(capsys, argv: list, output: Path, inputs: list[Path]) -> None:
    """Run once (writes), again (refused, output untouched), again with --overwrite (replaced);
    inputs never change."""
    before = {p: sha256(p) for p in inputs}
    code, _, err = run_cli(capsys, *argv)
    assert code == 0, err
    first = sha256(output)
    output.write_bytes(b"changed by the user")
    code, _, err = run_cli(capsys, *argv)
    assert code != 0 and f"{output} already exists; pass --overwrite to replace it" in one_line_error(err)
    assert output.read_bytes() == b"changed by the user"
    code, _, err = run_cli(capsys, *argv, "--overwrite")
    assert code == 0, err
    if output.suffix != ".json":  # evaluation JSONs carry a date; everything else is deterministic
        assert sha256(output) == first
    assert {p: sha256(p) for p in inputs} == before


def test_generate_grid_and_folder(models, tmp_path, capsys):
    gan = models / "gan"
    model_files = sorted(gan.iterdir())
    grid = tmp_path / "grid.png"
    _refused_then_overwritten(capsys, ["generate", "--model", gan, "-n", "6", "-o", grid], grid, model_files)
    folder = tmp_path / "samples"
    code, out, err = run_cli(capsys, "generate", "--model", gan, "-n", "5", "--seed", "3", "-o", f"{folder}/")
    assert code == 0 and out.strip() == f"wrote 5 images to {folder}/"
    assert sorted(p.name for p in folder.glob("*.png")) == [f"3_{i:05d}.png" for i in range(5)]
    code, _, err = run_cli(capsys, "generate", "--model", gan, "-n", "9", "--seed", "3", "-o", f"{folder}/")
    assert code != 0 and "3_00000.png already exists (and 9 more)" in one_line_error(err)  # images + sidecars
    code, _, err = run_cli(capsys, "generate", "--model", gan, "-n", "2", "--seed", "4", "-o", f"{folder}/")
    assert code == 0, err  # other names in the folder do not matter
    code, _, err = run_cli(capsys, "generate", "--model", gan, "-o", gan / "model.safetensors", "--overwrite")
    assert code != 0 and "it is the input" in one_line_error(err)
    assert {p: sha256(p) for p in model_files} == {p: sha256(p) for p in sorted(gan.iterdir())}


def test_interpolate_reconstruct_traverse_encode_decode(models, digits, tmp_path, capsys):
    vae = models / "vae"
    inputs = [*digits, *sorted(vae.iterdir())]
    walk = tmp_path / "walk.gif"
    _refused_then_overwritten(capsys, ["interpolate", "--model", vae, "--images", *digits, "--frames", "3", "-o", walk],
                              walk, inputs)
    recon = tmp_path / "recon.png"
    _refused_then_overwritten(capsys, ["reconstruct", "--model", vae, *digits, "-o", recon], recon, inputs)
    trav = tmp_path / "trav.png"
    _refused_then_overwritten(capsys, ["traverse", "--model", vae, "--image", digits[0], "--dims", "0-1", "--steps", "3",
                                       "-o", trav], trav, inputs)
    latents = tmp_path / "z.npy"
    _refused_then_overwritten(capsys, ["encode", "--model", vae, *digits, "-o", latents], latents, inputs)
    decoded = tmp_path / "decoded.png"
    _refused_then_overwritten(capsys, ["decode", "--model", vae, latents, "-o", decoded], decoded, [*inputs, latents])
    # an output that is one of the inputs is refused even with --overwrite
    for argv in (["reconstruct", "--model", vae, *digits, "-o", digits[1]],
                 ["interpolate", "--model", vae, "--images", *digits, "-o", digits[0]],
                 ["traverse", "--model", vae, "--image", digits[0], "-o", digits[0]],
                 ["decode", "--model", vae, latents, "-o", latents],
                 ["encode", "--model", vae, *digits, "-o", vae / "model.safetensors.npy"]):
        before = {p: sha256(p) for p in [*inputs, latents]}
        code, _, err = run_cli(capsys, *argv, "--overwrite")
        if argv[0] == "encode":  # a new name next to the model is fine: it is not one of its files
            assert code == 0, err
            (vae / "model.safetensors.npy").unlink()
            continue
        assert code != 0 and "it is the input" in one_line_error(err), argv
        assert {p: sha256(p) for p in [*inputs, latents]} == before


def test_explain_and_evaluate_and_likelihood_outputs(models, digits, tmp_path, capsys):
    cnn = models / "cnn"
    explained = tmp_path / "explain.png"
    _refused_then_overwritten(capsys, ["explain", "--model", cnn, digits[0], "-o", explained], explained,
                              [digits[0], *sorted(cnn.iterdir())])
    code, _, err = run_cli(capsys, "explain", "--model", cnn, digits[0], "-o", digits[0], "--overwrite")
    assert code != 0 and "it is the input" in one_line_error(err)

    hr = tmp_path / "hr"
    for i in range(2):
        rgb_png(hr / f"h{i}.png", h=24, w=24, seed=i)
    before = tree_hashes(hr)
    report = tmp_path / "sr.json"
    _refused_then_overwritten(capsys, ["evaluate", "--model", "bicubic", "--scale", "2", "--data", f"folder:{hr}",
                                       "-o", report], report, [])
    assert json.loads(report.read_text())["metrics"]["images"] == 2 and (tmp_path / "sr-crops.png").is_file()
    code, _, err = run_cli(capsys, "evaluate", "--model", "bicubic", "--scale", "2", "--data", f"folder:{hr}",
                           "-o", hr / "eval.json")
    assert code != 0 and "inside the input folder" in one_line_error(err)
    (tmp_path / "sr2-crops.png").write_bytes(b"keep")  # the crops PNG beside the JSON counts as an output too
    code, _, err = run_cli(capsys, "evaluate", "--model", "bicubic", "--scale", "2", "--data", f"folder:{hr}",
                           "-o", tmp_path / "sr2.json")
    assert code != 0 and "sr2-crops.png already exists" in one_line_error(err)
    assert not (tmp_path / "sr2.json").exists() and tree_hashes(hr) == before

    existing = tmp_path / "likelihood.json"
    existing.write_text("mine")
    code, _, err = run_cli(capsys, "likelihood", "--model", models / "vae", "-o", existing)
    assert code != 0 and "already exists" in one_line_error(err) and existing.read_text() == "mine"
    code, _, err = run_cli(capsys, "evaluate", "--model", cnn, "--data", "mnist-mini", "-o", cnn / "config.json",
                           "--overwrite")
    assert code != 0 and "it is the input" in one_line_error(err)
