"""Super-resolution: EDSR/ESPCN trained with a pixel loss, SRGAN-style refinement, tiled seam-free
upscaling of images of any size, and the Set5/Set14 evaluation protocol (MATLAB bicubic LR, Y-PSNR).

- :mod:`.objective` (``train sr``), :mod:`.adversarial` (``train srgan``) and :mod:`.distill`
  (``train sr-distill``: a small network learns from a large one): the training families;
- :mod:`.data`: random aligned HR/LR patches from folders of images of any size;
- :mod:`.pipeline`: ``upscale`` (tiles, blending, streaming PNG output);
- :mod:`.ensemble`: the x8 geometric self-ensemble;
- :mod:`.evaluate`: PSNR/SSIM by the published protocol; :mod:`.commands`: ``genvision upscale``.
"""

from .. import App, CommandRef, FamilyRef

APP = App(
    name="sr",
    summary="super-resolution: train, upscale any image, evaluate on Set5/Set14",
    families=(FamilyRef("sr", "genvision.apps.sr.objective"),
              FamilyRef("srgan", "genvision.apps.sr.adversarial"),
              FamilyRef("sr-distill", "genvision.apps.sr.distill")),
    evaluators={"sr": "genvision.apps.sr.evaluate:evaluate_sr_model"},
    calibrators={"sr": "genvision.apps.sr.evaluate:calibration_inputs"},
    commands=(CommandRef("upscale", "genvision.apps.sr.commands:upscale",
                         "Upscale an image or a folder of images with a super-resolution model."),),
)
