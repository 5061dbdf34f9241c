"""Image editing: crop, rotate, flip, resize, tone and colour ops chained into one resampling, and
inpainting.

- :mod:`.commands`: ``genvision edit`` (a file or a folder, ``--op``/``--pipeline``, a JSON sidecar
  per output that ``--replay`` applies again);
- :mod:`.imagefile`: reading and writing images at their own bit depth (8/16-bit, alpha), with
  the EXIF orientation applied and the ICC profile, EXIF and dpi kept;
- :mod:`.inpaint`: ``genvision inpaint`` (classical Telea / Navier-Stokes hole filling, a trained
  inpainting network (:mod:`.learned`), and the generative methods of :mod:`.generative`: DiT
  RePaint, VAE/CVAE latent optimisation);
- :mod:`.objective`: ``genvision train inpaint`` (a LaMa-style FFC network on random strokes and
  boxes over photo patches).

The ops themselves are the blocks-layer library :mod:`genvision.ops` (geometry, tone, chain, masks).
"""

from .. import App, CommandRef, FamilyRef

APP = App(
    name="edit",
    summary="image editing: chained crop/rotate/flip/resize/tone ops, inpainting (classical, learned, generative)",
    families=(FamilyRef("inpaint", "genvision.apps.edit.objective"),),
    commands=(CommandRef("edit", "genvision.apps.edit.commands:edit",
                         "Edit images: crop, rotate, flip, resize, tone and colour, chained into one resampling."),
              CommandRef("inpaint", "genvision.apps.edit.inpaint:inpaint",
                         "Fill holes in an image: classical (Telea, Navier-Stokes), a trained network, or "
                         "generative (DiT, VAE).")),
)
