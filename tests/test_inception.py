"""The FID Inception-v3 extractor: architecture vs pytorch-fid, preprocessing, weights discovery
and download, refusal of unsafe files. Offline: weights are a random-init network saved to tmp."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request

import pytest
import torch
import torch.nn.functional as F
from torchvision.models import inception as tv_inception

from genvision.errors import CheckpointError, ConfigError
from genvision.metrics import inception as inc
from genvision.metrics.inception import (
    FID_WEIGHTS_NAME,
    FIDInceptionA,
    FIDInceptionC,
    FIDInceptionE_1,
    FIDInceptionE_2,
    InceptionExtractor,
    fid_inception_v3,
    fid_preprocess,
    find_fid_weights,
    get_inception_extractor,
    load_fid_inception,
)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """A random-init FID Inception saved like pytorch-fid's file (torch.save of the state dict)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("fid") / FID_WEIGHTS_NAME
    torch.save(fid_inception_v3().state_dict(), path)
    return path


@pytest.fixture(scope="module")
def extractor(weights_file):
    return InceptionExtractor(weights_file)


@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return tmp_path / "hub"


@pytest.fixture
def offline(monkeypatch):
    def urlopen(*args, **kwargs):
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)


# --- architecture vs pytorch-fid ---------------------------------------------------------------


def test_state_dict_keys_match_pytorch_fid():
    sd = fid_inception_v3().state_dict()
    # pytorch-fid builds torchvision's Inception3(num_classes=1008, aux_logits=False) and swaps
    # blocks for subclasses that only change forward(): the key set and shapes are torchvision's.
    ref = tv_inception.Inception3(num_classes=1008, aux_logits=False, init_weights=False).state_dict()
    assert set(sd) == set(ref)
    assert all(sd[k].shape == ref[k].shape for k in sd)
    assert not any(k.startswith("AuxLogits") for k in sd)
    expected = {
        "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
        "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
        "Mixed_6e.branch7x7_1.conv.weight": (192, 768, 1, 1),
        "Mixed_7b.branch3x3dbl_3b.conv.weight": (384, 384, 3, 1),
        "Mixed_7c.branch_pool.conv.weight": (192, 2048, 1, 1),
        "Mixed_7c.branch_pool.bn.running_var": (192,),
        "fc.weight": (1008, 2048),
        "fc.bias": (1008,),
    }
    for key, shape in expected.items():
        assert tuple(sd[key].shape) == shape, key
    net = fid_inception_v3()
    assert [type(getattr(net, n)) for n in ("Mixed_5b", "Mixed_5c", "Mixed_5d")] == [FIDInceptionA] * 3
    assert [type(getattr(net, n)) for n in ("Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e")] == [FIDInceptionC] * 4
    assert type(net.Mixed_6a) is tv_inception.InceptionB and type(net.Mixed_7a) is tv_inception.InceptionD
    assert type(net.Mixed_7b) is FIDInceptionE_1 and type(net.Mixed_7c) is FIDInceptionE_2
    assert net.transform_input is False and net.AuxLogits is None


def _tf_avg(x):
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


def _max(x):
    return F.max_pool2d(x, 3, stride=1, padding=1)


@pytest.mark.parametrize("fid_block, stock_block, channels, pool, width", [
    (FIDInceptionA(192, pool_features=32), tv_inception.InceptionA(192, pool_features=32), 192, _tf_avg, 32),
    (FIDInceptionC(768, channels_7x7=128), tv_inception.InceptionC(768, channels_7x7=128), 768, _tf_avg, 192),
    (FIDInceptionE_1(1280), tv_inception.InceptionE(1280), 1280, _tf_avg, 192),
    (FIDInceptionE_2(2048), tv_inception.InceptionE(2048), 2048, _max, 192),
], ids=["A", "C", "E_1", "E_2"])
def test_patched_pool_branches(fid_block, stock_block, channels, pool, width):
    """The pool branch (the last ``width`` output channels) uses TF's pooling; the rest is torchvision's."""
    block, stock = fid_block.eval(), stock_block.eval()
    stock.load_state_dict(block.state_dict())
    torch.manual_seed(0)
    x = torch.rand(1, channels, 5, 5) * 3  # positive: counting the zero padding changes border averages
    with torch.no_grad():
        out, ref = block(x), stock(x)
        assert torch.allclose(out[:, -width:], block.branch_pool(pool(x)), atol=1e-5)
        assert torch.allclose(out[:, :-width], ref[:, :-width], atol=1e-5)
        assert not torch.allclose(out[:, -width:], ref[:, -width:], atol=1e-4)  # differs from torchvision


