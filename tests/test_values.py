"""SparseVector: every way to build one, its canonical form, and what it refuses."""

from __future__ import annotations

import numpy as np
import pgvector
import pytest
from scipy import sparse

from vecalchemy import InvalidVectorError, SparseVector


def test_from_mapping_and_dim_keeps_zero_based_indices() -> None:
    sv = SparseVector({3: 2.0, 0: 1.5}, 5)
    assert (sv.dim, sv.indices.tolist(), sv.values.tolist()) == (5, [0, 3], [1.5, 2.0])


def test_canonical_form_is_int32_indices_and_float32_values() -> None:
    sv = SparseVector({1: 2}, 4)
    assert (sv.indices.dtype, sv.values.dtype) == (np.int32, np.float32)


def test_from_dense_sequence_drops_zeros_and_takes_its_length() -> None:
    sv = SparseVector([0, 1.5, 0, -2])
    assert sv.to_dict() == {1: 1.5, 3: -2.0} and sv.dim == 4


def test_from_dense_array_matches_to_dense() -> None:
    dense = np.array([0, 0.25, 0, 0, 7], dtype=np.float64)
    np.testing.assert_array_equal(SparseVector(dense).to_dense(), dense.astype(np.float32))


def test_from_scipy_csr_matrix_row() -> None:
    m = sparse.csr_matrix(np.array([[0, 1.5, 0, 2.0]]))
    assert SparseVector(m) == SparseVector({1: 1.5, 3: 2.0}, 4)


def test_from_scipy_csr_array_row() -> None:
    m = sparse.csr_array(np.array([[3.0, 0, 0, 0, -1.0]]))
    assert SparseVector(m) == SparseVector({0: 3.0, 4: -1.0}, 5)


def test_from_scipy_coo_sums_duplicate_entries() -> None:
    m = sparse.coo_matrix(([1.0, 2.0, 4.0], ([0, 0, 0], [2, 2, 5])), shape=(1, 6))
    assert SparseVector(m) == SparseVector({2: 3.0, 5: 4.0}, 6)


def test_from_scipy_matrix_with_two_rows_is_refused() -> None:
    with pytest.raises(InvalidVectorError, match=r"shape \(1, n\), got shape \(2, 3\)"):
        SparseVector(sparse.csr_matrix(np.ones((2, 3))))


def test_to_scipy_is_a_one_row_csr_array() -> None:
    m = SparseVector({1: 2.0}, 3).to_scipy()
    assert m.shape == (1, 3)
    np.testing.assert_array_equal(m.toarray(), [[0, 2.0, 0]])


def test_from_arrays_sorts_indices_with_their_values() -> None:
    sv = SparseVector.from_arrays([4, 1], [2.0, 1.0], 6)
    assert (sv.indices.tolist(), sv.values.tolist()) == ([1, 4], [1.0, 2.0])


def test_from_arrays_refuses_duplicate_indices() -> None:
    with pytest.raises(InvalidVectorError, match="sparsevec indices must not contain duplicates"):
        SparseVector.from_arrays([1, 1], [2.0, 3.0], 6)


def test_from_arrays_refuses_mismatched_lengths() -> None:
    with pytest.raises(InvalidVectorError, match=r"shapes \(2,\) and \(1,\)"):
        SparseVector.from_arrays([1, 2], [2.0], 6)


def test_from_pgvector_python_sparse_vector() -> None:
    sv = SparseVector(pgvector.SparseVector({2: 1.5, 0: 3.0}, 4))
    assert sv == SparseVector({0: 3.0, 2: 1.5}, 4)


def test_copy_with_a_different_dim_is_refused() -> None:
    with pytest.raises(InvalidVectorError, match="expected 4 dimensions, not 3"):
        SparseVector(SparseVector({0: 1}, 3), 4)


def test_mapping_without_dim_is_refused() -> None:
    with pytest.raises(InvalidVectorError, match="mapping needs dim"):
        SparseVector({0: 1.0})


def test_index_out_of_bounds_names_index_and_range() -> None:
    with pytest.raises(
        InvalidVectorError, match=r"sparsevec index out of bounds: 5 is not in \[0, 5\)"
    ):
        SparseVector({5: 1.0}, 5)


def test_negative_index_is_out_of_bounds() -> None:
    with pytest.raises(InvalidVectorError, match="sparsevec index out of bounds: -1"):
        SparseVector({-1: 1.0}, 5)


def test_more_elements_than_dimensions_is_refused() -> None:
    with pytest.raises(
        InvalidVectorError, match=r"sparsevec cannot have more elements than dimensions \(3 > 2\)"
    ):
        SparseVector.from_arrays([0, 1, 2], [1.0, 1.0, 1.0], 2)


def test_more_than_16000_non_zeros_is_refused() -> None:
    n = 16001
    with pytest.raises(
        InvalidVectorError,
        match=r"sparsevec cannot have more than 16000 non-zero elements \(got 16001\)",
    ):
        SparseVector.from_arrays(np.arange(n), np.ones(n), 100_000)


def test_dim_zero_is_refused() -> None:
    with pytest.raises(InvalidVectorError, match="sparsevec must have at least 1 dimension"):
        SparseVector({}, 0)


def test_dim_beyond_one_billion_is_refused() -> None:
    with pytest.raises(
        InvalidVectorError, match="sparsevec cannot have more than 1000000000 dimensions"
    ):
        SparseVector({}, 1_000_000_001)


def test_nan_value_is_refused_with_its_index() -> None:
    with pytest.raises(InvalidVectorError, match=r"NaN not allowed in sparsevec \(at index 2\)"):
        SparseVector({2: float("nan")}, 5)


def test_infinite_value_is_refused() -> None:
    with pytest.raises(InvalidVectorError, match="infinite value not allowed in sparsevec"):
        SparseVector({1: float("-inf")}, 5)


def test_float64_beyond_float32_is_out_of_range() -> None:
    with pytest.raises(InvalidVectorError, match='"1e\\+39" is out of range for type sparsevec'):
        SparseVector({1: 1e39}, 5)


def test_non_integer_indices_are_refused() -> None:
    with pytest.raises(InvalidVectorError, match="indices must be integers, got dtype <U1"):
        SparseVector({"a": 1.0}, 5)


def test_non_numeric_values_are_refused() -> None:
    with pytest.raises(InvalidVectorError, match="expected numeric values"):
        SparseVector({1: "x"}, 5)


def test_a_string_is_not_a_sparse_vector() -> None:
    with pytest.raises(InvalidVectorError, match="got str"):
        SparseVector("{1:1}/3")


def test_two_dimensional_dense_input_is_refused() -> None:
    with pytest.raises(InvalidVectorError, match=r"expected a 1-D sequence, got shape \(2, 2\)"):
        SparseVector([[1, 0], [0, 1]])


def test_equality_compares_dim_indices_and_values() -> None:
    assert SparseVector({1: 1.0}, 3) != SparseVector({1: 1.0}, 4)
    assert SparseVector({1: 1.0}, 3) == SparseVector([0, 1, 0])


def test_repr_shows_mapping_and_dim() -> None:
    assert repr(SparseVector({1: 2.5}, 3)) == "SparseVector({1: 2.5}, dim=3)"


def test_from_pgvector_python_dense_vector() -> None:
    assert SparseVector(pgvector.Vector([0, 2, 0])) == SparseVector({1: 2.0}, 3)
