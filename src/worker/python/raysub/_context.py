"""This process's link to its job's agent (`init`, `shutdown`) and what it knows about itself
(`get_runtime_context`): the job, the node, the task or actor it is running, its namespace."""

import contextvars
import os
import sys
import threading
import uuid

from . import exceptions
from ._conn import Connection

lock = threading.RLock()
conn = None
in_worker = False
# Set by an explicit init() (or by the first call that needed a connection: auto-init, as Ray does).
explicit_init = False
namespace = None
# runtime_env given to init(): its env_vars apply to every task and actor this job starts.
job_env_vars = {}



class Call:
    """What the task or actor call running in this context is (set by the worker for each call)."""

    __slots__ = ("task_id", "task_name", "resources", "script_dir", "placement_group")

    def __init__(self, task_id=None, task_name=None, resources=None, script_dir=None, placement_group=None):
        self.task_id = task_id
        self.task_name = task_name
        self.resources = resources or {}
        self.script_dir = script_dir
        self.placement_group = placement_group


_NO_CALL = Call()
# A context variable, not a thread-local: calls of a threaded actor each run in a thread, those of an
# async actor each in an asyncio task, and each sees its own.
_call = contextvars.ContextVar("raysub_call", default=_NO_CALL)


def current():
    return _call.get()


# A worker tells its agent when every call it runs is blocked in get or wait, so the agent lends
# the CPUs it holds to other work (and takes them back when one wakes).
_blocking = {"active": 0, "blocked": 0, "told": False}
_blocking_lock = threading.Lock()


def _tell_blocked():
    want = _blocking["active"] > 0 and _blocking["blocked"] >= _blocking["active"]
    if want != _blocking["told"] and conn is not None:
        _blocking["told"] = want
        conn.send({"t": "blocked" if want else "unblocked"})


def _count(key, delta):
    if not in_worker:
        return
    with _blocking_lock:
        _blocking[key] = max(0, _blocking[key] + delta)
        _tell_blocked()


def call_started():
    _count("active", 1)


def call_ended():
    _count("active", -1)


def blocked():
    _count("blocked", 1)


def unblocked():
    _count("blocked", -1)


def enter_call(call):
    return _call.set(call)


def leave_call(token):
    _call.reset(token)

process_actor = {"id": None, "handle": None, "restarted": False}

_INIT_KEYWORDS = {
    "num_cpus", "num_gpus", "resources", "labels", "object_store_memory", "local_mode", "ignore_reinit_error",
    "include_dashboard", "dashboard_host", "dashboard_port", "job_config", "configure_logging", "logging_level",
    "logging_format", "logging_config", "log_to_driver", "namespace", "runtime_env", "enable_resource_isolation",
    "cgroup_path", "system_reserved_cpu", "system_reserved_memory", "proxy_server_url",
    # Ray's hidden options: accepted, meaningless here.
    "_enable_object_reconstruction", "_plasma_directory", "object_spilling_directory", "_node_ip_address",
    "_driver_object_store_memory", "_memory", "_redis_username", "_redis_password", "_temp_dir",
    "_metrics_export_port", "_system_config", "_tracing_startup_hook", "_node_name", "_skip_env_hook",
}
init_options = {}


class RayContext(dict):
    """What `init` returns: address information, and a context manager that shuts down on exit."""

    def __init__(self, c):
        super().__init__(node_id=c.node_id, job_id=c.job_id, address=os.environ.get("RAYSUB_ADDRESS", ""),
                         gcs_address=os.environ.get("RAYSUB_ADDRESS", ""), webui_url=None, session_dir=None)
        self.address_info = dict(self)
        self.dashboard_url = os.environ.get("RAYSUB_ADDRESS", "")
        self.python_version = "%d.%d.%d" % sys.version_info[:3]
        from . import __version__

        self.ray_version = __version__
        self.ray_commit = "raysub"

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def disconnect(self):
        shutdown()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        shutdown()


def is_initialized():
    return conn is not None


def init(address=None, **kwargs):
    """Connect this process to its job's agent. Inside a raysub job it needs no arguments; Ray's
    keywords are accepted (`namespace` and `runtime_env` are honoured, `num_cpus` limits the job's
    tasks as a cluster of that size would; see docs/tasks.md)."""
    global conn, explicit_init, namespace
    if isinstance(address, str) and address.startswith("ray://"):
        raise exceptions.RaysubNotSupportedError(
            "Ray Client (ray.init(%r)) is not supported: submit the script as a job instead "
            "(raysub job submit --working-dir . -- python3 script.py); inside a job, ray.init() connects by itself" % address
        )
    if kwargs.get("allow_multiple"):
        raise RuntimeError("`allow_multiple` argument is passed to `ray.init` when the ray client is not used")
    if kwargs.get("storage"):
        raise RuntimeError("Cluster-wide storage configuration has been removed. The last Ray version supporting the `storage` argument is `ray==2.47`.")
    unknown = [k for k in kwargs if k not in _INIT_KEYWORDS]
    if unknown:
        raise RuntimeError("Unknown keyword argument(s): %s" % ", ".join(unknown))
    if kwargs.get("local_mode"):
        raise RuntimeError("`local_mode` is no longer supported. For interactive debugging consider using the Ray distributed debugger.")
    runtime_env = kwargs.get("runtime_env")
    if runtime_env is not None:
        from . import _runtime_env

        env_vars = _runtime_env.check(runtime_env, "ray.init()")
    else:
        env_vars = {}
    with lock:
        if conn is not None and explicit_init:
            if kwargs.get("ignore_reinit_error"):
                return RayContext(conn)
            raise RuntimeError(
                "Maybe you called ray.init twice by accident? This error can be suppressed by passing in "
                "'ignore_reinit_error=True' or by calling 'ray.shutdown()' prior to 'ray.init()'."
            )
        connect(address)
        explicit_init = True
        if kwargs.get("namespace") is not None:
            if not isinstance(kwargs["namespace"], str) or not kwargs["namespace"]:
                raise TypeError("namespace must be None or a non-empty string")
            namespace = kwargs["namespace"]
        job_env_vars.update(env_vars)
        init_options.clear()
        init_options.update({k: v for k, v in kwargs.items() if k in ("num_cpus", "num_gpus", "resources")})
        cpus = kwargs.get("num_cpus")
        if cpus is not None and not in_worker:
            if not isinstance(cpus, (int, float)) or cpus < 0:
                raise ValueError("num_cpus must be a non-negative number, got %r" % (cpus,))
            # This job's tasks hold at most `cpus` CPUs at once, on the driver's node.
            ask("limit", {"cpus": float(cpus)})
        return RayContext(conn)