# --- preprocessing and the extractor -------------------------------------------------------------


def test_preprocess_matches_pytorch_fid():
    torch.manual_seed(0)
    images = torch.rand(2, 1, 28, 28) * 2 - 1
    x = fid_preprocess(images)
    assert x.shape == (2, 3, 299, 299)
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 0], x[:, 2])
    # pytorch-fid: input in [0, 1] -> bilinear 299 (align_corners=False) -> 2x - 1
    ref = 2 * F.interpolate((images + 1) / 2, size=(299, 299), mode="bilinear", align_corners=False) - 1
    assert torch.allclose(x[:, :1], ref, atol=1e-6)
    assert torch.allclose(fid_preprocess(torch.ones(1, 3, 32, 32)), torch.ones(1, 3, 299, 299))
    with pytest.raises(ValueError, match="channels"):
        fid_preprocess(torch.zeros(1, 4, 8, 8))
    with pytest.raises(ValueError, match="float"):
        fid_preprocess(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


def test_load_round_trip_strict(weights_file):
    net = load_fid_inception(weights_file)
    assert not net.training
    assert not any(p.requires_grad for p in net.parameters())
    saved = torch.load(weights_file, weights_only=True)
    assert torch.equal(net.Mixed_7c.branch_pool.conv.weight, saved["Mixed_7c.branch_pool.conv.weight"])
    assert torch.equal(net.fc.weight, saved["fc.weight"])


@pytest.mark.parametrize("shape", [(2, 1, 28, 28), (2, 3, 32, 32)])
def test_extractor_features_and_probs(extractor, shape):
    seen = []
    handle = extractor.model.Conv2d_1a_3x3.register_forward_pre_hook(lambda m, a: seen.append(a[0].shape))
    try:
        out = extractor(torch.rand(shape) * 2 - 1)
    finally:
        handle.remove()
    assert seen == [(2, 3, 299, 299)]
    assert out.features.shape == (2, 2048) and out.features.dtype == torch.float32
    assert torch.isfinite(out.features).all()
    assert out.probs.shape == (2, 1008)
    assert torch.allclose(out.probs.sum(1), torch.ones(2), atol=1e-5)


def test_extractor_identity_and_chunking(extractor, weights_file):
    assert extractor.name == "inception-v3-fid" and extractor.dim == 2048 and extractor.num_classes == 1008
    assert extractor.inception_comparable
    sha = hashlib.sha256(weights_file.read_bytes()).hexdigest()
    assert sha[:16] in extractor.key() and inc.PREPROCESS_TAG in extractor.key()
    assert not extractor.canonical_weights and "not the canonical" in extractor.describe()
    torch.manual_seed(1)
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    whole = extractor(images)
    extractor.batch_size = 1
    try:
        parts = extractor(images)  # two forward passes of one image
    finally:
        extractor.batch_size = 50
    assert torch.allclose(whole.features, parts.features, atol=1e-4)
    # probs: softmax of pool3 @ W (no bias), as the original Inception Score code
    logits = whole.features @ extractor.model.fc.weight.T
    assert torch.allclose(whole.probs, logits.softmax(1), atol=1e-5)


def test_safetensors_weights(tmp_path, weights_file):
    from safetensors.torch import save_file

    state = torch.load(weights_file, weights_only=True)
    path = tmp_path / "fid.safetensors"
    save_file(dict(state), str(path))
    net = load_fid_inception(path)
    assert torch.equal(net.fc.weight, state["fc.weight"])


# --- unsafe or wrong files -------------------------------------------------------------------


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_refused(tmp_path):
    marker = tmp_path / "MARKER"
    path = tmp_path / FID_WEIGHTS_NAME
    torch.save({"fc.weight": _Evil(marker)}, path)
    with pytest.raises(CheckpointError, match="refused") as info:
        load_fid_inception(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    with pytest.raises(CheckpointError, match="refused"):
        get_inception_extractor(path)
    assert not marker.exists()


def test_key_mismatch_refused(tmp_path, weights_file):
    state = torch.load(weights_file, weights_only=True)
    state["fc.extra"] = state.pop("fc.bias")
    path = tmp_path / "renamed.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as info:
        load_fid_inception(path)
    msg = str(info.value)
    assert msg == (f"{path}: not pytorch-fid's Inception weights: 1 missing key (e.g. fc.bias), "
                   "1 unexpected key (e.g. fc.extra)")


def test_wrong_state_dicts_refused(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"foo.weight": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match=r"\d+ missing keys .*1 unexpected key ") as info:
        load_fid_inception(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    torch.save({"fc.weight": torch.zeros(10, 2048)}, path)
    with pytest.raises(CheckpointError, match="size mismatch"):
        load_fid_inception(path)
    torch.save([torch.zeros(1)], path)
    with pytest.raises(CheckpointError, match="state dict of tensors"):
        load_fid_inception(path)
    path.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError):
        load_fid_inception(path)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="safetensors"):
        load_fid_inception(bad)


# --- finding and downloading the weights -------------------------------------------------------


def test_explicit_path(tmp_path, weights_file):
    assert find_fid_weights(weights_file) == weights_file
    with pytest.raises(ConfigError, match="no such file"):
        find_fid_weights(tmp_path / "missing.pth")
    with pytest.raises(ConfigError, match="directory"):
        find_fid_weights(tmp_path)


def test_hub_cache_discovery(hub_dir, offline):
    cached = hub_dir / "checkpoints" / FID_WEIGHTS_NAME
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert find_fid_weights() == cached


def test_torch_home_cache(tmp_path, monkeypatch, offline):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)  # no earlier set_dir() wins
    cached = tmp_path / "hub" / "checkpoints" / FID_WEIGHTS_NAME
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert find_fid_weights() == cached


