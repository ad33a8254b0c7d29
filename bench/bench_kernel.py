"""Benchmark vmkit.core.kernels.cosine_rows against a memory-bandwidth ceiling and numpy.

    .venv/bin/python bench/bench_kernel.py                 # 1,000,000 x 768 and 100,000 x 1536
    .venv/bin/python bench/bench_kernel.py --quick         # small shapes, runs in seconds
    .venv/bin/python bench/bench_kernel.py --n 200000 --d 1024 --repeat 3

GB/s counts the bytes of both float32 inputs read once. "vs stream" is the ratio to a numba
kernel that only reads both arrays and sums them, i.e. the best a one-pass kernel can do here.
Prints figures only; it checks nothing.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numba
import numpy as np
from numba import njit, prange

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled
from vmkit.core.kernels import cosine_rows

DEFAULT_SHAPES = [(1_000_000, 768), (100_000, 1536)]
QUICK_SHAPES = [(50_000, 768), (10_000, 1536)]
GEN_CHUNK_ROWS = 16_384


@njit(parallel=True, fastmath=True)
def stream_read(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # Same row loop as the cosine kernel with the cheapest possible body: the bandwidth ceiling.
    n, d = a.shape
    out = np.empty(n, dtype=np.float32)
    for i in prange(n):
        ra, rb = a[i], b[i]
        s = np.float32(0.0)
        for j in range(d):
            s += ra[j] + rb[j]
        out[i] = s
    return out


def numpy_einsum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    dot = np.einsum("ij,ij->i", a, b)
    return dot / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _chunk_cosine(a: np.ndarray, b: np.ndarray, out: np.ndarray, rows: int) -> None:
    # Rows sized so a chunk of a and b sits in L2: the three einsums re-read it from cache.
    for s in range(0, a.shape[0], rows):
        ac, bc = a[s : s + rows], b[s : s + rows]
        dot = np.einsum("ij,ij->i", ac, bc).astype(np.float64)
        na = np.einsum("ij,ij->i", ac, ac).astype(np.float64)
        nb = np.einsum("ij,ij->i", bc, bc).astype(np.float64)
        out[s : s + rows] = dot / np.sqrt(na * nb)


def _chunk_rows(d: int, itemsize: int = 4, budget: int = 256 * 1024) -> int:
    return max(1, budget // (d * itemsize))


def numpy_chunked(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.empty(a.shape[0], dtype=np.float64)
    _chunk_cosine(a, b, out, _chunk_rows(a.shape[1]))
    return out


def make_numpy_chunked_threads(workers: int) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    pool = ThreadPoolExecutor(workers)

    def numpy_chunked_threads(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        # einsum releases the GIL, so one contiguous slab per thread scales across cores.
        n = a.shape[0]
        out = np.empty(n, dtype=np.float64)
        bounds = np.linspace(0, n, workers + 1).astype(int)
        rows = _chunk_rows(a.shape[1])
        jobs = [
            pool.submit(_chunk_cosine, a[s:e], b[s:e], out[s:e], rows)
            for s, e in itertools.pairwise(bounds)
        ]
        for job in jobs:
            job.result()
        return out

    return numpy_chunked_threads


def make_data(n: int, d: int, seed: int) -> np.ndarray:
    # Generated in place chunk by chunk: no float64 temporaries of the full array.
    rng = np.random.default_rng(seed)
    a = np.empty((n, d), dtype=np.float32)
    for s in range(0, n, GEN_CHUNK_ROWS):
        rng.standard_normal(out=a[s : s + GEN_CHUNK_ROWS], dtype=np.float32)
    return a


def best_times(
    methods: dict[str, Callable], a: np.ndarray, b: np.ndarray, repeat: int
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    # Warm up every method first (JIT compile, page faults, thread pools), then time them
    # round-robin so a burst of outside load hits all methods alike, not one of them.
    results = {name: fn(a, b) for name, fn in methods.items()}
    best = dict.fromkeys(methods, float("inf"))
    for _ in range(repeat):
        for name, fn in methods.items():
            t0 = time.perf_counter()
            fn(a, b)
            best[name] = min(best[name], time.perf_counter() - t0)
    return best, results


def print_env() -> None:
    print(f"numpy {np.__version__}, numba {numba.__version__}, cpus {os.cpu_count()}")
    print(f"numba threads: {numba.get_num_threads()} (layer: {numba.threading_layer()})")
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '<unset>')}")
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        print("threadpoolctl: not installed")
        return
    for info in threadpool_info():
        print(
            f"threadpool: {info.get('internal_api')} {info.get('version')} "
            f"threads={info.get('num_threads')} arch={info.get('architecture')}"
        )


def bench_shape(n: int, d: int, repeat: int, methods: dict[str, Callable]) -> None:
    a, b = make_data(n, d, seed=1), make_data(n, d, seed=2)
    gb = (a.nbytes + b.nbytes) / 1e9
    print(f"\nN={n:,} D={d} float32: {gb:.2f} GB read per call, best of {repeat}")
    print(f"{'method':<28}{'time ms':>10}{'GB/s':>9}{'vs stream':>11}{'max|diff| vs vmkit':>20}")
    times, results = best_times(methods, a, b, repeat)
    ref, stream = results["vmkit cosine_rows (numba)"], times["stream read (numba)"]
    for name, t in times.items():
        diff = "" if name.startswith("stream") else f"{np.max(np.abs(results[name] - ref)):.1e}"
        print(f"{name:<28}{t * 1e3:>10.1f}{gb / t:>9.2f}{stream / t:>10.0%}{diff:>20}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, help="rows (with --d: bench this one shape)")
    p.add_argument("--d", type=int, help="dimensions")
    p.add_argument("--quick", action="store_true", help="small shapes, seconds not minutes")
    p.add_argument("--repeat", type=int, default=5, help="timed runs per method (best is kept)")
    args = p.parse_args()
    if (args.n is None) != (args.d is None):
        p.error("--n and --d go together")
    shapes = [(args.n, args.d)] if args.n else QUICK_SHAPES if args.quick else DEFAULT_SHAPES

    stream_read(*[np.ones((2, 2), np.float32)] * 2)  # start numba's pool before printing it
    print_env()
    methods: dict[str, Callable[..., np.ndarray]] = {
        "vmkit cosine_rows (numba)": cosine_rows,
        "stream read (numba)": stream_read,
        "numpy einsum + norm": numpy_einsum,
        "numpy chunked (L2)": numpy_chunked,
        f"numpy chunked x{numba.get_num_threads()} threads": make_numpy_chunked_threads(
            numba.get_num_threads()
        ),
    }
    for n, d in shapes:
        bench_shape(n, d, args.repeat, methods)


if __name__ == "__main__":
    main()
