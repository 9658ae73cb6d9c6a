"""Ray's `ray.util.scheduling_strategies`: raysub's `raysub.util.scheduling_strategies` (the same module)."""
import importlib
import sys

# import_module, not `import ... as`: a package attribute of the same name (a function) would shadow the module.
_module = importlib.import_module("raysub.util.scheduling_strategies")

sys.modules[__name__] = _module
