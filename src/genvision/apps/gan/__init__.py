"""GANs: the minimax game (and its non-saturating, hinge and WGAN-GP variants) for DCGAN-style nets,
class conditioning with a projection discriminator, DiffAugment and ADA. Sampling and evaluation go through
the generation application (any model with the generator protocol)."""

from .. import App, FamilyRef

APP = App(
    name="gan",
    summary="GANs: DCGAN-style nets, four losses, class conditioning, DiffAugment, ADA",
    families=(FamilyRef("gan", "genvision.apps.gan.objective", samples_images=True),),
)
