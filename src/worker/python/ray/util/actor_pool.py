"""Ray's `ray.util.actor_pool`: raysub's `raysub.util.actor_pool` (the same module)."""
import importlib
import sys

# import_module, not `import ... as`: a package attribute of the same name (a function) would shadow the module.
_module = importlib.import_module("raysub.util.actor_pool")

sys.modules[__name__] = _module
