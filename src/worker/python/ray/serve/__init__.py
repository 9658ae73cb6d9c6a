"""ray.serve is not part of raysub: importing it says what to use instead."""
from raysub._unsupported import fail

fail("ray.serve")
