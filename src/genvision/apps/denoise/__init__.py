"""Denoising: DnCNN trained by residual learning (blind, or conditioned on the noise level as
FFDNet), OpenCV's non-local means as a weightless baseline, tiled denoising of images of any
size, and evaluation at a known noise level.

- :mod:`.objective` (``train denoise``): random clean patches plus Gaussian noise, L2 on the noise;
- :mod:`.pipeline`: ``denoise`` (tiles shared with upscaling: :mod:`genvision.tiling`);
- :mod:`.evaluate`: PSNR/SSIM at ``--sigma`` on seeded noisy images, beside NL-means;
- :mod:`.commands`: ``genvision denoise``.
"""

from .. import App, CommandRef, FamilyRef

APP = App(
    name="denoise",
    summary="denoising: train DnCNN, denoise any image (or NL-means with no model), evaluate at a noise level",
    families=(FamilyRef("denoise", "genvision.apps.denoise.objective"),),
    evaluators={"denoise": "genvision.apps.denoise.evaluate:evaluate_denoiser_model"},
    commands=(CommandRef("denoise", "genvision.apps.denoise.commands:denoise",
                         "Remove noise from an image or a folder of images (a DnCNN model, or nlmeans)."),),
)
