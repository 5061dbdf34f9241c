"""Image generation with any model that has the generator protocol (GANs, VAEs, DiT, MaskGIT): sample
grids or folders of any size, walk the latent space between seeds or between two images, and
score samples offline (FID, KID, precision/recall in domain or Inception features)."""

from .. import App, CommandRef

APP = App(
    name="generation",
    summary="sample, interpolate and evaluate any generator",
    evaluators={"gan": "genvision.apps.generation.evaluate:evaluate_generator_model",
                "diffusion": "genvision.apps.generation.evaluate:evaluate_generator_model",
                "token-prior": "genvision.apps.generation.evaluate:evaluate_generator_model"},
    calibrators={"gan": "genvision.apps.generation.calibrate:calibration_inputs"},
    commands=(
        CommandRef("generate", "genvision.apps.generation.commands:generate",
                   "Sample images from a trained generator."),
        CommandRef("interpolate", "genvision.apps.generation.commands:interpolate",
                   "Walk the latent space between two seeds or two images (PNG strip or GIF)."),
    ),
)
