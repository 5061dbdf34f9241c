"""Adding a capability is one package plus one manifest line: a toy application, written here into
a temporary folder, gets ``genvision train toy`` and its own command without touching genvision."""

from __future__ import annotations

import sys
import textwrap

import pytest

from genvision import apps
from genvision.cli import main

TOY_PACKAGE = {
    "__init__.py": '''
        from genvision.apps import App, CommandRef, FamilyRef

        APP = App(
            name="toy",
            summary="a toy capability: a tiny CNN pulled towards zero logits",
            families=(FamilyRef("toy", "toyapp.family"),),
            commands=(CommandRef("toy-hello", "toyapp.commands:hello", "Say hello from the toy capability."),),
        )
    ''',
    "family.py": '''
        from dataclasses import dataclass, field

        import torch

        from genvision.config import DataConfig, TrainConfig
        from genvision.registry import create_model
        from genvision.training.objective import Objective

        DESCRIPTION = "toy: logits of a tiny CNN pulled towards zero"


        @dataclass
        class ToyRecipe:
            train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=2, batch_size=8, tensorboard=False,
                                                                           sample_every=0))
            data: DataConfig = field(default_factory=lambda: DataConfig(name="mnist-mini", limit=64))


        RECIPE = ToyRecipe


        class ToyObjective(Objective):
            def build_optimizers(self):
                return {"model": torch.optim.SGD(self.model.parameters(), lr=0.1)}

            def train_step(self, batch, ctx):
                loss = self.model(batch[0]).pow(2).mean()
                ctx.update(loss, "model")
                return {"loss": loss.detach()}


        def build(recipe, data):
            model = create_model("cnn", {"width": 4, "stages": 2, "feature_dim": 8, "channels": data.channels,
                                         "image_size": data.image_size, "num_classes": data.num_classes})
            return model, ToyObjective(model, None, data)
    ''',
    "commands.py": '''
        import click


        @click.command()
        def hello():
            """Say hello from the toy capability."""
            click.echo("hello from a capability genvision has never heard of")
    ''',
}


@pytest.fixture
def toy_capability(tmp_path, monkeypatch):
    package = tmp_path / "toyapp"
    package.mkdir()
    for name, code in TOY_PACKAGE.items():
        (package / name).write_text(textwrap.dedent(code))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(apps, "APPS", [*apps.APPS, "toyapp"])  # the one manifest line
    yield
    for name in [m for m in sys.modules if m == "toyapp" or m.startswith("toyapp.")]:
        del sys.modules[name]


def test_a_new_package_and_one_manifest_line_make_a_capability(toy_capability, tmp_path, capsys):
    assert main(["--help"]) == 0
    assert "toy-hello" in capsys.readouterr().out
    assert main(["toy-hello"]) == 0
    assert capsys.readouterr().out == "hello from a capability genvision has never heard of\n"
    assert main(["train", "toy", f"train.out_dir={tmp_path / 'runs'}", "train.name=t"]) == 0
    assert "finished at step 2" in capsys.readouterr().out
    assert (tmp_path / "runs" / "t" / "checkpoints" / "latest").read_text().strip() == "step_00000002"


def test_the_manifest_refuses_a_package_without_an_app(tmp_path, monkeypatch):
    (tmp_path / "notanapp").mkdir()
    (tmp_path / "notanapp" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(apps, "APPS", [*apps.APPS, "notanapp"])
    from genvision.errors import ConfigError

    with pytest.raises(ConfigError, match="notanapp is listed as an application but defines no APP"):
        apps.families()
