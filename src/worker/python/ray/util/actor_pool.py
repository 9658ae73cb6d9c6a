"""Ray's `ray.util.actor_pool`: raysub's `raysub.util.actor_pool` (the same module)."""
import sys

import raysub.util.actor_pool as _module

sys.modules[__name__] = _module
