"""Ray's `ray.util.placement_group`: raysub's `raysub.util.placement_group` (the same module)."""
import importlib
import sys

# import_module, not `import ... as`: a package attribute of the same name (a function) would shadow the module.
_module = importlib.import_module("raysub.util.placement_group")

sys.modules[__name__] = _module
