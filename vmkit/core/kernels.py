"""Row-wise vector kernels (cosine, finiteness, normalisation, max diff).

Each public function dispatches to a parallel numba kernel when numba is importable and to its
``*_numpy`` twin otherwise; the twins are the naive references the tests compare against.
Self-contained on purpose: numba's ``cache=True`` freezes module globals into the cached machine
code and would not notice edits to other vmkit modules.

Inputs are 2-D ``(n, d)`` floating arrays and are never written to. ``cosine_rows`` and
``normalize_rows`` work on float32 (float16 is widened exactly, float64 rounded); the other kernels
keep float32/float64 as they are and widen anything else to float64.
"""

from __future__ import annotations

import math

import numpy as np

try:
    from numba import njit, prange

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised by the fallback test
    HAVE_NUMBA = False
    prange = range  # type: ignore[misc,assignment]

    def njit(*args, **kwargs):  # type: ignore[no-redef]
        return args[0] if args and callable(args[0]) else (lambda f: f)


# reassoc lets LLVM vectorise the reductions, contract allows FMA. Not fastmath=True: its
# nnan/ninf flags would let LLVM fold away the isfinite tests that decide NaN rows.
_FM = {"reassoc", "contract"}


def _check(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n, d), got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.floating):
        raise TypeError(f"{name} must be a floating array, got dtype {a.dtype}")
    return a


