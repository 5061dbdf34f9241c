"""Token priors: a MaskGIT transformer (``genvision.models.maskgit``) trained over the token grids of a
frozen, already trained VQ-VAE (``init=``), so the VQ-VAE samples like a real generator. Sampling and
evaluation go through the generation application (``genvision generate`` / ``genvision evaluate``).

    genvision train maskgit init=zoo:vqvae-mnist --data mnist
"""

from .. import App, FamilyRef

APP = App(
    name="tokenprior",
    summary="MaskGIT priors over a trained VQ-VAE's tokens: class-conditional, CFG, parallel decoding",
    families=(FamilyRef("maskgit", "genvision.apps.tokenprior.objective", samples_images=True),),
)
