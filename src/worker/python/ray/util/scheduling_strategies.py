"""Ray's `ray.util.scheduling_strategies`: raysub's `raysub.util.scheduling_strategies` (the same module)."""
import sys

import raysub.util.scheduling_strategies as _module

sys.modules[__name__] = _module
