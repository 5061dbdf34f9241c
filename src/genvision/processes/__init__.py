"""Processes: the math that turns a network into a generative model, kept apart from the networks
(as the DiT code keeps ``diffusion/`` apart from ``models.py``) so editing and inpainting can reuse
the samplers with any velocity field.

- :mod:`.flow`: flow matching on straight paths — the training loss and the ODE samplers;
- :mod:`.inpaint`: RePaint on those paths — the samplers with known pixels re-imposed along the path;
- :mod:`.masked_tokens`: masked token modelling (MaskGIT) — the training mask and loss, iterative decoding.
"""