def _check_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = _check(a, "a"), _check(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: a has shape {a.shape}, b has shape {b.shape}")
    return a, b


def _as_f32(a: np.ndarray) -> np.ndarray:
    # Returns the caller's array itself when it is already C-contiguous float32 (no copy);
    # safe because no kernel writes to its inputs. float64 beyond float32 range becomes Inf
    # (documented: the row's result is then NaN), so numpy's overflow warning is noise here.
    with np.errstate(over="ignore"):
        return np.ascontiguousarray(a, dtype=np.float32)


def _as_native(a: np.ndarray) -> np.ndarray:
    dtype = a.dtype if a.dtype in (np.float32, np.float64) else np.float64
    return np.ascontiguousarray(a, dtype=dtype)


# ---------------------------------------------------------------- numba kernels


@njit(parallel=True, cache=True, fastmath=_FM)
def _cosine_nb(a, b):
    n, d = a.shape
    out = np.empty(n, dtype=np.float64)
    for i in prange(n):
        ra, rb = a[i], b[i]
        dot = na = nb = 0.0
        # One fused pass. Widen before multiplying (np.float64, not float(): numba's float()
        # keeps float32) so products are exact and cannot overflow; then a NaN/Inf element is
        # exactly what makes na or nb non-finite, and no per-element test is needed.
        for j in range(d):
            x, y = np.float64(ra[j]), np.float64(rb[j])
            dot += x * y
            na += x * x
            nb += y * y
        if not (math.isfinite(na) and math.isfinite(nb)):
            out[i] = np.nan
        elif na == 0.0 or nb == 0.0:
            out[i] = 1.0 if na == nb else 0.0
        else:
            out[i] = min(1.0, max(-1.0, dot / math.sqrt(na * nb)))
    return out


# The two row checks run once per batch (about 1000 rows): serial, since starting threads
# costs more than the scan (0.1 ms serial against 1-5 ms parallel, measured).
@njit(cache=True, fastmath=_FM)
def _nonfinite_nb(a):
    # Branch-free so it vectorizes: x * 0 is 0 for finite x and NaN for NaN or +-Inf, and
    # without the nnan/ninf flags LLVM may not fold it away.
    n, d = a.shape
    out = np.zeros(n, dtype=np.bool_)
    for i in range(n):
        s = a.dtype.type(0)
        for j in range(d):
            s += a[i, j] * 0
        out[i] = s != s
    return out


@njit(cache=True, fastmath=_FM)
def _zero_nb(a):
    # A sum of absolute values is 0 only if every element is (+-0); NaN makes it NaN, not 0.
    n, d = a.shape
    out = np.zeros(n, dtype=np.bool_)
    for i in range(n):
        s = a.dtype.type(0)
        for j in range(d):
            s += abs(a[i, j])
        out[i] = s == 0
    return out


@njit(parallel=True, cache=True, fastmath=_FM)
def _normalize_nb(a):
    n, d = a.shape
    out = np.zeros((n, d), dtype=np.float32)
    for i in prange(n):
        s = 0.0
        for j in range(d):
            x = np.float64(a[i, j])
            s += x * x
        # float64 norm rounded to float32, then a float32 divide: what numpy's float32 path does,
        # minus its float32 overflow/underflow in x*x.
        nrm = np.float32(math.sqrt(s))
        if nrm != 0:  # zero rows stay zero; NaN != 0 so NaN rows become NaN
            for j in range(d):
                out[i, j] = a[i, j] / nrm
    return out


@njit(parallel=True, cache=True)
def _max_abs_diff_nb(a, b):
    n, d = a.shape
    out = np.zeros(n, dtype=np.float64)
    for i in prange(n):
        m = 0.0
        for j in range(d):
            diff = abs(np.float64(a[i, j]) - np.float64(b[i, j]))
            if diff > m:
                m = diff
            elif math.isnan(diff):  # `>` ignores NaN, so catch it explicitly
                m = np.nan
                break
        out[i] = m
    return out


# ---------------------------------------------------------------- numpy twins


def cosine_rows_numpy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = _check_pair(a, b)
    a64, b64 = _as_f32(a).astype(np.float64), _as_f32(b).astype(np.float64)
    with np.errstate(all="ignore"):
        dot, na, nb = (a64 * b64).sum(1), (a64 * a64).sum(1), (b64 * b64).sum(1)
        out = np.clip(dot / np.sqrt(na * nb), -1.0, 1.0)
    out[(na == 0) != (nb == 0)] = 0.0
    out[(na == 0) & (nb == 0)] = 1.0
    out[~(np.isfinite(na) & np.isfinite(nb))] = np.nan
    return out


def nonfinite_rows_numpy(a: np.ndarray) -> np.ndarray:
    return ~np.isfinite(_check(a, "a")).all(axis=1)


def zero_rows_numpy(a: np.ndarray) -> np.ndarray:
    return (_check(a, "a") == 0).all(axis=1)


def normalize_rows_numpy(a: np.ndarray) -> np.ndarray:
    a32 = _as_f32(_check(a, "a"))
    with np.errstate(all="ignore"):
        nrm = np.sqrt(np.square(a32, dtype=np.float64).sum(1, keepdims=True)).astype(np.float32)
        out = np.zeros(a32.shape, dtype=np.float32)
        np.divide(a32, nrm, out=out, where=nrm != 0)
    return out


def max_abs_diff_rows_numpy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = _check_pair(a, b)
    with np.errstate(all="ignore"):
        diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return diff.max(axis=1, initial=0.0)


# ---------------------------------------------------------------- public API


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two ``(n, d)`` arrays, as float64 of shape ``(n,)``.

    Computed from float32 copies (float64 inputs are rounded) with float64 accumulation.
    Per row: NaN if either row holds a NaN or Inf; 1.0 if both rows are all zero (identical);
    0.0 if exactly one is all zero; otherwise dot / (|a| |b|) clipped to [-1, 1].
    Raises ValueError if the shapes differ or are not 2-D.
    """
    a, b = _check_pair(a, b)
    return _cosine_nb(_as_f32(a), _as_f32(b)) if HAVE_NUMBA else cosine_rows_numpy(a, b)


def nonfinite_rows(a: np.ndarray) -> np.ndarray:
    """Boolean ``(n,)``: True where the row holds a NaN or +-Inf (float64 is checked as is)."""
    a = _check(a, "a")
    return _nonfinite_nb(_as_native(a)) if HAVE_NUMBA else nonfinite_rows_numpy(a)


def zero_rows(a: np.ndarray) -> np.ndarray:
    """Boolean ``(n,)``: True where every element of the row is zero (-0.0 counts, NaN not)."""
    a = _check(a, "a")
    return _zero_nb(_as_native(a)) if HAVE_NUMBA else zero_rows_numpy(a)


def normalize_rows(a: np.ndarray) -> np.ndarray:
    """New float32 array of unit rows, ``v / norm(v)`` in float32 as numpy does it.

    Zero rows stay zero. As with numpy, a NaN row comes out all NaN and a row with Inf gives
    NaN at the Inf slots and 0 elsewhere. float64 inputs are rounded to float32 first.
    """
    a = _check(a, "a")
    return _normalize_nb(_as_f32(a)) if HAVE_NUMBA else normalize_rows_numpy(a)


def max_abs_diff_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Float64 ``(n,)``: per-row max ``|a - b|``; NaN if either row has a NaN (or Inf - Inf)."""
    a, b = _check_pair(a, b)
    if HAVE_NUMBA:
        return _max_abs_diff_nb(_as_native(a), _as_native(b))
    return max_abs_diff_rows_numpy(a, b)
