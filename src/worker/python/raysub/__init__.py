"""raysub's in-job API: remote functions, actors and objects for a job running on raysub, with
Ray's names and semantics (every job's Python also sees it as `ray`, unless the job brings real
Ray; see docs/tasks.md).

    import ray

    @ray.remote
    def square(x):
        return x * x

    print(ray.get([square.remote(i) for i in range(10)]))

Standard library only (cloudpickle is vendored). See docs/tasks.md for what differs from Ray."""

# The version of Ray's API this library follows.
__version__ = "2.58.0"
__raysub__ = True

from . import exceptions  # noqa: E402
from ._context import (  # noqa: E402
    RuntimeContext,
    get_gpu_ids,
    get_runtime_context,
    init,
    is_initialized,
    shutdown,
)
from ._objects import get, put, wait  # noqa: E402
from ._refs import ObjectRef  # noqa: E402
from .actor import ActorClass, ActorHandle, exit_actor, kill, method  # noqa: E402
from .exceptions import (  # noqa: E402
    ActorDiedError,
    GetTimeoutError,
    ObjectLostError,
    RayError,
    RaysubError,
    RayTaskError,
    TaskError,
    WorkerCrashedError,
)
from .generators import DynamicObjectRefGenerator, ObjectRefGenerator  # noqa: E402
from .remote_function import RemoteFunction  # noqa: E402
from ._cluster import available_resources, cancel, cluster_resources, get_actor, nodes, timeline  # noqa: E402


def remote(*args, **options):
    """`@remote` or `@remote(num_cpus=..., num_gpus=..., memory=..., resources=..., ...)` on a
    function (a task) or a class (an actor)."""
    import inspect

    if len(args) == 1 and not options and callable(args[0]):
        target = args[0]
        return ActorClass(target, {}) if inspect.isclass(target) else RemoteFunction(target, {})
    if args:
        raise TypeError(
            "The @ray.remote decorator must be applied either with no arguments and no parentheses, for example "
            "'@ray.remote', or it must be applied using some of the arguments in the list of valid options, for "
            "example '@ray.remote(num_returns=2, resources={\"CustomResource\": 1})'."
        )

    def wrap(target):
        return ActorClass(target, options) if inspect.isclass(target) else RemoteFunction(target, options)

    return wrap


__all__ = [
    "ActorClass", "ActorHandle", "ObjectRef", "ObjectRefGenerator", "DynamicObjectRefGenerator", "RemoteFunction",
    "RuntimeContext", "available_resources", "cancel", "cluster_resources", "exceptions", "exit_actor", "get",
    "get_actor", "get_gpu_ids", "get_runtime_context", "init", "is_initialized", "kill", "method", "nodes", "put",
    "remote", "shutdown", "timeline", "wait", "ActorDiedError", "GetTimeoutError", "ObjectLostError", "RayError",
    "RaysubError", "RayTaskError", "TaskError", "WorkerCrashedError",
]
