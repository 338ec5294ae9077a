"""Atomic ``.npz`` checkpoints of a whole training state; never pickle.

A state is a nested structure of dicts, lists and tuples whose leaves are arrays (NumPy or CuPy), NumPy
scalars, Python numbers, strings, bools and None: both networks, both optimizers' moments, step counters,
the host RNG state, fixed noise, the run's config. ``save_checkpoint`` splits it in two:

- every array leaf becomes one member of the ``.npz`` file, named by its path (``generator/0.weight``);
- everything else becomes one JSON document, the *skeleton*, where each array leaf is replaced by a
  reference to its member. The JSON text is stored as a ``uint8`` array under ``__npgan_meta__``.

Python's ``json`` keeps integers exact however large they are, so a PCG64 bit-generator state (128-bit
integers) survives the round trip. Files are loaded with ``allow_pickle=False``: a checkpoint can never
run code.

Writes are atomic (``atomic_write``): the data goes to a temporary file in the destination directory,
is flushed to disk, then ``os.replace`` swaps it in. A crash mid-write leaves the previous checkpoint
intact and no partial file under the final name.
"""

from __future__ import annotations

import contextlib
import errno
import json
import numbers
import os
import secrets
import zipfile

import numpy as np

from npgan import backend

FORMAT_NAME = "npgan-checkpoint"
FORMAT_VERSION = 1
META_KEY = "__npgan_meta__"
MARKER = "__npgan__"  # the key that tags an encoded (non-JSON) node in the skeleton

__all__ = ["atomic_write", "load_checkpoint", "save_checkpoint"]


# -- atomic file writes ----------------------------------------------------------------------------------

