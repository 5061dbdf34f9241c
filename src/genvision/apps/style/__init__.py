"""Style transfer: optimisation-based (Gatys et al.), ``genvision stylize --method optimize``, and from
Python ``from genvision.apps.style.pipeline import stylize``; fast feed-forward (Johnson et al.,
``genvision train style``) and arbitrary style (AdaIN, ``genvision train adain``), run by ``genvision
stylize --model RUN`` or ``genvision.apps.style.fast.stylize_with``. This module only holds the manifest,
so reading it imports no torch.

- :mod:`.pipeline`: :func:`stylize` / :func:`transfer`, the Python API (coarse to fine, colour
  preservation, masks), and the VGG feature extractor from ``genvision.pretrained``;
- :mod:`.losses`: Gram matrix, content and total-variation losses, one scale's objective;
- :mod:`.optimize`: scale sizes and the L-BFGS / Adam loop (torch.optim);
- :mod:`.colour`: BT.601 YCbCr, luminance matching, the gamut-preserving luminance clamp;
- :mod:`.masks`: inward feathering and compositing;
- :mod:`.settings`: the typed, checked settings; :mod:`.commands`: the CLI;
- :mod:`.johnson` / :mod:`.arbitrary`: the ``style`` and ``adain`` training families (networks in
  ``genvision.models.style``); :mod:`.backbones`: their frozen VGGs; :mod:`.fast`: running a trained model.

CycleGAN is to join as a further family.
"""

from .. import App, CommandRef, FamilyRef

APP = App(
    name="style",
    summary="style transfer: optimisation (Gatys et al.), fast feed-forward (Johnson et al.), arbitrary (AdaIN)",
    families=(FamilyRef("style", "genvision.apps.style.johnson"), FamilyRef("adain", "genvision.apps.style.arbitrary")),
    commands=(CommandRef("stylize", "genvision.apps.style.commands:stylize",
                         "Restyle a photo after one or more paintings (optimisation, or a trained fast/AdaIN --model)."),),
)

