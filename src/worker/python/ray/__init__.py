"""`ray` inside a raysub job.

When the job's environment brings the real Ray (its runtime env installs it, or it is anywhere
else on sys.path), `import ray` loads that one. Otherwise `ray` is raysub's in-job library under
Ray's names, so programs written for Ray's core API run unchanged. Set the job's env var
`RAYSUB_RAY_MODULE=0` to have no `ray` module at all from raysub. See docs/tasks.md."""

import importlib.machinery as _machinery
import importlib.util as _util
import os as _os
import sys as _sys


def _real_ray():
    """The spec of another `ray` package on sys.path (this directory left out), or None."""
    here = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
    paths = []
    for p in _sys.path:
        try:
            if _os.path.abspath(p or _os.getcwd()) != here:
                paths.append(p)
        except (OSError, TypeError, ValueError):
            continue
    spec = _machinery.PathFinder.find_spec("ray", paths)
    if spec is None or spec.loader is None or not spec.origin or not _os.path.isfile(spec.origin):
        return None
    return spec


_spec = _real_ray()
if _spec is not None:
    # Hand over to the real Ray: the import statement returns what sys.modules holds when it ends.
    _real = _util.module_from_spec(_spec)
    _sys.modules["ray"] = _real
    try:
        _spec.loader.exec_module(_real)
    except BaseException:
        _sys.modules.pop("ray", None)
        raise
elif _os.environ.get("RAYSUB_RAY_MODULE", "1").strip().lower() in ("0", "false", "no", "off"):
    _sys.modules.pop("ray", None)
    raise ModuleNotFoundError("No module named 'ray' (raysub's ray module is turned off by RAYSUB_RAY_MODULE=0)", name="ray")
else:
    from raysub import *  # noqa: F401,F403
    from raysub import (  # noqa: F401
        __version__,
        _context,
        exceptions,
        ObjectRef,
        ObjectRefGenerator,
        DynamicObjectRefGenerator,
        available_resources,
        cancel,
        cluster_resources,
        get,
        get_actor,
        get_gpu_ids,
        get_runtime_context,
        init,
        is_initialized,
        kill,
        method,
        nodes,
        put,
        remote,
        shutdown,
        timeline,
        wait,
    )
    from raysub._vendor import cloudpickle  # noqa: F401

    from . import actor, remote_function, runtime_context, util  # noqa: F401,E402

    __raysub__ = True

    def __getattr__(name):
        if name in ("data", "workflow", "autoscaler", "tune", "train", "serve", "rllib", "air", "dag", "job_submission", "client", "llm"):
            import importlib

            return importlib.import_module("ray." + name)
        raise AttributeError("module 'ray' has no attribute %r" % name)