@contextlib.contextmanager
def atomic_write(path):
    """``with atomic_write(path) as f:`` write binary data to ``f``; it appears at ``path`` only on success.

    The temporary file sits next to ``path`` (``os.replace`` is atomic only within one file system), is
    created with the usual permissions (``0o666`` minus the umask) and is removed when the body raises.
    Missing parent directories are created.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    while True:
        tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory):
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- encoding: nested state -> (JSON skeleton, {member name: array}) ---------------------------------------

_ALLOWED = "arrays, NumPy scalars, numbers, strings, bools, None, and dicts/lists/tuples of those"


def _encode(obj, path, arrays):
    where = "/".join(path) or "<root>"
    if backend.is_array(obj) or _is_tensor(obj):
        array = backend.asnumpy(obj.data if _is_tensor(obj) else obj)
        if array.dtype.hasobject:
            raise TypeError(f"checkpoint state at '{where}' is an object array, which would need pickle; "
                            f"store {_ALLOWED}")
        return {MARKER: "array", "key": _member_name(path, arrays, array)}
    if isinstance(obj, np.generic):
        if isinstance(obj, np.object_):
            raise TypeError(f"checkpoint state at '{where}' is a NumPy object scalar; store {_ALLOWED}")
        return {MARKER: "scalar", "key": _member_name(path, arrays, np.asarray(obj))}
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        return float(obj)
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            if MARKER in obj:
                raise ValueError(f"checkpoint state at '{where}' uses the reserved key '{MARKER}'")
            return {k: _encode(v, (*path, k), arrays) for k, v in obj.items()}
        # JSON objects only have string keys: keep other keys (optimizer state keyed by index) as pairs
        items = []
        for k, v in obj.items():
            if not (k is None or isinstance(k, (str, bool, numbers.Integral, numbers.Real))):
                raise TypeError(f"checkpoint state at '{where}' has a dict key of type {type(k).__name__}; "
                                "keys must be strings, numbers, bools or None")
            items.append([_encode(k, path, arrays), _encode(v, (*path, str(k)), arrays)])
        return {MARKER: "dict", "items": items}
    if isinstance(obj, list):
        return [_encode(v, (*path, str(i)), arrays) for i, v in enumerate(obj)]
    if isinstance(obj, tuple):
        return {MARKER: "tuple", "items": [_encode(v, (*path, str(i)), arrays) for i, v in enumerate(obj)]}
    raise TypeError(f"checkpoint state at '{where}' holds a {type(obj).__name__}; store {_ALLOWED}")


def _is_tensor(obj) -> bool:
    from npgan.autograd import Tensor  # noqa: PLC0415  (keep this module importable on its own)

    return isinstance(obj, Tensor)


def _member_name(path, arrays, array) -> str:
    """A readable, unique ``.npz`` member name for the array at ``path``."""
    base = "/".join(path) or "root"
    name, n = base, 1
    while name in arrays or name == META_KEY:
        name, n = f"{base}#{n}", n + 1
    arrays[name] = array
    return name


def _decode(node, arrays):
    if isinstance(node, list):
        return [_decode(v, arrays) for v in node]
    if not isinstance(node, dict):
        return node
    kind = node.get(MARKER)
    if kind is None:
        return {k: _decode(v, arrays) for k, v in node.items()}
    if kind in ("array", "scalar"):
        key = node.get("key")
        if key not in arrays:
            raise ValueError(f"checkpoint is corrupt: array member {key!r} referenced by the metadata is missing")
        array = arrays[key]
        return array[()] if kind == "scalar" else array
    if kind == "tuple":
        return tuple(_decode(v, arrays) for v in node["items"])
    if kind == "dict":
        return {_decode(k, arrays): _decode(v, arrays) for k, v in node["items"]}
    raise ValueError(f"checkpoint is corrupt: unknown node type {kind!r} in the metadata")


# -- public API --------------------------------------------------------------------------------------------

def save_checkpoint(path, state: dict):
    """Write ``state`` (a nested dict, see the module docstring) to ``path`` atomically; returns ``path``.

    The file name is used exactly as given (no ``.npz`` is appended). Arrays keep their dtype and shape;
    CuPy arrays are copied to the host. Raises TypeError naming the path inside ``state`` of any leaf
    that cannot be stored without pickle.
    """
    if not isinstance(state, dict):
        raise TypeError(f"save_checkpoint expects a dict as state, got {type(state).__name__}")
    arrays: dict[str, np.ndarray] = {}
    skeleton = _encode(state, (), arrays)
    meta = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "state": skeleton}
    meta_bytes = json.dumps(meta, separators=(",", ":")).encode("utf-8")
    arrays[META_KEY] = np.frombuffer(meta_bytes, dtype=np.uint8)
    with atomic_write(path) as f:
        np.savez(f, **arrays)
    return path


def load_checkpoint(path) -> dict:
    """Read a checkpoint written by ``save_checkpoint``: the same nested structure, arrays as NumPy.

    Raises FileNotFoundError when ``path`` does not exist and ValueError when it is not an npgan
    checkpoint (another file type, a foreign ``.npz``, a truncated or corrupt file).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, f"checkpoint not found: {path}", path)
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path} is not a readable npgan checkpoint (.npz): {err}") from err
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} holds a single .npy array, not an npgan checkpoint (.npz)")
    try:
        with loaded:
            arrays = {name: loaded[name] for name in loaded.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path} is a corrupt npgan checkpoint: {err}") from err
    if META_KEY not in arrays:
        raise ValueError(f"{path} is an .npz file but not an npgan checkpoint: it has no '{META_KEY}' entry "
                         f"(members: {sorted(arrays)[:8]})")
    try:
        meta = json.loads(arrays.pop(META_KEY).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: the checkpoint metadata is corrupt ({err})") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME or "state" not in meta:
        raise ValueError(f"{path}: the metadata does not describe an npgan checkpoint")
    if meta.get("version", 0) > FORMAT_VERSION:
        raise ValueError(f"{path} was written by a newer npgan (checkpoint format {meta['version']}, "
                         f"this version reads up to {FORMAT_VERSION}); upgrade npgan")
    return _decode(meta["state"], arrays)
