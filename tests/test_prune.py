"""genvision prune: structured channel pruning into a smaller model of the same arch. Channels whose
filters are zero are the ones removed and the output does not change; every coupled layer (residual
trunk, pixel-shuffle upsampler, block interiors) shrinks together; the result saves, loads, exports and
fine-tunes like any model; errors are one line."""

from __future__ import annotations

import json

import pytest
import torch

from genvision.checkpoints import load_pretrained, save_pretrained
from genvision.cli import main
from genvision.errors import ConfigError
from genvision.export.pruning import kept_channels, prune_channels
from genvision.registry import create_model
from genvision.workflows.train import train

ARCHS = [("espcn", {"scale": 3, "width": 12, "mid_width": 8}),
         ("edsr", {"scale": 3, "width": 8, "depth": 2}),
         ("edsr", {"scale": 4, "width": 8, "depth": 2, "block_width": 6})]  # x4: two pixel-shuffle stages


def _model(name, config, seed=0):
    torch.manual_seed(seed)
    return create_model(name, config).eval()


def _kill_channels(model, fraction):
    """Zero the producing filters (and biases) of the first ``fraction`` of every group's channels, so those
    channels carry nothing; returns the surviving channel count per field."""
    state = model.state_dict()
    survivors = {}
    for group in model.channel_groups():
        first = group.outputs[0]
        width = state[f"{first}.weight"].shape[0] // group.rows_per_channel(first)
        dead = int(width * fraction)
        survivors[group.field] = width - dead
        for path in group.outputs:
            rows = dead * group.rows_per_channel(path)  # a shuffled conv's channel c is rows c*r*r..(c+1)*r*r-1
            state[f"{path}.weight"][:rows] = 0
            state[f"{path}.bias"][:rows] = 0
    model.load_state_dict(state)
    return survivors


@pytest.mark.parametrize("name,config", ARCHS)
def test_removing_dead_channels_keeps_the_output(name, config):
    model = _model(name, config)
    survivors = _kill_channels(model, 0.5)
    pruned, widths = prune_channels(model, 0.5)
    assert {field: after for field, (_, after) in widths.items()} == survivors
    for field, kept in survivors.items():
        assert getattr(pruned.config, field) == kept
    lr = torch.rand(2, 3, 9, 11)
    with torch.no_grad():
        torch.testing.assert_close(pruned(lr), model(lr), atol=1e-5, rtol=1e-5)
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name,config", ARCHS)
def test_amount_zero_is_the_same_model(name, config):
    model = _model(name, config, seed=3)
    pruned, widths = prune_channels(model, 0.0)
    assert all(before == after for before, after in widths.values())
    lr = torch.rand(1, 3, 7, 8)
    with torch.no_grad():
        assert torch.equal(pruned(lr), model(lr))


def test_the_largest_filters_are_kept():
    model = _model("espcn", {"scale": 2, "width": 6, "mid_width": 4})
    with torch.no_grad():
        model.body[0].weight.mul_(torch.tensor([1.0, 9.0, 1.0, 8.0, 7.0, 1.0]).view(6, 1, 1, 1))
    pruned, _ = prune_channels(model, 0.5)
    torch.testing.assert_close(pruned.body[0].weight, model.body[0].weight[[1, 3, 4]])  # original order kept
    mid_norms = model.body[2].weight.abs().flatten(1).sum(1)  # (mid_width,): body.2's rows are the mid channels
    mid_kept = mid_norms.topk(pruned.config.mid_width).indices.sort().values
    torch.testing.assert_close(pruned.body[2].weight, model.body[2].weight[mid_kept][:, [1, 3, 4]])


def test_kept_channels_rounding_and_bounds():
    assert kept_channels(64, 0.5) == 32
    assert kept_channels(64, 0.3, multiple_of=8) == 48  # 44.8 -> the nearest multiple of 8
    assert kept_channels(4, 0.9) == 1  # never zero channels
    assert kept_channels(12, 0.5, multiple_of=16) == 12  # never more than there were
    with pytest.raises(ConfigError, match=r"amount must be in \[0, 1\)"):
        kept_channels(8, 1.0)


def test_a_model_without_channel_groups_is_refused():
    model = create_model("bicubic", {"scale": 2})
    with pytest.raises(ConfigError, match="bicubic models cannot be pruned yet"):
        prune_channels(model, 0.5)


def test_cli_prunes_reports_and_the_result_fine_tunes_and_exports(tmp_path, hr_folder, capsys):
    save_pretrained(_model("edsr", {"scale": 2, "width": 8, "depth": 2}), tmp_path / "edsr")
    out = tmp_path / "edsr-half"
    assert main(["prune", "--model", str(tmp_path / "edsr"), "--amount", "0.5", "--evaluate",
                 f"folder:{hr_folder}", "-o", str(out)]) == 0
    assert "width 8->4, block_width 8->4" in capsys.readouterr().out
    report = json.loads((tmp_path / "edsr-half.json").read_text())
    assert report["params"]["pruned"] < report["params"]["original"] / 3
    assert report["quality"]["metric"] == "psnr" and set(report["latency_s"]) == {"original", "pruned"}
    card = json.loads((out / "config.json").read_text())
    assert card["config"]["width"] == 4 and card["pruned"]["widths"] == {"width": [8, 4], "block_width": [8, 4]}
    pruned = load_pretrained(out, kind="sr")
    assert pruned(torch.rand(1, 3, 6, 7)).shape == (1, 3, 12, 14)
    # fine-tuning by distillation from the original starts from the pruned weights
    result = train("sr-distill", progress=False, overrides=[
        f"data.name=folder:{hr_folder}", f"teacher={tmp_path / 'edsr'}", f"init={out}", f"train.out_dir={tmp_path}",
        "train.name=tune", "data.patch_size=24", "batch_size=2", "steps=2", "tensorboard=false", "sample_every=0",
        "ema=false"])
    assert load_pretrained(result.run_dir, kind="sr").config.block_width == 4
    assert main(["export", "--model", str(out), "-o", str(tmp_path / "half.onnx")]) == 0


def test_cli_errors_are_one_line(tmp_path, capsys):
    save_pretrained(_model("espcn", {"scale": 2, "width": 4, "mid_width": 4}), tmp_path / "espcn")
    save_pretrained(create_model("cnn", {"width": 4, "stages": 2, "feature_dim": 8}), tmp_path / "classifier")
    assert main(["prune", "--model", str(tmp_path / "espcn"), "-o", str(tmp_path / "espcn")]) != 0
    err = capsys.readouterr().err
    assert "holds the source model" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert main(["prune", "--model", str(tmp_path / "espcn"), "--amount", "1", "-o", str(tmp_path / "x")]) != 0
    assert "--amount" in capsys.readouterr().err
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    assert main(["prune", "--model", str(tmp_path / "espcn"), "-o", str(tmp_path / "taken")]) != 0
    assert "not a model directory" in capsys.readouterr().err
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
    assert main(["prune", "--model", str(tmp_path / "classifier"), "-o", str(tmp_path / "y")]) != 0
    err = capsys.readouterr().err
    assert "cannot be pruned yet" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "y").exists()
