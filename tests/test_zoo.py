"""The model zoo: every shipped entry's files match their sha256, it loads as zoo:NAME, runs on a tiny
input and has a card; the installed zoo stays within its size budget; a damaged file or an unknown name
is refused in one line, from Python and from every command that takes --model."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import yaml
from PIL import Image
from real_weights import real

from genvision import zoo
from genvision.apps.style.backbones import attach_encoder
from genvision.apps.zoo.commands import _tensors
from genvision.checkpoints import load_pretrained, read_model_card
from genvision.cli import main
from genvision.errors import CheckpointError

ENTRIES = sorted(zoo.entries())
SIZE_BUDGET = 60 * 2**20


def test_the_zoo_ships_models_within_its_budget():
    assert len(ENTRIES) >= 9  # an empty or half-installed index must fail here, not skip below
    assert sum(item.bytes for item in zoo.entries().values()) <= SIZE_BUDGET


@pytest.mark.parametrize("name", ENTRIES)
def test_every_entry_is_intact_loads_and_runs(name):
    item = zoo.entry(name)
    assert zoo.check_files(item) == []
    assert {"config.json", "model.safetensors", "MODEL_CARD.md", "recipe.yaml"} <= set(item.files)
    assert item.licence and item.metrics and item.data and item.reproduce and item.task
    model = load_pretrained(f"zoo:{name}")
    assert model.registry_name == item.model and model.model_kind == item.kind
    if getattr(model, "arbitrary", False):  # AdaIN ships its decoder; its VGG encoder comes from genvision weights
        real(model.config.encoder)
        attach_encoder(model)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # fp16 storage widens on load
    torch.manual_seed(0)
    with torch.no_grad():
        outputs = model(*model.example_inputs(1))
    tensors = list(_tensors(outputs))
    assert tensors and all(torch.isfinite(t.float()).all() for t in tensors)
    recipe = yaml.safe_load((item.directory / "recipe.yaml").read_text())
    assert recipe["train"]["out_dir"] == "runs"  # retraining writes under the user's folder, not one of ours
    if recipe.get("init"):  # what retraining starts from ships too: a zoo name, not a run folder of ours
        assert recipe["init"].startswith("zoo:") and recipe["init"].removeprefix("zoo:") in ENTRIES
    card = (item.directory / "MODEL_CARD.md").read_text()
    assert f"zoo:{name}" in card and item.files["model.safetensors"] in card
    assert read_model_card(f"zoo:{name}")["zoo"]["name"] == name


@pytest.fixture
def copied_zoo(tmp_path, monkeypatch):
    """The shipped zoo copied to a temporary folder (only the smallest entry), to damage it safely."""
    smallest = min(zoo.entries().values(), key=lambda item: item.bytes)
    root = tmp_path / "zoo"
    shutil.copytree(smallest.directory, root / smallest.name)
    index = json.loads((zoo.ZOO_DIR / zoo.INDEX_FILE).read_text())
    index["models"] = {smallest.name: index["models"][smallest.name]}
    (root / zoo.INDEX_FILE).write_text(json.dumps(index))
    monkeypatch.setattr(zoo, "ZOO_DIR", root)
    return root / smallest.name, smallest.name


def test_a_damaged_file_is_refused(copied_zoo, capsys):
    directory, name = copied_zoo
    assert load_pretrained(f"zoo:{name}") is not None
    weights = directory / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one bit of one weight: the model would still load, so only the hash can tell
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=f"zoo:{name}: model.safetensors missing or not matching its sha256"):
        load_pretrained(f"zoo:{name}")
    assert main(["zoo", "verify", name]) != 0
    err = capsys.readouterr().err
    assert "reinstall genvision" in err and len(err.strip().splitlines()) == 1


def test_unknown_names_suggest_close_ones(tmp_path, capsys):
    name = ENTRIES[0]
    with pytest.raises(CheckpointError, match=f"did you mean {name}"):
        zoo.entry(name[:-1] + "z")
    Image.new("RGB", (12, 10), (200, 100, 50)).save(tmp_path / "photo.png")
    assert main(["upscale", str(tmp_path / "photo.png"), "--model", "zoo:no-such-model", "-o",
                 str(tmp_path / "x.png")]) != 0
    err = capsys.readouterr().err
    assert "no zoo model named 'no-such-model'" in err and "Traceback" not in err


def test_cli_lists_describes_and_verifies(capsys):
    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    assert all(f"zoo:{name}" in out for name in ENTRIES)
    assert main(["zoo", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {row["name"] for row in rows} == set(ENTRIES) and all(len(row["files"]) >= 4 for row in rows)
    assert main(["zoo", "info", ENTRIES[0]]) == 0
    assert "## Files (sha256)" in capsys.readouterr().out
    smallest = min(zoo.entries().values(), key=lambda item: item.bytes).name
    assert main(["zoo", "verify", smallest]) == 0
    assert "ok" in capsys.readouterr().out


def test_a_model_made_from_a_zoo_entry_does_not_claim_to_be_it(tmp_path, hr_folder):
    assert main(["prune", "--model", "zoo:espcn-x3", "-o", str(tmp_path / "half")]) == 0
    assert main(["quantize", "--model", "zoo:espcn-x3", "--method", "int8-weights", "--evaluate",
                 f"folder:{hr_folder}", "-o", str(tmp_path / "q8")]) == 0
    pruned, stored = read_model_card(tmp_path / "half"), read_model_card(tmp_path / "q8")
    assert "zoo" not in pruned and pruned["pruned"]["from"] == "zoo:espcn-x3"
    assert "zoo" not in stored and stored["storage"]["dtype"] == "int8-weights"
