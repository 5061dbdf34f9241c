"""The image op library: crop, resize, rotate, flip, pad, affine/perspective warps, tone and colour
adjustments, masks, chained so that consecutive geometric ops resample once.

Every op works on numpy images (HW or HWC; uint8, uint16 or float32 in [0, 1]) for files, and on
torch tensors ((B, C, H, W) or (C, H, W) in [0, 1]; batched, differentiable, any device) for
training and the GPU. :mod:`.chain` parses ``"rotate=12"``-style specs into a :class:`Chain`.
"""
