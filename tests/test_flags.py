"""Every numeric CLI flag has a type and a range: a bad value is one usage line naming the flag,
a good one goes on to the command's own checks; never an "unexpected" error or a traceback."""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genvision.cli import main
from genvision.cli_params import MAX_COUNT, SEED_MAX

MISSING = "/nonexistent/genvision-model"

# (command, flag, kind, low, high, low excluded): the declared ranges.
FLAGS = [
    ("generate", "-n", int, 1, MAX_COUNT, False),
    ("generate", "--seed", int, 0, SEED_MAX, False),
    ("generate", "--class", int, 0, 100_000, False),
    ("generate", "--nrow", int, 1, 100_000, False),
    ("generate", "--batch-size", int, 1, 10_000, False),
    ("generate", "--steps", int, 1, 10_000, False),
    ("generate", "--cfg", float, 0.0, 100.0, False),
    ("generate", "--temperature", float, 0.0, 100.0, True),
    ("interpolate", "--frames", int, 2, 1000, False),
    ("interpolate", "--class", int, 0, 100_000, False),
    ("evaluate", "-n", int, 0, MAX_COUNT, False),
    ("evaluate", "--batch-size", int, 1, 10_000, False),
    ("evaluate", "--seed", int, 0, SEED_MAX, False),
    ("evaluate", "--class", int, 0, 100_000, False),
    ("evaluate", "--scale", int, 2, 4, False),
    ("evaluate", "--sigma", float, 0.0, 255.0, True),
    ("upscale", "--scale", int, 2, 4, False),
    ("upscale", "--tile", int, 0, 1 << 20, False),
    ("upscale", "--overlap", int, 0, 1 << 19, False),
    ("upscale", "--batch", int, 1, 256, False),
    ("denoise", "--sigma", float, 0.0, 255.0, True),
    ("denoise", "--tile", int, 0, 1 << 20, False),
    ("denoise", "--overlap", int, 0, 1 << 19, False),
    ("denoise", "--batch", int, 1, 256, False),
    ("traverse", "--range", float, 0.0, 1000.0, True),
    ("traverse", "--steps", int, 2, 256, False),
    ("decode", "--nrow", int, 1, 100_000, False),
    ("likelihood", "-k", int, 1, 100_000, False),
    ("likelihood", "--limit", int, 1, 10**9, False),
    ("likelihood", "--seed", int, 0, SEED_MAX, False),
    ("classify", "--top-k", int, 1, 100_000, False),
    ("explain", "--class", int, 0, 100_000, False),
    ("demo", "--minutes", float, 0.0, 1440.0, True),
]


def base_argv(command: str, tmp: str) -> list[str]:
    """Arguments that make the command fail on its model or input file once the flags parse."""
    return {
        "generate": ["generate", "--model", MISSING, "-o", f"{tmp}/g.png"],
        "interpolate": ["interpolate", "--model", MISSING, "-o", f"{tmp}/i.png"],
        "evaluate": ["evaluate", "--model", MISSING, "-o", f"{tmp}/e.json"],
        "upscale": ["upscale", f"{tmp}/missing.png", "-o", f"{tmp}/u.png", "--model", "bicubic"],
        "denoise": ["denoise", f"{tmp}/missing.png", "-o", f"{tmp}/n.png", "--model", "nlmeans"],
        "traverse": ["traverse", "--model", MISSING, "--image", f"{tmp}/missing.png", "-o", f"{tmp}/t.png"],
        "decode": ["decode", "--model", MISSING, f"{tmp}/missing.npy", "-o", f"{tmp}/d.png"],
        "likelihood": ["likelihood", "--model", MISSING],
        "classify": ["classify", "--model", MISSING, f"{tmp}/missing.png"],
        "explain": ["explain", "--model", MISSING, f"{tmp}/missing.png", "-o", f"{tmp}/x.png"],
        "demo": ["demo", "--out", f"{tmp}/demo"],
    }[command]


def in_range(kind, low, high, low_open, text: str) -> bool:
    try:
        value = float(text) if kind is float else _as_int(text)
    except ValueError:
        return False
    if kind is float and not math.isfinite(value):
        return False
    return (value > low if low_open else value >= low) and value <= high


def _as_int(text: str) -> int:
    """Whole numbers, also written 1e8 or 1_000 (exactly: no rounding through a float)."""
    text = text.strip().replace("_", "")
    try:
        return int(text)
    except ValueError:
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise ValueError(text) from None
        if not number.is_finite() or number != number.to_integral_value() or number.adjusted() > 40:
            raise ValueError(text)
        return int(number)


