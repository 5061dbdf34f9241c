from . import gan  # noqa: F401  (registers the models)
from . import classifier  # noqa: F401  (registers the models)
