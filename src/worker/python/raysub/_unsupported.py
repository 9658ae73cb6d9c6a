"""The parts of Ray raysub does not provide: importing them raises RaysubNotSupportedError (a
NotImplementedError, and an ImportError so that `try: import ray.data` probes fall back), naming
what to use instead."""

from .exceptions import RaysubNotSupportedError

_REAL_RAY = "add the real Ray to the job's runtime env (pip: [\"ray[%s]\"]), whose `ray` then takes precedence"

ALTERNATIVES = {
    "ray.data": ("Ray Data", "read and transform data inside tasks (pandas, pyarrow, ...) fanned out with @ray.remote; or " + _REAL_RAY % "data"),
    "ray.tune": ("Ray Tune", "run each trial as a task or actor (or with ray.util.multiprocessing.Pool); or " + _REAL_RAY % "tune"),
    "ray.train": ("Ray Train", "run training as a raysub job holding its GPUs (--entrypoint-num-gpus), or torch.distributed started from tasks; or " + _REAL_RAY % "train"),
    "ray.serve": ("Ray Serve", "serve HTTP from a long-running job (e.g. FastAPI and uvicorn); or " + _REAL_RAY % "serve"),
    "ray.rllib": ("RLlib", _REAL_RAY % "rllib"),
    "ray.air": ("Ray AIR", _REAL_RAY % "air"),
    "ray.workflow": ("Ray Workflows", "chain tasks by passing ObjectRefs, and persist results yourself"),
    "ray.dag": ("Ray DAGs and compiled graphs", "call .remote() and pass ObjectRefs between tasks"),
    "ray.job_submission": ("the Job Submission client inside a job", "submit jobs from outside with `raysub job submit` or raysub's HTTP API"),
    "ray.autoscaler": ("the Ray autoscaler", "add nodes by starting raysub agents (`raysub start --address ...`)"),
    "ray.client": ("Ray Client", "submit the script as a job: raysub job submit --working-dir . -- python3 script.py"),
    "ray.util.client": ("Ray Client", "submit the script as a job: raysub job submit --working-dir . -- python3 script.py"),
    "ray.util.collective": ("ray.util.collective", "use torch.distributed or another collective library from tasks"),
    "ray.util.dask": ("Dask on Ray", "run Dask's own scheduler in tasks; or " + _REAL_RAY % "default"),
    "ray.util.spark": ("Ray on Spark", "run raysub agents on the machines instead"),
    "ray.util.state": ("the Ray state API", "`raysub job status` and `raysub status` show a job's tasks, actors and nodes"),
    "ray.util.metrics": ("Ray metrics", "export metrics from the job yourself (e.g. prometheus_client)"),
    "ray.llm": ("Ray LLM", _REAL_RAY % "llm"),
}


def fail(module_name):
    what, instead = ALTERNATIVES[module_name]
    raise RaysubNotSupportedError("%s (%s) is not supported inside raysub jobs: %s." % (what, module_name, instead), name=module_name)
