"""Ray's `ray.util.queue`: raysub's `raysub.util.queue` (the same module)."""
import importlib
import sys

# import_module, not `import ... as`: a package attribute of the same name (a function) would shadow the module.
_module = importlib.import_module("raysub.util.queue")

sys.modules[__name__] = _module