def connect(address=None):
    global conn, namespace
    with lock:
        if conn is not None:
            return conn
        path = os.environ.get("RAYSUB_TASK_SOCKET")
        token = os.environ.get("RAYSUB_JOB_TOKEN")
        if not path or not token:
            where = " (address %r)" % address if address else ""
            raise exceptions.RayError(
                "ray.init()%s: this process is not running inside a raysub job, and connecting to a cluster "
                "from outside one is not supported; run the script as a job: raysub job submit --working-dir . "
                "-- python3 %s" % (where, os.path.basename(sys.argv[0] or "script.py"))
            )
        role = "worker" if in_worker else "driver"
        conn = Connection(path, token, role, os.environ.get("RAYSUB_WORKER_ID") if in_worker else None)
        if namespace is None:
            namespace = str(uuid.uuid4())
        return conn


def connection():
    """The connection, made on first use (auto-init, as Ray does)."""
    c = conn if conn is not None else connect()
    if c.closed is not None and not isinstance(c.closed, ConnectionError):
        raise exceptions.RaySystemError("lost the connection to the agent: %s" % c.closed)
    return c


def ask(op, fields=None, payload=()):
    """A request to the agent answered with ok or an error (raised as Ray's exception for it)."""
    c = connection()
    header, data = c.call(op, fields, payload)
    if not header.get("ok"):
        err = header.get("error") or {}
        kind = err.get("type", "")
        message = err.get("message", "")
        if kind == "ActorAlreadyExistsError":
            raise exceptions.ActorAlreadyExistsError(message)
        if kind == "ValueError":
            raise ValueError(message)
        raise exceptions.RaySystemError(message or kind)
    return header, data


def shutdown(_exiting_interpreter=False):
    """Disconnect from the agent (tasks already submitted keep running until the job ends)."""
    global conn, explicit_init
    with lock:
        if conn is not None:
            conn.close()
            conn = None
        explicit_init = False


def get_gpu_ids():
    """The GPUs this task or actor holds (as CUDA_VISIBLE_DEVICES says)."""
    v = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    return [int(x) for x in v.split(",") if x.strip().isdigit()]


class RuntimeContext:
    """What this process knows about where it runs (`ray.get_runtime_context()`)."""

    def __init__(self, c):
        self._conn = c

    def get_job_id(self):
        return self._conn.job_id

    @property
    def job_id(self):
        return self._conn.job_id

    def get_node_id(self):
        return self._conn.node_id

    @property
    def node_id(self):
        return self._conn.node_id

    def get_worker_id(self):
        return os.environ.get("RAYSUB_WORKER_ID") or "driver-%d" % os.getpid()

    def get_task_id(self):
        return current().task_id

    @property
    def task_id(self):
        return self.get_task_id()

    def get_task_name(self):
        return current().task_name

    def get_task_function_name(self):
        return current().task_name

    def get_actor_id(self):
        return process_actor["id"]

    @property
    def actor_id(self):
        return process_actor["id"]

    def get_actor_name(self):
        return process_actor.get("name")

    @property
    def current_actor(self):
        if process_actor["handle"] is None:
            raise RuntimeError("This method is only available in an actor.")
        return process_actor["handle"]

    @property
    def was_current_actor_reconstructed(self):
        return bool(process_actor.get("restarted"))

    @property
    def namespace(self):
        return namespace

    def get_assigned_resources(self):
        return dict(current().resources)

    def get_accelerator_ids(self):
        return {"GPU": [str(g) for g in get_gpu_ids()]}

    def get_placement_group_id(self):
        return current().placement_group

    @property
    def should_capture_child_tasks_in_placement_group(self):
        return False

    def get_runtime_env_string(self):
        import json

        return json.dumps({"env_vars": dict(job_env_vars)} if job_env_vars else {})

    @property
    def runtime_env(self):
        return {"env_vars": dict(job_env_vars)} if job_env_vars else {}

    @property
    def gcs_address(self):
        return os.environ.get("RAYSUB_ADDRESS", "")

    def get(self):
        return {"job_id": self.job_id, "node_id": self.node_id, "namespace": self.namespace, "task_id": self.task_id, "actor_id": self.actor_id}


def get_runtime_context():
    return RuntimeContext(connection())
