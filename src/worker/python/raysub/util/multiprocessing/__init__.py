"""`multiprocessing.Pool`'s interface over actors (Ray's `ray.util.multiprocessing`)."""

from multiprocessing import JoinableQueue, TimeoutError  # noqa: F401

from .pool import Pool

__all__ = ["Pool", "TimeoutError", "JoinableQueue"]
