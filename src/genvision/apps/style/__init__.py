"""Style transfer. Today: optimisation-based transfer (Gatys et al.), ``genvision stylize --method optimize``,
and from Python ``from genvision.apps.style.pipeline import stylize`` (this module only holds the
manifest, so reading it imports no torch).

- :mod:`.pipeline`: :func:`stylize` / :func:`transfer`, the Python API (coarse to fine, colour
  preservation, masks), and the VGG feature extractor from ``genvision.pretrained``;
- :mod:`.losses`: Gram matrix, content and total-variation losses, one scale's objective;
- :mod:`.optimize`: scale sizes and the L-BFGS / Adam loop (torch.optim);
- :mod:`.colour`: BT.601 YCbCr, luminance matching, the gamut-preserving luminance clamp;
- :mod:`.masks`: inward feathering and compositing;
- :mod:`.settings`: the typed, checked settings; :mod:`.commands`: the CLI.

Fast feed-forward (Johnson et al.), arbitrary style (AdaIN) and CycleGAN are to join as further
``--method`` values and training families.
"""

from .. import App, CommandRef

APP = App(
    name="style",
    summary="style transfer: optimisation-based (Gatys et al.) with VGG features",
    commands=(CommandRef("stylize", "genvision.apps.style.commands:stylize",
                         "Restyle a photo after one or more paintings (--method optimize: Gatys et al.)."),),
)

