"""vmkit.core.kernels: each numba kernel against its numpy twin, plus the documented edge cases.

Run twice: normally, and with NUMBA_DISABLE_JIT=1 (kernels then run as plain Python).
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

try:
    from vmkit.core import kernels as K
except ModuleNotFoundError as exc:  # uninstalled checkout: pytest puts tests/unit on sys.path
    if exc.name != "vmkit":
        raise
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from vmkit.core import kernels as K

# Under NUMBA_DISABLE_JIT the kernels do numpy *scalar* arithmetic on NaN/Inf, which warns.
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered in scalar")

F16, F32, F64 = np.float16, np.float32, np.float64
DTYPES = [F16, F32, F64]
SHAPES = [(1, 1), (1, 768), (37, 5), (200, 64)]
COS_TOL = {"rtol": 1e-12, "atol": 1e-12}


def rand(shape: tuple[int, int], dtype=F32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def assert_cos_rows(got: np.ndarray, a: np.ndarray, b: np.ndarray, rows) -> None:
    """Check the given rows against an exact fsum formula on the float32-rounded inputs."""
    for i in rows:
        x, y = a[i].astype(F32).astype(F64), b[i].astype(F32).astype(F64)
        dot, nx, ny = (math.fsum(v) for v in (x * y, x * x, y * y))
        assert got[i] == pytest.approx(dot / math.sqrt(nx * ny), rel=1e-12, abs=1e-12)


# ---------------------------------------------------------------- cosine_rows


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_cosine_matches_numpy_and_exact(dtype, shape):
    a, b = rand(shape, dtype, 1), rand(shape, dtype, 2)
    got = K.cosine_rows(a, b)
    assert got.dtype == F64 and got.shape == (shape[0],)
    np.testing.assert_allclose(got, K.cosine_rows_numpy(a, b), **COS_TOL)
    assert_cos_rows(got, a, b, range(shape[0]))


def test_cosine_known_values():
    a = np.array([[1, 2, 3], [1, 0, 0], [1, 1, 0], [3, 4, 0]], dtype=F32)
    b = np.array([[2, 4, 6], [0, 1, 0], [-1, -1, 0], [4, 3, 0]], dtype=F32)
    np.testing.assert_allclose(K.cosine_rows(a, b), [1.0, 0.0, -1.0, 24 / 25], rtol=1e-15)


def test_cosine_clipped_to_unit_interval():
    # Parallel rows whose dot / sqrt(|a|^2 |b|^2) rounds to 1.0000000000000002 unclipped.
    a = np.array(
        [[-0.8523900508880615, -0.37731674313545227, 0.1382002979516983, 1.5079095363616943]],
        dtype=F32,
    )
    b = np.array(
        [[-5.689707279205322, -2.5185909271240234, 0.9224876165390015, 10.065302848815918]],
        dtype=F32,
    )
    for fn in (K.cosine_rows, K.cosine_rows_numpy):
        np.testing.assert_array_equal(fn(np.vstack([a, a]), np.vstack([b, -b])), [1.0, -1.0])


def test_cosine_accumulates_in_float64():
    # Long rows: float32 accumulation would be off by ~1e-7, far beyond this tolerance.
    a, b = rand((4, 8192), F32, 3) + 3, rand((4, 8192), F32, 4) + 3
    assert_cos_rows(K.cosine_rows(a, b), a, b, range(4))


@pytest.mark.parametrize("dtype", DTYPES)
def test_cosine_zero_rows(dtype):
    a, b = rand((6, 16), dtype, 5), rand((6, 16), dtype, 6)
    a[1] = 0
    b[2] = 0
    a[3] = b[3] = 0
    b[4] = -0.0
    got = K.cosine_rows(a, b)
    assert got[1] == 0.0 and got[2] == 0.0 and got[4] == 0.0
    assert got[3] == 1.0
    assert_cos_rows(got, a, b, [0, 5])
    np.testing.assert_array_equal(K.cosine_rows_numpy(a, b)[1:5], [0.0, 0.0, 1.0, 0.0])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", DTYPES)
def test_cosine_nonfinite_rows_are_nan(bad, dtype):
    a, b = rand((8, 12), dtype, 7), rand((8, 12), dtype, 8)
    a[1, 3] = bad  # a side only
    b[2, 0] = bad  # b side only
    a[3, 5] = b[3, 5] = bad  # both sides, same slot
    a[4, 2], b[4, 2] = bad, 0  # Inf * 0
    a[5, 7], b[5] = bad, 0  # against an all-zero row: NaN wins over the zero rule
    a[6] = bad  # whole row
    for fn in (K.cosine_rows, K.cosine_rows_numpy):
        got = fn(a, b)
        assert np.isnan(got[1:7]).all(), (fn.__name__, got)
        assert np.isfinite(got[[0, 7]]).all()
        assert_cos_rows(got, a, b, [0, 7])


def test_cosine_float64_overflowing_float32_is_nan():
    # Documented: inputs are rounded to float32, so 1e300 becomes Inf and the row NaN.
    a, b = rand((2, 4), F64, 9), rand((2, 4), F64, 10)
    a[0, 0] = 1e300
    got = K.cosine_rows(a, b)
    assert np.isnan(got[0]) and np.isfinite(got[1])


@pytest.mark.parametrize("da,db", [(F16, F32), (F32, F64), (F64, F16), (F16, F64)])
def test_cosine_mixed_dtypes(da, db):
    a, b = rand((30, 24), da, 11), rand((30, 24), db, 12)
    got = K.cosine_rows(a, b)
    np.testing.assert_array_equal(got, K.cosine_rows(a.astype(F32), b.astype(F32)))
    np.testing.assert_allclose(got, K.cosine_rows_numpy(a, b), **COS_TOL)


def test_cosine_non_contiguous_inputs():
    a, b = rand((20, 32), F32, 13), rand((20, 32), F32, 14)
    expected = K.cosine_rows(a[:, ::2].copy(), b[:, ::2].copy())
    np.testing.assert_array_equal(K.cosine_rows(a[:, ::2], b[:, ::2]), expected)
    fa, fb = np.asfortranarray(a), np.asfortranarray(b)
    np.testing.assert_array_equal(K.cosine_rows(fa, fb), K.cosine_rows(a, b))


def test_float32_contiguous_input_is_not_copied():
    # The hot path: no conversion pass over multi-GB float32 inputs.
    a = rand((4, 8), F32)
    assert K._as_f32(a) is a
    assert K._as_f32(a.astype(F64)) is not a and K._as_f32(a[:, ::2]).flags.c_contiguous


def test_cosine_empty_and_zero_width():
    got = K.cosine_rows(np.empty((0, 8), F32), np.empty((0, 8), F32))
    assert got.shape == (0,) and got.dtype == F64
    assert K.cosine_rows_numpy(np.empty((0, 8), F32), np.empty((0, 8), F32)).shape == (0,)
    # d == 0: both rows are (vacuously) all zero, hence identical.
    np.testing.assert_array_equal(K.cosine_rows(np.empty((3, 0)), np.empty((3, 0))), [1.0] * 3)
    np.testing.assert_array_equal(K.cosine_rows_numpy(np.empty((2, 0)), np.empty((2, 0))), [1, 1])


@pytest.mark.parametrize(
    "fn", [K.cosine_rows, K.cosine_rows_numpy, K.max_abs_diff_rows, K.max_abs_diff_rows_numpy]
)
def test_shape_mismatch(fn):
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(3, 5\)"):
        fn(np.zeros((3, 4), F32), np.zeros((3, 5), F32))
    with pytest.raises(ValueError, match=r"\(4, 4\).*\(3, 4\)"):
        fn(np.zeros((4, 4), F32), np.zeros((3, 4), F32))


@pytest.mark.parametrize(
    "fn", [K.cosine_rows, K.nonfinite_rows, K.zero_rows, K.normalize_rows, K.max_abs_diff_rows]
)
def test_rejects_bad_rank_and_dtype(fn):
    nargs = 2 if fn in (K.cosine_rows, K.max_abs_diff_rows) else 1
    with pytest.raises(ValueError, match="2-D"):
        fn(*[np.zeros(4, F32)] * nargs)
    with pytest.raises(TypeError, match="floating"):
        fn(*[np.zeros((2, 4), np.int64)] * nargs)


# ---------------------------------------------------------------- inputs are never written


@pytest.mark.parametrize("dtype", DTYPES)
def test_inputs_not_modified(dtype):
    a, b = rand((9, 10), dtype, 15), rand((9, 10), dtype, 16)
    a[2], b[3], a[4, 1], b[5, 2] = 0, 0, np.nan, np.inf
    a0, b0 = a.copy(), b.copy()
    a.setflags(write=False)  # any write into a read-only input raises
    b.setflags(write=False)
    outputs = [
        K.cosine_rows(a, b),
        K.max_abs_diff_rows(a, b),
        K.normalize_rows(a),
        K.nonfinite_rows(a),
        K.zero_rows(b),
    ]
    outputs += [K.cosine_rows_numpy(a, b), K.normalize_rows_numpy(a)]
    np.testing.assert_array_equal(a, a0)
    np.testing.assert_array_equal(b, b0)
    for out in outputs:  # results are fresh arrays, never views of the inputs
        assert not np.shares_memory(out, a) and not np.shares_memory(out, b)
        out[...] = 7  # and writable
    np.testing.assert_array_equal(a, a0)


# ---------------------------------------------------------------- nonfinite_rows / zero_rows


@pytest.mark.parametrize("dtype", DTYPES)
def test_nonfinite_rows(dtype):
    a = rand((10, 7), dtype, 17)
    a[1, 0], a[3, 6], a[4, 3], a[6] = np.nan, np.inf, -np.inf, np.nan
    expected = np.zeros(10, bool)
    expected[[1, 3, 4, 6]] = True
    for fn in (K.nonfinite_rows, K.nonfinite_rows_numpy):
        got = fn(a)
        assert got.dtype == np.bool_
        np.testing.assert_array_equal(got, expected)


def test_nonfinite_rows_keeps_float64_range():
    a = np.array([[1e300, -1e300], [1.0, np.inf]])
    np.testing.assert_array_equal(K.nonfinite_rows(a), [False, True])


@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_rows(dtype):
    a = rand((7, 5), dtype, 18)
    a[1], a[2], a[3] = 0, -0.0, 0
    a[3, 4] = np.nan  # NaN is not zero
    a[4], a[4, 2] = 0, np.finfo(dtype).smallest_subnormal  # neither is a subnormal
    expected = np.array([False, True, True, False, False, False, False])
    for fn in (K.zero_rows, K.zero_rows_numpy):
        got = fn(a)
        assert got.dtype == np.bool_
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    "fn", [K.nonfinite_rows, K.zero_rows, K.nonfinite_rows_numpy, K.zero_rows_numpy]
)
def test_mask_kernels_empty_and_single(fn):
    assert fn(np.empty((0, 4), F32)).shape == (0,)
    np.testing.assert_array_equal(
        fn(np.zeros((1, 3), F16)), [fn in (K.zero_rows, K.zero_rows_numpy)]
    )


# ---------------------------------------------------------------- normalize_rows


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_normalize_matches_numpy_float32(dtype, shape):
    a = rand(shape, dtype, 19)
    got = K.normalize_rows(a)
    assert got.dtype == F32 and got.shape == shape
    a32 = a.astype(F32)
    np.testing.assert_allclose(got, a32 / np.linalg.norm(a32, axis=1, keepdims=True), rtol=1e-6)
    np.testing.assert_allclose(got, K.normalize_rows_numpy(a), rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(got.astype(F64), axis=1), 1.0, rtol=1e-6)


def test_normalize_zero_and_nonfinite_rows():
    a = rand((6, 4), F32, 20)
    a[1], a[2, 1], a[3, 0], a[4] = 0, np.nan, np.inf, -0.0
    for fn in (K.normalize_rows, K.normalize_rows_numpy):
        got = fn(a)
        np.testing.assert_array_equal(got[[1, 4]], 0)
        assert np.isnan(got[2]).all() and np.isnan(got[3, 0])
        np.testing.assert_array_equal(got[3, 1:], 0)  # finite / Inf, as numpy gives
        np.testing.assert_allclose(
            got[[0, 5]], a[[0, 5]] / np.linalg.norm(a[[0, 5]], axis=1, keepdims=True), rtol=1e-6
        )


def test_normalize_empty():
    for fn in (K.normalize_rows, K.normalize_rows_numpy):
        got = fn(np.empty((0, 5), F64))
        assert got.shape == (0, 5) and got.dtype == F32


# ---------------------------------------------------------------- max_abs_diff_rows


@pytest.mark.parametrize("da,db", [(F32, F32), (F16, F16), (F64, F64), (F32, F64), (F16, F32)])
def test_max_abs_diff(da, db):
    a, b = rand((25, 9), da, 21), rand((25, 9), db, 22)
    expected = np.abs(a.astype(F64) - b.astype(F64)).max(axis=1)
    for fn in (K.max_abs_diff_rows, K.max_abs_diff_rows_numpy):
        got = fn(a, b)
        assert got.dtype == F64
        np.testing.assert_array_equal(got, expected)


def test_max_abs_diff_nan_inf_and_precision():
    a = rand((5, 4), F64, 23)
    b = a.copy()
    b[0, 1] += 1e-12  # survives only if float64 is not rounded to float32
    a[1, 2], b[2, 0] = np.nan, np.nan
    a[3, 3] = np.inf
    a[4, 0] = b[4, 0] = np.inf  # Inf - Inf is NaN
    for fn in (K.max_abs_diff_rows, K.max_abs_diff_rows_numpy):
        got = fn(a, b)
        assert got[0] == pytest.approx(1e-12, rel=1e-3)
        assert np.isnan(got[[1, 2, 4]]).all() and got[3] == np.inf


def test_max_abs_diff_empty_and_zero_width():
    for fn in (K.max_abs_diff_rows, K.max_abs_diff_rows_numpy):
        assert fn(np.empty((0, 3), F32), np.empty((0, 3), F32)).shape == (0,)
        np.testing.assert_array_equal(fn(np.empty((2, 0), F32), np.empty((2, 0), F32)), [0, 0])


# ---------------------------------------------------------------- properties


def _arrays(shape, dtype):
    # Full float range including NaN/Inf/subnormals, but exact zeros often enough to matter.
    width = np.dtype(dtype).itemsize * 8
    elements = st.one_of(st.just(0.0), st.floats(width=width), st.floats(-4, 4, width=width))
    return hnp.arrays(dtype, shape, elements=elements)


@st.composite
def array_pairs(draw):
    shape = draw(st.tuples(st.integers(0, 6), st.integers(0, 12)))
    return draw(_arrays(shape, draw(st.sampled_from(DTYPES)))), draw(
        _arrays(shape, draw(st.sampled_from(DTYPES)))
    )


@settings(max_examples=150, deadline=None)
@given(array_pairs())
def test_kernels_match_numpy_twins(pair):
    a, b = pair
    a0, b0 = a.copy(), b.copy()
    cos = K.cosine_rows(a, b)
    np.testing.assert_allclose(cos, K.cosine_rows_numpy(a, b), **COS_TOL)
    np.testing.assert_array_equal(cos, K.cosine_rows(b, a))  # symmetric, bit for bit
    assert not (np.abs(cos) > 1).any()
    with np.errstate(over="ignore"):  # what cosine_rows sees: float64 rounded to float32
        bad = K.nonfinite_rows_numpy(a.astype(F32)) | K.nonfinite_rows_numpy(b.astype(F32))
    np.testing.assert_array_equal(np.isnan(cos), bad)
    np.testing.assert_array_equal(K.nonfinite_rows(a), K.nonfinite_rows_numpy(a))
    np.testing.assert_array_equal(K.zero_rows(b), K.zero_rows_numpy(b))
    np.testing.assert_array_equal(K.max_abs_diff_rows(a, b), K.max_abs_diff_rows_numpy(a, b))
    np.testing.assert_allclose(
        K.normalize_rows(a), K.normalize_rows_numpy(a), rtol=1e-6, atol=1e-37
    )
    np.testing.assert_array_equal(a, a0)
    np.testing.assert_array_equal(b, b0)


# ---------------------------------------------------------------- dispatch


def test_fallback_without_numba(monkeypatch):
    monkeypatch.setitem(sys.modules, "numba", None)  # makes `import numba` raise ImportError
    spec = importlib.util.spec_from_file_location("_kernels_no_numba", K.__file__)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.HAVE_NUMBA is False
    a, b = rand((12, 6), F32, 24), rand((12, 6), F16, 25)
    a[1], b[2, 2] = 0, np.nan
    np.testing.assert_array_equal(mod.cosine_rows(a, b), K.cosine_rows_numpy(a, b))
    np.testing.assert_array_equal(mod.normalize_rows(a), K.normalize_rows_numpy(a))
    np.testing.assert_array_equal(mod.zero_rows(a), [i == 1 for i in range(12)])
    np.testing.assert_array_equal(mod.nonfinite_rows(b), [i == 2 for i in range(12)])
    np.testing.assert_array_equal(mod.max_abs_diff_rows(a, b), K.max_abs_diff_rows_numpy(a, b))


def test_numba_path_is_used():
    numba = pytest.importorskip("numba")
    if numba.config.DISABLE_JIT:
        pytest.skip("NUMBA_DISABLE_JIT=1: kernels run as plain Python")
    assert K.HAVE_NUMBA
    K.cosine_rows(rand((3, 4), F32), rand((3, 4), F32))
    assert K._cosine_nb.signatures, "cosine_rows did not go through the numba kernel"