@pytest.mark.parametrize("error", [urllib.error.URLError("no route"), TimeoutError("timed out"),
                                   ConnectionResetError("reset")])
def test_offline_missing_one_line(hub_dir, monkeypatch, error):
    def urlopen(*args, **kwargs):
        raise error

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    with pytest.raises(ConfigError) as info:
        get_inception_extractor()
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("Inception FID weights not found (looked for --fid-weights, ")
    assert str(hub_dir / "checkpoints" / FID_WEIGHTS_NAME) in msg
    assert "--fid-weights PATH" in msg and "--features domain" in msg and "offline?" in msg
    cache = hub_dir / "checkpoints"
    assert not cache.exists() or list(cache.iterdir()) == []  # no partial file left


def test_download_off_never_touches_network(hub_dir, monkeypatch):
    def urlopen(*args, **kwargs):
        raise AssertionError("download=False must not open a URL")

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    with pytest.raises(ConfigError, match="--fid-weights.*domain"):
        find_fid_weights(download=False)


def test_download_wrong_hash_rejected(hub_dir, monkeypatch):
    monkeypatch.setattr(inc, "_fetch", lambda url, out, timeout=None: out.write(b"not the inception weights"))
    with pytest.raises(CheckpointError, match="sha256") as info:
        find_fid_weights()
    assert "\n" not in str(info.value)
    assert list((hub_dir / "checkpoints").iterdir()) == []


def test_download_good_hash_saved(hub_dir, monkeypatch):
    payload = b"pretend these are the weights"
    monkeypatch.setattr(inc, "FID_WEIGHTS_SHA256_PREFIX", hashlib.sha256(payload).hexdigest()[:8])
    calls = []

    def fetch(url, out, timeout=None):
        calls.append(url)
        out.write(payload)

    monkeypatch.setattr(inc, "_fetch", fetch)
    path = find_fid_weights()
    assert calls == [inc.FID_WEIGHTS_URL]
    assert path == hub_dir / "checkpoints" / FID_WEIGHTS_NAME and path.read_bytes() == payload
    assert [p.name for p in path.parent.iterdir()] == [FID_WEIGHTS_NAME]  # temp file renamed away
    assert find_fid_weights() == path and len(calls) == 1  # cached now
