"""Workflows: what the front ends (CLI, web UI, Python API) ask for, composed from the applications.

- :mod:`.train`: ``train(family, ...)`` — resolve the recipe, build data, model and objective from
  the family the manifest names, run the trainer (resume, overwrite, training-time FID);
- :mod:`.evaluate`: ``evaluate(request)`` — load the model and hand it to its kind's evaluator;
- :mod:`.extractors`: the feature space for FID-style scores (shipped, trained once, or Inception).
"""
