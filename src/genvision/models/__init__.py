"""Networks, one module per family; importing this package registers every model in it.

The modules are found by listing the package, not by a hand-kept list: a new network is a new
module here that decorates its class with ``genvision.registry.register_model``.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
