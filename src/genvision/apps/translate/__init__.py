"""Unpaired image-to-image translation: CycleGAN.

- :mod:`.objective`: ``genvision train cyclegan --data-a ... --data-b ...`` (least-squares GAN,
  cycle and identity losses, an image pool, linear lr decay);
- :mod:`.data`: random crops and flips of two unpaired domains (folders or named datasets);
- :mod:`.pool`: the critics' history of fakes;
- :mod:`.pipeline`: translating images of any size; :mod:`.commands`: ``genvision translate``.

The network is :class:`genvision.models.cyclegan.CycleGAN` (kind ``translate``).
"""

from .. import App, CommandRef, FamilyRef

APP = App(
    name="translate",
    summary="unpaired image-to-image translation (CycleGAN): train on two domains, translate any image",
    families=(FamilyRef("cyclegan", "genvision.apps.translate.objective"),),
    commands=(CommandRef("translate", "genvision.apps.translate.commands:translate",
                         "Translate an image or a folder of images to the other domain with a CycleGAN."),),
)
