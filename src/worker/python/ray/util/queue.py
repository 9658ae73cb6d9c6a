"""Ray's `ray.util.queue`: raysub's `raysub.util.queue` (the same module)."""
import sys

import raysub.util.queue as _module

sys.modules[__name__] = _module
