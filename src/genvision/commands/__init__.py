"""Command groups contributed by each capability, added to the ``genvision`` CLI.

Each module listed in ``COMMAND_MODULES`` defines ``COMMANDS``: a list of click commands.
Modules must import heavy dependencies inside their command functions so ``genvision --help``
stays fast.
"""

COMMAND_MODULES: list[str] = [
    "genvision.commands.transformers",
    "genvision.commands.vae",
    "genvision.commands.sr",
]
