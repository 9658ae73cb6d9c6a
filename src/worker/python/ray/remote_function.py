"""Ray's `ray.remote_function`: raysub's `raysub.remote_function` (the same module)."""
import importlib
import sys

# import_module, not `import ... as`: a package attribute of the same name (a function) would shadow the module.
_module = importlib.import_module("raysub.remote_function")

sys.modules[__name__] = _module
