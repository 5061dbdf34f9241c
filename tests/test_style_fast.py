"""Trained style networks (genvision.models.style, apps/style's ``style`` and ``adain`` families): each
network overfits a tiny set, AdaIN matches the style's statistics, the Johnson net takes any size, the
families save/load/resume exactly, and ``genvision stylize --model`` writes image + sidecar or refuses on
one line. Random seeded trunks stand in for VGG (``backbone=random``, ``encoder=random``); one test per
family uses the real VGG-19 where `genvision weights get vgg19` has put it. Images are 32-48 px."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from genvision import pretrained
from genvision.apps.style.arbitrary import StyleImages, style_loss
from genvision.apps.style.backbones import attach_encoder, random_trunk
from genvision.apps.style.fast import load_style_model, run
from genvision.apps.style.johnson import FastStyleObjective, FastStyleObjectiveConfig
from genvision.checkpoints import load_pretrained, save_pretrained
from genvision.cli import main
from genvision.errors import ConfigError
from genvision.models.style import (
    AdaINConfig,
    AdaINNet,
    JohnsonConfig,
    JohnsonNet,
    adain,
    mean_std,
)
from genvision.training.objective import DataInfo
from genvision.workflows.train import train

TINY_ADAIN = {"encoder": "random", "widths": (4, 6, 8, 8), "blocks": (1, 1, 1, 1)}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: a second OpenMP thread only adds barrier waits
    yield
    torch.set_num_threads(threads)


def smooth_image(h: int, w: int, seed: int) -> torch.Tensor:
    """(1, 3, h, w) in [0, 1]: blurred noise, structure at several scales like a photo."""
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.interpolate(torch.rand(1, 3, h // 4, w // 4, generator=g), size=(h, w), mode="bilinear")
    return (0.8 * x + 0.2 * torch.rand(1, 3, h, w, generator=g)).clamp(0, 1)


def _save(tensor: torch.Tensor, path) -> None:
    Image.fromarray((tensor[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(path)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("style-data")
    (root / "photos").mkdir()
    (root / "paintings").mkdir()
    for s in range(3):
        _save(smooth_image(40, 48, s), root / "photos" / f"p{s}.png")
        _save(smooth_image(48, 40, 10 + s), root / "paintings" / f"art{s}.png")
    return root


def _train_style(root, name, extra=()):
    return train("style", progress=False, overrides=[
        f"style={root / 'paintings' / 'art0.png'}", f"data.name=folder:{root / 'photos'}", f"train.out_dir={root}",
        f"train.name={name}", "data.patch_size=32", "batch_size=2", "tensorboard=false", "log_every=1",
        "objective.backbone=random", "model.width=4", "model.blocks=1", *extra])


def _train_adain(root, name, extra=()):
    return train("adain", progress=False, overrides=[
        f"style_data=folder:{root / 'paintings'}", f"data.name=folder:{root / 'photos'}", f"train.out_dir={root}",
        f"train.name={name}", "data.patch_size=32", "batch_size=2", "tensorboard=false", "log_every=1",
        "styles.resize=40", "model.encoder=random", "model.widths=[4,6,8,8]", "model.blocks=[1,1,1,1]", *extra])


# ----------------------------------------------------------------------------- the networks


@pytest.mark.parametrize("size", [(1, 1), (5, 7), (33, 17), (32, 32)])
def test_the_johnson_net_takes_any_size(size):
    torch.manual_seed(0)
    net = JohnsonNet(JohnsonConfig(width=4, blocks=1)).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 3, *size))
    assert out.shape == (2, 3, *size) and torch.isfinite(out).all()
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in net.modules())  # no checkerboards


def test_adain_gives_the_style_statistics_and_alpha_0_the_content():
    torch.manual_seed(0)
    content, style = torch.randn(2, 5, 6, 7) * 3 + 1, torch.randn(2, 5, 4, 4) * 0.5 - 2
    out = adain(content, style)
    for a, b in zip(mean_std(out), mean_std(style)):
        assert torch.allclose(a, b, atol=1e-4)
    model = AdaINNet(AdaINConfig(**TINY_ADAIN)).eval()
    c, s = smooth_image(32, 32, 1), smooth_image(24, 40, 2)
    fc, fs = model.encode(c)[-1], model.encode(s)[-1]
    full = model.target(c, [s], alpha=1.0)
    assert all(torch.allclose(a, b, atol=1e-3) for a, b in zip(mean_std(full), mean_std(fs)))
    assert torch.equal(model.target(c, [s], alpha=0.0), fc)
    # two styles at weights (1, 0) are the first style alone
    assert torch.allclose(model.target(c, [s, c], [1.0, 0.0]), full)


def test_the_encoder_is_not_in_the_saved_weights(tmp_path):
    model = AdaINNet(AdaINConfig(**TINY_ADAIN))
    assert all(key.startswith("decoder.") for key in model.state_dict())
    assert all(p is not None for p in model.decoder.parameters()) and not list(model.encoder.parameters())
    vgg = AdaINNet(AdaINConfig())
    with pytest.raises(ConfigError, match="genvision weights get vgg19"):
        vgg.encode(torch.rand(1, 3, 16, 16))  # the weights come from genvision.pretrained, attached on load


def test_the_johnson_net_overfits_a_tiny_set():
    torch.manual_seed(0)
    net = JohnsonNet(JohnsonConfig(width=8, blocks=1)).train()
    objective = FastStyleObjective(net, FastStyleObjectiveConfig(backbone="random"), DataInfo(3, 32, 0),
                                   style=smooth_image(48, 48, 5), total_steps=40, extractor=random_trunk(
                                       ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1")))
    content = torch.cat([smooth_image(32, 32, 1), smooth_image(32, 32, 2)])
    optimizer = torch.optim.Adam(net.parameters(), lr=5e-3)
    losses = []
    for _ in range(40):
        loss = objective.losses(net(content), content)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]


def test_the_adain_decoder_overfits_a_tiny_set():
    torch.manual_seed(0)
    model = AdaINNet(AdaINConfig(**TINY_ADAIN)).train()
    content, style = smooth_image(32, 32, 1), smooth_image(32, 32, 7)
    optimizer = torch.optim.Adam(model.decoder.parameters(), lr=5e-3)
    with torch.no_grad():
        target = adain(model.encode(content)[-1], (fs := model.encode(style))[-1])
    losses = []
    for _ in range(40):
        generated = model.encode(model.decode(target))
        loss = torch.nn.functional.mse_loss(generated[-1], target) + 10 * style_loss(generated, fs)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]


def _real_vgg19():
    if pretrained.cached("vgg19") is None:
        pytest.skip("the real VGG-19 weights are not in genvision's cache: run `genvision weights get vgg19`")


def test_real_vgg19_both_networks_lower_their_losses():
    _real_vgg19()
    torch.manual_seed(0)
    net = JohnsonNet(JohnsonConfig(width=8, blocks=1))
    objective = FastStyleObjective(net, FastStyleObjectiveConfig(), DataInfo(3, 32, 0),
                                   style=smooth_image(48, 48, 5), total_steps=10)
    content = smooth_image(32, 32, 1)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    first = last = None
    for _ in range(10):
        loss = objective.losses(net(content), content)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        first, last = first if first is not None else float(loss), float(loss)
    assert last < first
    model = AdaINNet(AdaINConfig())
    info = attach_encoder(model)
    assert info["variant"] == "caffe" and not model.state_dict().keys() - {k for k in model.state_dict()
                                                                          if k.startswith("decoder.")}
    with torch.no_grad():
        out = model(content, smooth_image(32, 32, 3), alpha=0.5)
    assert out.shape == content.shape and torch.isfinite(out).all()


# ----------------------------------------------------------------------------- the training families


def _straight_and_resumed(folders, prefix: str, common: list[str]):
    """A 4-step style run, and a 2-step one resumed to 4: (the straight run, both runs' final weights)."""
    from safetensors.torch import load_file

    straight = _train_style(folders, f"{prefix}-straight", [*common, "steps=4"])
    _train_style(folders, f"{prefix}-split", [*common, "steps=2"])
    resumed = train("style", resume=folders / f"{prefix}-split", overrides=["steps=4"], progress=False)
    a = load_file(str(straight.checkpoint / "model.safetensors"))
    b = load_file(str(resumed.checkpoint / "model.safetensors"))
    return straight, a, b


def test_the_style_family_saves_loads_and_resumes_exactly(folders):
    straight, a, b = _straight_and_resumed(folders, "j", ["sample_every=2", "ckpt_every=2"])
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows = [json.loads(line) for line in (straight.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {"loss", "content", "style"} <= set(rows[-1])
    saved = json.loads((straight.run_dir / "config.json").read_text())
    assert saved["style"].endswith("art0.png") and len(saved["style_sha256"]) == 64
    model = load_pretrained(straight.run_dir, kind="style")
    assert model.registry_name == "johnson" and model.config.width == 4


def test_one_network_learns_several_styles_and_resumes_exactly(folders):
    paintings = [str(folders / "paintings" / f"art{i}.png") for i in range(3)]
    common = [f"styles=[{','.join(paintings)}]", "style=null", "sample_every=2", "ckpt_every=2", "batch_size=2"]
    straight, a, b = _straight_and_resumed(folders, "m", common)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert a["down.0.1.weight"].shape == (3, 4)  # one scale per style and channel
    saved = json.loads((straight.run_dir / "config.json").read_text())
    assert len(saved["styles_sha256"]) == 3 and all(len(d) == 64 for d in saved["styles_sha256"])
    model = load_style_model(str(straight.run_dir))
    assert model.style_names == ("art0", "art1", "art2")
    content = smooth_image(24, 20, 5)
    with torch.no_grad():
        by_name = [model(content, name) for name in model.style_names]
        half = model(content, torch.tensor([0.5, 0.5, 0.0]))
    assert not torch.allclose(by_name[0], by_name[1])  # 4 steps of Adam moved the styles' norms apart
    # a mix blends the norms' scales and shifts (not the outputs): it differs from both ends
    assert not torch.allclose(half, by_name[0]) and not torch.allclose(half, by_name[1])
    with pytest.raises(ConfigError, match="unknown style 'nope'.*art0, art1, art2"):
        model(content, "nope")
    with pytest.raises(ConfigError, match="holds 3 styles"):
        model(content)


def test_style_ids_share_crops_evenly_and_depend_on_the_step_alone():
    model = JohnsonNet(JohnsonConfig(width=4, blocks=1, styles=3))
    objective = FastStyleObjective(model, FastStyleObjectiveConfig(backbone="random"), DataInfo(3, 32, 0),
                                   style=[smooth_image(40, 40, s) for s in range(3)], total_steps=10,
                                   extractor=None)
    assert objective.style_ids(0, 4).tolist() == [0, 1, 2, 0]
    assert objective.style_ids(1, 4).tolist() == [1, 2, 0, 1]
    counts = torch.bincount(torch.cat([objective.style_ids(t, 4) for t in range(3)]), minlength=3)
    assert counts.tolist() == [4, 4, 4]
    assert all(v.shape[0] == 3 for v in objective.style_targets.values())  # (S, C, C) per layer


def test_the_adain_family_holds_out_a_style_and_resumes_exactly(folders):
    from safetensors.torch import load_file

    # a constant lr: a cosine's length is train.steps, which the split run changes when it resumes
    common = ["sample_every=2", "ckpt_every=2", "hold_out=art2", "objective.schedule=constant"]
    straight = _train_adain(folders, "a-straight", [*common, "steps=4"])
    _train_adain(folders, "a-split", [*common, "steps=2"])
    resumed = train("adain", resume=folders / "a-split", overrides=["steps=4"], progress=False)
    a = load_file(str(straight.checkpoint / "model.safetensors"))
    b = load_file(str(resumed.checkpoint / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert all(k.startswith("decoder.") for k in a)  # the frozen encoder is not stored
    model = load_style_model(str(straight.run_dir))
    assert model.arbitrary and model.config.encoder == "random"
    held = StyleImages(f"folder:{folders / 'paintings'}", hold_out="art2", resize=40, crop=32, flip=True, jitter=0.1)
    assert held.held_out == ["art2.png"] and len(held.files) == 2
    with pytest.raises(ConfigError, match="hold_out nope"):
        StyleImages(f"folder:{folders / 'paintings'}", hold_out="nope", resize=40, crop=32, flip=True, jitter=0.1)


def test_train_flags_spell_the_recipe_keys(folders, capsys):
    common = [f"train.out_dir={folders}", "data.patch_size=32", "batch_size=2", "tensorboard=false", "steps=1",
              "sample_every=0", "--data", f"folder:{folders / 'photos'}"]
    assert main(["train", "style", "--style", str(folders / "paintings" / "art1.png"), "train.name=j-flags",
                 "objective.backbone=random", "model.width=4", "model.blocks=1", *common]) == 0
    assert json.loads((folders / "j-flags" / "config.json").read_text())["style"].endswith("art1.png")
    assert main(["train", "adain", "--style-data", f"folder:{folders / 'paintings'}", "--hold-out", "art1,art2",
                 "train.name=a-flags", "styles.resize=40", "model.encoder=random", "model.widths=[4,6,8,8]",
                 "model.blocks=[1,1,1,1]",
                 *common]) == 0
    saved = json.loads((folders / "a-flags" / "config.json").read_text())
    assert saved["style_data"] == f"folder:{folders / 'paintings'}" and saved["hold_out"] == "art1,art2"
    capsys.readouterr()
    assert main(["train", "adain", "--style", str(folders / "paintings" / "art1.png"), *common]) != 0
    err = capsys.readouterr().err.strip()
    assert "style" in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_recipe_errors_name_their_key(folders):
    from genvision.config import load_recipe
    from genvision.workflows.train import get_family

    from genvision.apps.style.johnson import read_style

    with pytest.raises(ConfigError, match="style=PAINTING"):  # the recipe parses; building the run refuses
        read_style(load_recipe(get_family("style").recipe_cls, None, []))
    for family, bad, key in (("style", "objective.backbone=resnet", "backbone"),
                             ("style", "objective.style_weight=0", "style_weight"),
                             ("adain", "model.encoder=vgg16", "encoder"),
                             ("adain", "style_data=/no/prefix", "style_data")):
        with pytest.raises(ConfigError, match=key):
            load_recipe(get_family(family).recipe_cls, None, [bad, "style=x.png"] if family == "style" else [bad])


# ----------------------------------------------------------------------------- the command


@pytest.fixture(scope="module")
def trained(folders):
    return (_train_style(folders, "j-cli", ["steps=1", "sample_every=0"]).run_dir,
            _train_adain(folders, "a-cli", ["steps=1", "sample_every=0"]).run_dir)


def _cli(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_stylize_with_trained_models_writes_image_and_sidecar(trained, folders, tmp_path, capsys):
    fast, arbitrary = trained
    content = tmp_path / "odd.png"
    _save(smooth_image(37, 45, 4), content)
    art = [str(folders / "paintings" / f"art{i}.png") for i in (0, 1)]
    for argv, method in ((["--model", str(fast)], "fast"),
                         (["--model", str(arbitrary), "--style", art[0], "--style", art[1], "--style-weights", "1,3",
                           "--alpha", "0.8"], "adain")):
        out = tmp_path / f"{method}.png"
        code, _, stderr = _cli(["stylize", str(content), *argv, "-o", str(out)], capsys)
        assert code == 0, stderr
        assert Image.open(out).size == (45, 37)  # any size, the content's by default
        sidecar = json.loads(out.with_name(out.name + ".json").read_text())
        assert sidecar["method"] == method and sidecar["model"]["arch"] in ("johnson", "adain")
    assert sidecar["style_weights"] == [0.25, 0.75] and sidecar["alpha"] == 0.8


@pytest.mark.parametrize("argv, message", [
    (["--model", "{fast}", "--style", "{art}"], "has its style in its weights"),
    (["--model", "{fast}", "--steps", "3"], "--steps is for --method optimize"),
    (["--model", "{adain}"], "needs at least one --style"),
    (["--model", "{adain}", "--method", "fast", "--style", "{art}"], "is a adain model, not --method fast"),
    (["--method", "adain", "--style", "{art}"], "needs --model"),
    (["--model", "{missing}"], "model not found"),
])
def test_stylize_refuses_on_one_line_and_writes_nothing(trained, folders, tmp_path, capsys, argv, message):
    fast, arbitrary = trained
    content = tmp_path / "c.png"
    _save(smooth_image(32, 32, 4), content)
    names = {"fast": fast, "adain": arbitrary, "art": folders / "paintings" / "art0.png", "missing": tmp_path / "no"}
    argv = [a.format(**names) for a in argv]
    target = tmp_path / "never.png"
    code, _, stderr = _cli(["stylize", str(content), *argv, "-o", str(target)], capsys)
    assert code != 0 and message in stderr and len(stderr.strip().splitlines()) == 1
    assert not target.exists() and not (tmp_path / "never.png.json").exists()


@pytest.fixture(scope="module")
def paintings_model(tmp_path_factory):
    """A tiny saved Johnson net of three named styles, their norms' scales and shifts drawn apart."""
    torch.manual_seed(0)
    model = JohnsonNet(JohnsonConfig(width=4, blocks=1, styles=3, style_names=("candy", "mosaic", "udnie")))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.ndim == 2:  # StyleNorm's (S, C) rows
                param.add_(torch.randn_like(param) * 0.5)
    directory = tmp_path_factory.mktemp("paintings") / "model"
    save_pretrained(model, directory)
    return directory


def test_stylize_chooses_and_mixes_the_styles_of_a_multi_style_net(paintings_model, tmp_path, capsys):
    content = tmp_path / "c.png"
    _save(smooth_image(33, 40, 4), content)
    outputs = {}
    for label, argv in (("candy", ["--style", "candy"]), ("udnie", ["--style", "udnie"]),
                        ("mix", ["--style", "candy", "--style", "udnie", "--style-weights", "1,3"])):
        out = tmp_path / f"{label}.png"
        code, _, stderr = _cli(["stylize", str(content), "--model", str(paintings_model), *argv, "-o", str(out)],
                               capsys)
        assert code == 0, stderr
        outputs[label] = np.asarray(Image.open(out), dtype=np.float32)
        sidecar = json.loads(out.with_name(out.name + ".json").read_text())
        assert sidecar["method"] == "fast" and sidecar["styles"] == []  # names are not files
    assert sidecar["style_names"] == ["candy", "udnie"] and sidecar["style_weights"] == [0.25, 0.75]
    assert outputs["candy"].shape == (33, 40, 3)
    assert np.abs(outputs["candy"] - outputs["udnie"]).mean() > 1  # different styles, different pixels
    # the mix blends the norms, so the image lies between neither end exactly
    assert np.abs(outputs["mix"] - outputs["udnie"]).mean() > 0.1 and np.abs(outputs["mix"] - outputs["candy"]).mean() > 0.1
    model = load_style_model(str(paintings_model))
    same = run(model, content, ["udnie"]).image
    assert torch.equal(same, run(model, content, ["udnie", "candy"], [1.0, 0.0]).image)


def test_a_multi_style_net_without_names_is_chosen_by_index(tmp_path, capsys):
    directory = tmp_path / "unnamed"
    save_pretrained(JohnsonNet(JohnsonConfig(width=4, blocks=1, styles=2)), directory)
    content = tmp_path / "c.png"
    _save(smooth_image(20, 24, 4), content)
    code, _, stderr = _cli(["stylize", str(content), "--model", str(directory), "--style", "1",
                            "-o", str(tmp_path / "out.png")], capsys)
    assert code == 0, stderr
    code, _, stderr = _cli(["stylize", str(content), "--model", str(directory), "-o", str(tmp_path / "x.png")],
                           capsys)
    assert code != 0 and "holds 2 styles: choose with --style NAME (0, 1)" in stderr


@pytest.mark.parametrize("argv, message", [
    ([], "holds 3 styles: choose with --style NAME (candy, mosaic, udnie)"),
    (["--style", "starry"], "--style starry is not one of"),
    (["--style", "candy", "--alpha", "0.5"], "--alpha is for adain models"),
    (["--style", "candy", "--style", "udnie", "--style-weights", "1"], "weights"),
])
def test_a_multi_style_net_refuses_bad_choices_on_one_line(paintings_model, tmp_path, capsys, argv, message):
    content = tmp_path / "c.png"
    _save(smooth_image(32, 32, 4), content)
    target = tmp_path / "never.png"
    code, _, stderr = _cli(["stylize", str(content), "--model", str(paintings_model), *argv, "-o", str(target)],
                           capsys)
    assert code != 0 and message in stderr and len(stderr.strip().splitlines()) == 1
    assert not target.exists()


def test_multi_style_recipes_refuse_ambiguous_style_lists(folders):
    from genvision.config import load_recipe
    from genvision.workflows.train import get_family

    recipe_cls = get_family("style").recipe_cls
    art = [str(folders / "paintings" / f"art{i}.png") for i in range(2)]
    for overrides, message in (([f"style={art[0]}", f"styles=[{art[0]},{art[1]}]"], "not both"),
                               ([f"styles=[{art[0]}]"], "for one, give style=PAINTING"),
                               ([f"styles=[{art[0]},{folders / 'photos' / 'art0.png'}]"], "share one")):
        with pytest.raises(ConfigError, match=message):
            load_recipe(recipe_cls, None, overrides)


def test_colour_preservation_keeps_the_content_chroma(trained):
    from genvision.apps.style.colour import rgb_to_ycbcr

    model = load_style_model(str(trained[0]))
    content = smooth_image(32, 32, 8)
    out = run(model, content, preserve_color=True).image[None]
    assert torch.allclose(rgb_to_ycbcr(out)[:, 1:], rgb_to_ycbcr(content)[:, 1:], atol=2e-3)
