"""Ray's `ray.util.multiprocessing`: raysub's Pool over actors."""
from raysub.util.multiprocessing import JoinableQueue, Pool, TimeoutError  # noqa: F401
