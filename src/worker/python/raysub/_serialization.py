"""How values become bytes and bytes become values: the one place the library encodes and decodes
objects (task arguments, results, `put` values, functions shipped by value, exceptions).

cloudpickle (vendored under `_vendor/cloudpickle`, its licence beside it) pickles functions and
classes defined in the driver script, lambdas and closures by value, as Ray does; everything an
importable module defines still travels by reference.

A value is pickle protocol 5. Large contiguous buffers it holds (numpy arrays, anything whose
pickling exports a PickleBuffer) travel out of band, after the pickle, each aligned to 64 bytes:

    b"RSB5" | u32 buffer count | u64 pickle length | (u64 offset, u64 length) per buffer
    | pickle | padding | buffer | padding | buffer ...            (little-endian)

A value without such buffers is the plain pickle. A large object is a file of the node's object
store (shared memory, or disk once that is full), written by the agent or, where the agent allows
it (RAYSUB_OBJECT_DIR), by this process itself; a reader maps it read-only and unpickles with the
buffers as views of the mapping, so a numpy array read from the store is not copied: it is a
read-only array over shared memory, as Ray's are."""

import errno
import mmap
import os
import pickle
import struct
import sys

from ._vendor import cloudpickle

PROTOCOL = 5
MAGIC = b"RSB5"
_HEAD = struct.Struct("<4sIQ")
_ENTRY = struct.Struct("<QQ")
ALIGN = 64
# Smaller buffers stay in the pickle: out of band they would cost more than the copy they save.
OUT_OF_BAND_MIN = 16 * 1024


def _aligned(n):
    return (n + ALIGN - 1) // ALIGN * ALIGN


def encode_parts(value):
    """A value's bytes as a list of buffers to send one after another (no copy of its large
    buffers); their total length is `sum(len(p) for p in parts)`."""
    bufs = []

    def out_of_band(pb):
        try:
            raw = pb.raw()
        except BufferError:  # not contiguous: in the pickle
            return True
        if raw.nbytes < OUT_OF_BAND_MIN:
            return True
        bufs.append(raw)
        return False

    data = cloudpickle.dumps(value, protocol=PROTOCOL, buffer_callback=out_of_band)
    if not bufs:
        return [data]
    head_len = _HEAD.size + _ENTRY.size * len(bufs)
    at = head_len + len(data)
    entries, parts = [], [None, data]
    for raw in bufs:
        start = _aligned(at)
        if start > at:
            parts.append(bytes(start - at))
        entries.append(_ENTRY.pack(start, raw.nbytes))
        parts.append(raw)
        at = start + raw.nbytes
    parts[0] = _HEAD.pack(MAGIC, len(bufs), len(data)) + b"".join(entries)
    return parts


def encode(value):
    """The bytes of a value."""
    parts = encode_parts(value)
    return parts[0] if len(parts) == 1 else b"".join(parts)


# Where the agent lets this job's processes write large objects into its shared-memory store
# themselves (then say so on the socket), saving the bytes' pass through the socket.
_direct = os.environ.get("RAYSUB_OBJECT_DIR") or None


def write_file(oid, parts):
    """Write object `oid`'s bytes into the node's store directly, where the agent allows it: True
    when written (the caller then tells the agent), False to send them on the socket instead."""
    global _direct
    if _direct is None:
        return False
    path = os.path.join(_direct, oid)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError:
        return False
    try:
        views = [v for v in (memoryview(p).cast("B") for p in parts) if v.nbytes]
        # The file's whole size first: the store's tmpfs (huge=within_size) then gives every whole
        # 2 MiB of it a huge page from the first byte written, the pickle's head included.
        os.ftruncate(fd, sum(v.nbytes for v in views))
        _write_all(fd, views)
        return True
    except OSError:
        _direct = None  # the store is full or gone: the socket from now on
        try:
            os.unlink(path)
        except OSError:
            pass
        return False
    finally:
        os.close(fd)


_IOV_MAX = 1024


def _write_all(fd, views):
    """Write `views` one after another with as few `writev` calls as the kernel allows (a short
    write goes on from where it stopped)."""
    i = 0
    while i < len(views):
        n = os.writev(fd, views[i:i + _IOV_MAX])
        if n == 0:
            raise OSError(errno.ENOSPC, "the object store took no more bytes")
        while i < len(views) and n >= views[i].nbytes:
            n -= views[i].nbytes
            i += 1
        if n:
            views[i] = views[i][n:]


def decode(data):
    """The value of bytes made by `encode` (bytes or any buffer); its out-of-band buffers are
    views of `data`."""
    view = memoryview(data)
    if view.nbytes < _HEAD.size or bytes(view[:4]) != MAGIC:
        return pickle.loads(view)
    _, n, plen = _HEAD.unpack_from(view, 0)
    table = _HEAD.size + _ENTRY.size * n
    if table + plen > view.nbytes:
        raise ValueError("a stored object is truncated (%d bytes)" % view.nbytes)
    bufs = []
    for i in range(n):
        off, length = _ENTRY.unpack_from(view, _HEAD.size + _ENTRY.size * i)
        if off < table + plen or off + length > view.nbytes:
            raise ValueError("a stored object is truncated (%d bytes)" % view.nbytes)
        bufs.append(view[off:off + length])
    return pickle.loads(view[table:table + plen], buffers=bufs)


def decode_file(path):
    """The value of an object the agent stored as a file, mapped read-only: its out-of-band
    buffers (numpy arrays...) are views of the mapping, which lives as long as they do (even once
    the file is freed)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            return pickle.loads(b"")
        m = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ)
    view = memoryview(m)
    if bytes(view[:4]) == MAGIC:
        return decode(view)
    try:
        return pickle.loads(view)
    finally:
        view.release()
        m.close()


def by_reference(obj, wrapper=None):
    """Whether a function or class can travel by name: an importable module (not the driver
    script, not registered with `cloudpickle.register_pickle_by_value`) holds it, or holds
    `wrapper` (the remote function or actor class made of it), under its qualified name. Else it
    travels by value."""
    module = getattr(obj, "__module__", None)
    name = getattr(obj, "__qualname__", None)
    if not module or not name or module in ("__main__", "__mp_main__") or "<" in name:
        return False
    mod = sys.modules.get(module)
    if mod is None or cloudpickle.cloudpickle._is_registered_pickle_by_value(mod):
        return False
    try:
        found = cloudpickle.cloudpickle._getattribute(mod, name)
    except (AttributeError, TypeError):
        return False
    return found is obj or (wrapper is not None and found is wrapper)
