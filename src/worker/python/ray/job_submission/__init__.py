"""ray.job_submission is not part of raysub: importing it says what to use instead."""
from raysub._unsupported import fail

fail("ray.job_submission")
