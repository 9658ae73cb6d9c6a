"""Ray's `ray.util.multiprocessing.pool`: raysub's `raysub.util.multiprocessing.pool` (the same module)."""
import sys

import raysub.util.multiprocessing.pool as _module

sys.modules[__name__] = _module
