"""Ray's `ray.actor`: raysub's `raysub.actor` (the same module)."""
import sys

import raysub.actor as _module

sys.modules[__name__] = _module
