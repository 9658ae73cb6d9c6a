"""Ray's `ray.util`: raysub's helpers (ActorPool, as_completed, map_unordered, placement groups, ...)."""
from raysub.util import *  # noqa: F401,F403
from raysub.util import __all__  # noqa: F401
