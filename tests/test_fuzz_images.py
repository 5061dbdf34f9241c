"""Property-based tests of the one image loader (genvision.io): random bytes, damaged files of every
allowed format, header fields set to extreme values, every pixel mode, extreme shapes.

Every case must end in a correct result (right mode/shape/dtype/range) or an ImageLoadError whose
one-line message names the file: never another exception type, and never an allocation beyond
the stated bound (checked under an address-space limit in a child process). The Hypothesis
profile decides how hard these search ("fast" in make test, "long" in
benchmarks/reliability_fuzz_files.py).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from image_mutations import EXTREMES, FORMATS, MODES, SUFFIX, flip_bytes, set_header_field, valid_file
from PIL import Image

from genvision import io as gio
from genvision.errors import ImageLoadError

# Damaged TIFF/EXIF blocks make Pillow warn and go on without the EXIF data; the image still loads.
pytestmark = pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")

# The fuzz tests pass a pixel cap of 2**20 (instead of io.MAX_PIXELS, 89 M) so a damaged header that
# declares a big-but-allowed image costs milliseconds, not seconds; the code path is the same.
SMALL_PIXELS = 1 << 20
WORKING_MODES = ("RGB", "L", "RGBA", "LA")
CHANNELS = {"RGB": 3, "L": 1, "RGBA": 4, "LA": 2}
MAGIC = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"GIF87a", b"BM", b"II*\x00", b"MM\x00*",
         b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"P6\n", b"P5\n", b"PF\n"]
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _write(folder: Path, data: bytes, suffix: str) -> Path:
    path = folder / f"case{suffix}"
    path.write_bytes(data)
    return path


def _refusal_is_one_line_naming(exc: ImageLoadError, path: Path) -> None:
    message = str(exc)
    assert "\n" not in message and "\r" not in message, message
    assert path.name in message, message
    assert "out of memory" not in message, message  # nothing a fuzzed small file declares may exhaust memory


def check_all_loaders(path: Path, mode: str, channels: int, *, max_pixels: int | None = SMALL_PIXELS) -> str:
    """Call the three public loaders; each must return a correct result or raise ImageLoadError.
    Returns "loaded" or "refused" (the loaders agree on which)."""
    outcomes = []
    try:
        img = gio.load_image(path, mode, max_pixels=max_pixels)
        assert img.mode == mode and img.width >= 1 and img.height >= 1
        assert img.width * img.height <= (max_pixels or gio.MAX_PIXELS)
        outcomes.append("loaded")
    except ImageLoadError as exc:
        _refusal_is_one_line_naming(exc, path)
        outcomes.append("refused")
    try:
        t = gio.load_image_tensor(path, channels, max_pixels=max_pixels)
        assert t.dtype == torch.float32 and t.ndim == 3 and t.shape[0] == channels and min(t.shape[1:]) >= 1
        assert torch.isfinite(t).all() and float(t.min()) >= 0.0 and float(t.max()) <= 1.0
        outcomes.append("loaded")
    except ImageLoadError as exc:
        _refusal_is_one_line_naming(exc, path)
        outcomes.append("refused")
    try:
        arr = gio.to_uint8_array(path, mode, max_pixels=max_pixels)
        assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == CHANNELS[mode]
        outcomes.append("loaded")
    except ImageLoadError as exc:
        _refusal_is_one_line_naming(exc, path)
        outcomes.append("refused")
    assert len(set(outcomes)) == 1, outcomes  # the same file is good or bad for every loader
    return outcomes[0]


_SIDES = st.integers(1, 24)
_VALID = st.tuples(st.sampled_from(FORMATS), st.sampled_from(MODES), _SIDES, _SIDES, st.integers(0, 99))
_TARGETS = st.tuples(st.sampled_from(WORKING_MODES), st.sampled_from([1, 3, 4]))


@given(data=st.binary(max_size=4096), suffix=st.sampled_from(sorted(set(SUFFIX.values()))), target=_TARGETS)
def test_random_bytes(scratch, data, suffix, target):
    check_all_loaders(_write(scratch, data, suffix), *target)


@given(magic=st.sampled_from(MAGIC), tail=st.binary(max_size=2048), target=_TARGETS)
def test_random_bytes_behind_a_real_signature(scratch, magic, tail, target):
    check_all_loaders(_write(scratch, magic + tail, ".img"), *target)


@given(case=_VALID, target=_TARGETS)
def test_every_mode_in_every_format_loads_correctly(scratch, case, target):
    fmt, mode, width, height, seed = case
    data = valid_file(fmt, mode, width, height, seed)
    assume(data is not None)  # Pillow cannot store every mode in every format
    path = _write(scratch, data, SUFFIX[fmt])
    assert check_all_loaders(path, *target) == "loaded"
    working, channels = target
    assert gio.load_image(path, working).size == (width, height)
    assert tuple(gio.load_image_tensor(path, channels).shape) == (channels, height, width)
    if fmt in ("PNG", "TIFF", "BMP", "PPM") and mode in ("L", "RGB") and working == mode:
        original = np.asarray(Image.open(path).convert(mode))  # lossless formats: pixels come back exactly
        assert np.array_equal(gio.to_uint8_array(path, mode)[..., :CHANNELS[mode]].reshape(original.shape), original)
    if fmt in ("PNG", "TIFF") and mode == "I;16":
        source = np.asarray(Image.open(path)).astype(np.float64)
        grey = gio.load_image_tensor(path, 1)[0].double().numpy()
        assert np.abs(grey * 65535 - source).max() < 0.02  # 16-bit precision, not 8-bit levels


_MUTATION = st.one_of(
    st.tuples(st.just("flip"), st.integers(1, 16), st.integers(0, 2**32)),
    st.tuples(st.just("truncate"), st.floats(0.0, 1.0, exclude_max=True), st.just(0)),
    st.tuples(st.sampled_from(["width", "height", "depth", "mode"]), st.sampled_from(EXTREMES), st.just(0)),
)


@given(case=_VALID, mutation=_MUTATION, target=_TARGETS)
def test_damaged_files_load_correctly_or_are_refused(scratch, case, mutation, target):
    fmt, mode, width, height, seed = case
    data = valid_file(fmt, mode, width, height, seed)
    assume(data is not None)
    kind, a, b = mutation
    if kind == "flip":
        data = flip_bytes(data, random.Random(b), a)
    elif kind == "truncate":
        data = data[:int(a * len(data))]
    else:
        data = set_header_field(data, fmt, kind, a)
    check_all_loaders(_write(scratch, data, SUFFIX[fmt]), *target)


@given(fmt=st.sampled_from(["PNG", "GIF", "BMP", "JPEG", "TIFF", "PPM"]),
       width=st.sampled_from(EXTREMES[5:]), height=st.sampled_from(EXTREMES[5:]))
def test_headers_declaring_huge_images_are_refused_with_the_default_limit(scratch, fmt, width, height):
    """With io.MAX_PIXELS itself: a small file declaring more pixels than that is refused before decoding."""
    data = valid_file(fmt, "RGB" if fmt != "GIF" else "P", 8, 8)
    data = set_header_field(set_header_field(data, fmt, "width", width), fmt, "height", height)
    path = _write(scratch, data, SUFFIX[fmt])
    # What the header declares once written: GIF and JPEG keep 16 bits of a size (65536 wraps to 0).
    try:
        with Image.open(path) as declared:
            assume(declared.size[0] * declared.size[1] > gio.MAX_PIXELS)
    except Image.DecompressionBombError:
        pass  # Pillow's own header check: declared far above its limit
    except (OSError, SyntaxError, ValueError):
        pass  # Pillow cannot even read the header: the loader must refuse it all the same
    with pytest.raises(ImageLoadError) as info:
        gio.load_image_tensor(path, 3)
    _refusal_is_one_line_naming(info.value, path)


@pytest.mark.parametrize("width, height", [(1, 1), (1, 4096), (4096, 1), (1024, 1024), (1025, 1023)])
def test_extreme_shapes_and_the_pixel_cap_boundary(scratch, width, height):
    path = _write(scratch, valid_file("PNG", "L", width, height), ".png")
    if width * height <= SMALL_PIXELS:
        assert tuple(gio.load_image_tensor(path, 1, max_pixels=SMALL_PIXELS).shape) == (1, height, width)
    else:
        with pytest.raises(ImageLoadError, match=f"over the limit of {SMALL_PIXELS} pixels"):
            gio.load_image_tensor(path, 1, max_pixels=SMALL_PIXELS)
    assert gio.to_uint8_array(path, "L").shape == (height, width, 1)  # the default cap allows all of them


MEMORY_SCRIPT = textwrap.dedent("""
    import json, os, random, resource, sys, tempfile
    sys.path.insert(0, sys.argv[1])
    from image_mutations import SUFFIX, random_case, valid_file
    from genvision import io as gio
    from genvision.errors import ImageLoadError

    cases, headroom, max_pixels, seed = (int(v) for v in sys.argv[2:6])
    folder = tempfile.mkdtemp()
    warm = os.path.join(folder, "warm.png")
    for fmt in SUFFIX:  # import every decoder plugin before the limit
        open(warm, "wb").write(valid_file(fmt, "RGB", 4, 4) or b"")
        try:
            gio.load_image_tensor(warm, 3)
        except ImageLoadError:
            pass
    page = os.sysconf("SC_PAGE_SIZE")
    vm = int(open("/proc/self/statm").read().split()[0]) * page
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + headroom, resource.getrlimit(resource.RLIMIT_AS)[1]))
    rng = random.Random(seed)
    loaded = refused = 0
    bad = []
    for i in range(cases):
        fmt, what, data = random_case(rng)
        path = os.path.join(folder, "case" + SUFFIX[fmt])
        with open(path, "wb") as fh:
            fh.write(data)
        for call in (lambda: gio.load_image_tensor(path, 3, max_pixels=max_pixels),
                     lambda: gio.to_uint8_array(path, "RGBA", max_pixels=max_pixels)):
            try:
                call()
                loaded += 1
            except ImageLoadError as exc:
                refused += 1
                if "out of memory" in str(exc) or "\\n" in str(exc):
                    bad.append(f"{what}: {exc}")
            except BaseException as exc:  # MemoryError escaping, or any other type: both are failures
                bad.append(f"{what}: {type(exc).__name__}: {exc}")
    growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss0
    print(json.dumps({"cases": cases, "loaded": loaded, "refused": refused, "bad": bad[:20],
                      "bad_count": len(bad), "rss_growth": growth}))
""")


def run_memory_fuzz(cases: int, *, headroom: int = 256 * 2**20, max_pixels: int = SMALL_PIXELS, seed: int = 0,
                    timeout: float = 600) -> dict:
    """Run ``cases`` random damaged files through the loaders in a child process whose address
    space may grow by at most ``headroom`` bytes: an allocation beyond the bound fails there."""
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(REPO / "tests"), str(cases), str(headroom),
                             str(max_pixels), str(seed)], capture_output=True, text=True, timeout=timeout, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_memory_stays_within_the_bound():
    """A few hundred damaged files (thousands in the long profile) under a 256 MiB address-space
    allowance, with a 2**20-pixel cap: every load succeeds or is refused without running out of
    memory, and the peak RSS grows far less than the allowance."""
    cases = 300 if os.environ.get("HYPOTHESIS_PROFILE", "fast") == "fast" else 20_000
    report = run_memory_fuzz(cases)
    assert report["bad_count"] == 0, report["bad"]
    assert report["loaded"] > 0 and report["refused"] > 0  # both outcomes were exercised
    assert report["rss_growth"] < 128 * 2**20, report
