"""What a remote traceback shows: where it ran, and the user's own frames only."""

import socket


def strip_internal(traceback_str):
    """Drop the library's own frames from a remote traceback (users see only theirs)."""
    out, skipping = [], False
    for line in traceback_str.strip().split("\n"):
        if line.startswith("  File ") and ("raysub/worker.py" in line or "raysub/_" in line):
            skipping = True
            continue
        if skipping and line.startswith("    "):
            continue
        skipping = False
        out.append(line)
    return out


_ip_cache = []


def ip():
    """This host's address, as a task's error names where it ran."""
    if not _ip_cache:
        try:
            _ip_cache.append(socket.gethostbyname(socket.gethostname()))
        except OSError:
            _ip_cache.append("127.0.0.1")
    return _ip_cache[0]
