"""Diffusion transformers trained with flow matching (the loss and samplers live in
``genvision.processes.flow``), and few-step students distilled from them (``dit-distill``);
sampling and evaluation go through the generation application."""

from .. import App, FamilyRef

APP = App(
    name="dit",
    summary="DiT generators trained with flow matching, classifier-free guidance",
    families=(FamilyRef("dit", "genvision.apps.dit.objective", samples_images=True),
              FamilyRef("dit-distill", "genvision.apps.dit.distill", samples_images=True)),
)
