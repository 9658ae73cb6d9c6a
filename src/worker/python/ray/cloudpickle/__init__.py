"""Ray's `ray.cloudpickle`: the cloudpickle raysub vendors (the same module)."""
import sys

from raysub._vendor import cloudpickle as _module

sys.modules[__name__] = _module
