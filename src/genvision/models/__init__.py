from . import gan  # noqa: F401  (registers the models)