def check(capsys, tmp_path, command, flag, kind, low, high, low_open, text):
    argv = base_argv(command, str(tmp_path)) + [flag, text]
    if command == "upscale" and flag != "--scale":
        argv += ["--scale", "2"]
    good = in_range(kind, low, high, low_open, text)
    if command == "demo" and good:
        return  # a good value would really train; the demo's own run is tested elsewhere
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in re.split(r"[\r\n]", err) if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "unexpected" not in err and "Traceback" not in err, err
    if good:
        assert code == 1, (argv, err)  # parsed; the missing model or file is what fails
    else:
        assert code == 2 and f"'{flag}'" in err, (argv, err)  # a usage error naming the flag


def edge_values(kind, low, high) -> list[str]:
    values = ["nan", "inf", "-inf", "abc", "", str(low - 1), str(high + 1), str(2**64), str(-(2**64)), str(low),
              str(high)]
    if kind is int:
        values += ["1.5", "1e400", "2e0"]
    return values


@pytest.mark.parametrize("command, flag, kind, low, high, low_open", FLAGS, ids=[f"{c} {f}" for c, f, *_ in FLAGS])
def test_edge_values(capsys, tmp_path, command, flag, kind, low, high, low_open):
    for text in edge_values(kind, low, high):
        check(capsys, tmp_path, command, flag, kind, low, high, low_open, text)


_VALUES = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["nan", "NaN", "inf", "-0", "0x10", "1e8", "1_000", " 5", "5 ", "--1", "١٢"]),
    st.text(max_size=8),
)


# capsys is read (and so emptied) in every example; the profile still decides how many examples run
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(spec=st.sampled_from(FLAGS), text=_VALUES)
def test_any_value_of_any_flag(capsys, tmp_path_factory, spec, text):
    check(capsys, tmp_path_factory.getbasetemp(), *spec, text)


def test_decode_refuses_arrays_that_are_not_numbers(tmp_path, capsys):
    from genvision.checkpoints import save_pretrained
    from genvision.registry import create_model

    save_pretrained(create_model("vae", {"arch": "mlp", "hidden": 16, "latent_dim": 4}), tmp_path / "vae")
    cases = {
        "strings.npy": lambda p: np.save(p, np.array(["a", "bc"])),
        "objects.npy": lambda p: np.save(p, np.array([{"x": 1}, None], dtype=object), allow_pickle=True),
        "records.npy": lambda p: np.save(p, np.zeros(2, dtype=[("a", "f4"), ("b", "i4")])),
        "bools.npy": lambda p: np.save(p, np.ones((2, 4), bool)),
        "empty.npy": lambda p: np.save(p, np.zeros((0, 4), np.float32)),
        "complex.npy": lambda p: np.save(p, np.ones((2, 4), np.complex64)),
        "archive.npz": lambda p: np.savez(p, z=np.ones((2, 4), np.float32)),
        "garbage.npy": lambda p: p.write_bytes(b"\x93NUMPY garbage"),
        "huge-tokens.npy": lambda p: np.save(p, np.full((1, 4), 2**64 - 1, np.uint64)),
        "wrong-width.npy": lambda p: np.save(p, np.ones((2, 3), np.float32)),
        "infinite.npy": lambda p: np.save(p, np.full((2, 4), np.inf, np.float32)),
    }
    for name, write in cases.items():
        write(tmp_path / name)
        code = main(["decode", "--model", str(tmp_path / "vae"), str(tmp_path / name), "-o", str(tmp_path / "d.png")])
        err = capsys.readouterr().err
        assert code == 1 and err.count("\n") == 1 and err.startswith("error: "), (name, err)
        assert "unexpected" not in err, (name, err)
        assert not (tmp_path / "d.png").exists()
    np.save(tmp_path / "many.npy", np.zeros((200_000, 4), np.float32))  # one grid of 200,000 digits: too big
    code = main(["decode", "--model", str(tmp_path / "vae"), str(tmp_path / "many.npy"), "-o", str(tmp_path / "d.png")])
    err = capsys.readouterr().err
    assert code == 1 and "over the limit of" in err and "decode fewer latents at a time" in err
    np.save(tmp_path / "ok.npy", np.zeros((3, 4), np.float64))
    assert main(["decode", "--model", str(tmp_path / "vae"), str(tmp_path / "ok.npy"), "-o", str(tmp_path / "d.png")]) == 0


def test_traverse_dims_are_checked_before_expanding(tmp_path):
    import time

    from genvision.apps.vae.pipeline import parse_dims
    from genvision.errors import ConfigError

    start = time.perf_counter()
    with pytest.raises(ConfigError, match=r"--dims must lie in 0\.\.5"):
        parse_dims("0-99999999999", 6)
    assert time.perf_counter() - start < 0.5
    assert parse_dims("1-3,5", 6) == [1, 2, 3, 5]
