"""raysub's in-job API: remote functions, actors and objects for a job running on raysub.

    import raysub

    @raysub.remote
    def square(x):
        return x * x

    print(raysub.get([square.remote(i) for i in range(10)]))

Standard library only. See docs/tasks.md for what differs from Ray."""

import sys as _sys

from ._api import (
    ActorClass,
    ActorHandle,
    ObjectRef,
    RemoteFunction,
    get_gpu_ids,
    get_runtime_context,
    init,
    is_initialized,
    kill,
    method,
    remote,
    shutdown,
)
from ._objects import get, put, wait
from ._errors import ActorDiedError, GetTimeoutError, ObjectLostError, RaysubError, TaskError, WorkerCrashedError

# Objects made by functions of the entrypoint script (loaded as `__raysub_main__` in workers) come
# back to the script as its own `__main__` objects.
if "__raysub_main__" not in _sys.modules and "__main__" in _sys.modules:
    _sys.modules["__raysub_main__"] = _sys.modules["__main__"]

__all__ = [
    "ActorClass", "ActorHandle", "ObjectRef", "RemoteFunction", "get", "get_gpu_ids", "get_runtime_context", "init",
    "is_initialized", "kill", "method", "put", "remote", "shutdown", "wait", "ActorDiedError", "GetTimeoutError",
    "ObjectLostError", "RaysubError", "TaskError", "WorkerCrashedError",
]
