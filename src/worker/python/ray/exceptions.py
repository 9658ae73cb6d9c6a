"""Ray's `ray.exceptions`: raysub's `raysub.exceptions` (the same module)."""
import sys

import raysub.exceptions as _module

sys.modules[__name__] = _module
