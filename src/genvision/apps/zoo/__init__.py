"""The model zoo from the command line: ``genvision zoo list|info|verify``.

The zoo itself (the index, ``zoo:NAME`` resolution, the sha256 checks) lives a layer down in
:mod:`genvision.zoo`, because every command that takes ``--model`` resolves it through the checkpoints.
"""

from .. import App, CommandRef

APP = App(
    name="zoo",
    summary="the model zoo: models that ship with genvision, loaded as --model zoo:NAME",
    commands=(CommandRef("zoo", "genvision.apps.zoo.commands:zoo_group",
                         "List, describe and verify the models that ship with genvision (--model zoo:NAME)."),),
)
