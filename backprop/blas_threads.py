"""Best-effort control of how many threads NumPy's OpenBLAS uses, without extra dependencies.

The engine runs its own data-parallel workers for large batches (see `backprop.parallel`); inside
them each matrix product must run on one thread, or OpenBLAS's threads and ours fight for the same
cores. NumPy's wheels bundle OpenBLAS under a prefixed name (scipy-openblas), so the library that
is already loaded in this process is found through /proc/self/maps and its set/get functions
through ctypes. Anything unexpected (another BLAS, no /proc, a missing symbol) leaves the BLAS as
it is: `blas_threads()` then answers None ("unknown") and `set_blas_threads()` does nothing.
"""

import ctypes
import threading

import numpy  # noqa: F401  (loads the BLAS whose threads this module controls)

SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
           "openblas_set_num_threads64_", "openblas_set_num_threads")
GETTERS = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
           "openblas_get_num_threads64_", "openblas_get_num_threads")

_lock = threading.Lock()
_found = None  # (library path, setter, getter) once looked up; () when nothing was found


def _loaded_openblas_paths():
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split(None, 5)[-1].strip() for line in maps if "openblas" in line.lower()}
    except OSError:
        return []
    return sorted(p for p in paths if p.startswith("/") and ".so" in p)


def _functions():
    global _found
    with _lock:
        if _found is None:
            _found = ()
            for path in _loaded_openblas_paths():
                try:
                    library = ctypes.CDLL(path)
                except OSError:
                    continue
                setter = next((getattr(library, n) for n in SETTERS if hasattr(library, n)), None)
                getter = next((getattr(library, n) for n in GETTERS if hasattr(library, n)), None)
                if setter is not None and getter is not None:
                    setter.argtypes, setter.restype = [ctypes.c_int], None
                    getter.argtypes, getter.restype = [], ctypes.c_int
                    _found = (path, setter, getter)
                    break
        return _found


def blas_threads():
    """How many threads OpenBLAS uses now, or None when unknown (not OpenBLAS, not found)."""
    try:
        found = _functions()
        return int(found[2]()) if found else None
    except Exception:  # best effort: never let a BLAS query break training
        return None


def set_blas_threads(n):
    """Ask OpenBLAS for n threads (process-wide); returns the count now in use, or None."""
    try:
        found = _functions()
        if not found:
            return None
        found[1](max(1, int(n)))
        return int(found[2]())
    except Exception:  # best effort, as above
        return None


def blas_library():
    """Path of the OpenBLAS library being controlled, or None."""
    try:
        found = _functions()
    except Exception:
        return None
    return found[0] if found else None
