"""Learned image compression: VAE-family codecs (Ballé et al.'s factorized prior and scale
hyperprior) trained for rate and distortion, and a real bitstream written with CompressAI's rANS coder.

- :mod:`.objective` (``train codec``): the rate-distortion training family;
- :mod:`.bitstream`: the ``.gvc`` file (header, coded latents, checksum);
- :mod:`.commands`: ``genvision compress`` and ``genvision decompress``.

The networks live in :mod:`genvision.models.codec`.
"""

from .. import App, CommandRef, FamilyRef

APP = App(
    name="codec",
    summary="learned image codecs: train for rate and distortion, compress to a .gvc bitstream and back",
    families=(FamilyRef("codec", "genvision.apps.codec.objective", samples_images=False),),
    commands=(CommandRef("compress", "genvision.apps.codec.commands:compress",
                         "Compress an image with a learned codec into a .gvc bitstream."),
              CommandRef("decompress", "genvision.apps.codec.commands:decompress",
                         "Decode a .gvc bitstream back to an image.")),
)
