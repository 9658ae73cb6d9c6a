"""Ray's `ray.remote_function`: raysub's `raysub.remote_function` (the same module)."""
import sys

import raysub.remote_function as _module

sys.modules[__name__] = _module
