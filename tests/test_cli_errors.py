"""How the command line ends: one-line errors, exit statuses schedulers can read, folded warnings."""

from __future__ import annotations

import signal
import warnings
from pathlib import Path

import click
import pytest

from genvision import cli
from genvision.errors import ConfigError, reason
from genvision.training.trainer import RunResult


def test_unknown_command_points_at_the_top_level_help(capsys):
    assert cli.main(["genrate"]) == 2
    err = capsys.readouterr().err
    assert err == "error: No such command 'genrate'. Did you mean 'generate'? (see genvision --help)\n"


def test_a_bad_option_points_at_its_command_help(capsys):
    assert cli.main(["generate", "--bogus"]) == 2
    assert capsys.readouterr().err.endswith("(see genvision generate --help)\n")


@pytest.mark.parametrize("signal_name, status", [("SIGINT", 130), ("SIGTERM", 143)])
def test_an_interrupted_training_exits_128_plus_the_signal(monkeypatch, capsys, signal_name, status):
    import genvision.core_commands as commands

    def interrupted(family, **kwargs):
        return RunResult(Path("runs/x"), 12, Path("runs/x/checkpoints/step_00000012"), "signal", {}, signal_name)

    monkeypatch.setattr(commands, "run_training", interrupted)
    assert cli.main(["train", "gan"]) == status == 128 + signal.Signals[signal_name].value
    assert "interrupted at step 12" in capsys.readouterr().out


def test_reasons_are_cut_between_words():
    text = "word " * 100
    short = reason(ValueError(text), limit=60)
    assert len(short) <= 60 and short.endswith("word...")
    assert reason(ValueError("line one\n  line two")) == "line one line two"
    assert reason(KeyError()) == "KeyError"


@pytest.fixture
def scratch_command():
    """A throwaway command on the real CLI group: warns, then succeeds or fails on request."""

    @click.command("scratch-warn")
    @click.option("--fail", is_flag=True)
    def scratch(fail):
        warnings.warn("first line of a library warning\n  and its second line", UserWarning)
        if fail:
            raise ConfigError("the one line a user needs")
        click.echo("done")

    cli.cli.add_command(scratch)
    yield
    cli.cli.commands.pop("scratch-warn")


def test_warnings_become_one_line_each_after_a_success(scratch_command, capsys):
    assert cli.main(["scratch-warn"]) == 0
    out, err = capsys.readouterr()
    assert out == "done\n"
    assert err == "warning: first line of a library warning and its second line\n"


def test_an_error_is_one_line_even_when_warnings_came_first(scratch_command, capsys):
    assert cli.main(["scratch-warn", "--fail"]) == 1
    assert capsys.readouterr().err == "error: the one line a user needs\n"
