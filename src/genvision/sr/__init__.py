"""Super-resolution: MATLAB-compatible degradation, the evaluation protocol, data for training.

* :mod:`genvision.sr.degrade` — ``imresize`` (MATLAB bicubic, antialiased when shrinking),
  ``modcrop`` and ``make_lr`` (the LR images every published SR table is computed on).
* :mod:`genvision.sr.evaluate` — PSNR/SSIM on Set5/Set14/any folder by the standard protocol.
* :mod:`genvision.sr.data` — random HR/LR patch pairs from folders of images of any size.
"""

from .degrade import imresize, make_lr, modcrop

__all__ = ["imresize", "make_lr", "modcrop"]
