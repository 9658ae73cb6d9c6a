"""runtime_env given inside a job (to `init`, or per task or actor in `.options`). The job's own
runtime env (given at submit) is already in place in every process of the job; here:

- `env_vars` are honoured: set for the task (restored after it) or for the actor's lifetime;
- `working_dir` naming the job's own working dir is accepted (it already is every task's cwd);
- `pip` and `uv` are accepted when every requirement is already installed in the job's
  environment (given at submit, where envs are built once per node and cached);
- `config`, `excludes` and `eager_install` are accepted;
- anything else raises RaysubNotSupportedError naming the alternative."""

import importlib.metadata
import os
import re

from . import exceptions

_ACCEPTED = {"env_vars", "working_dir", "pip", "uv", "config", "excludes", "eager_install"}
_REQ = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(?:(==|===)\s*([^\s;,]+))?")


def _unsupported(where, field, why):
    return exceptions.RaysubNotSupportedError(
        "runtime_env field %r in %s %s: give it to the job instead "
        "(raysub job submit --runtime-env-json '{\"%s\": ...}'), where it is set up once per node "
        "and applies to every task and actor of the job" % (field, where, why, field)
    )


def _installed(requirement):
    m = _REQ.match(requirement)
    if not m:
        return False
    try:
        version = importlib.metadata.version(m.group(1))
    except importlib.metadata.PackageNotFoundError:
        return False
    return m.group(3) is None or version == m.group(3)


def check(runtime_env, where):
    """The env_vars a runtime_env asks for, or an error saying what cannot be honoured here."""
    if hasattr(runtime_env, "to_dict"):
        runtime_env = runtime_env.to_dict()
    if not isinstance(runtime_env, dict):
        raise TypeError("runtime_env must be a dict, got %r" % type(runtime_env).__name__)
    for field, value in runtime_env.items():
        if value is None:
            continue
        if field not in _ACCEPTED:
            raise _unsupported(where, field, "cannot be set up from inside a running job")
        if field == "working_dir":
            if not isinstance(value, str) or os.path.realpath(value) != os.path.realpath(os.getcwd()):
                raise _unsupported(where, field, "must be the job's own working dir (%r is not)" % (value,))
        elif field in ("pip", "uv"):
            reqs = value.get("packages", []) if isinstance(value, dict) else value
            if isinstance(reqs, str) or not all(isinstance(r, str) and _installed(r) for r in reqs):
                raise _unsupported(where, field, "names packages this job's environment does not have installed")
    env_vars = runtime_env.get("env_vars") or {}
    if not isinstance(env_vars, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env_vars.items()):
        raise TypeError("runtime_env['env_vars'] must be a dict of strings to strings")
    return dict(env_vars)
