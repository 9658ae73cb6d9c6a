"""Ray's `ray.exceptions`: raysub's `raysub.exceptions` (the same module)."""
import importlib
import sys

# import_module, not `import ... as`: a package attribute of the same name (a function) would shadow the module.
_module = importlib.import_module("raysub.exceptions")

sys.modules[__name__] = _module
