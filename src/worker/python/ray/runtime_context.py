"""Ray's `ray.runtime_context`: raysub's runtime context."""
from raysub._context import RuntimeContext, get_runtime_context  # noqa: F401
