"""Ray's `ray.util.placement_group`: raysub's `raysub.util.placement_group` (the same module)."""
import sys

import raysub.util.placement_group as _module

sys.modules[__name__] = _module
