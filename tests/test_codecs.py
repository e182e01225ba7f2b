"""The wire codecs agree byte for byte with the server's own send/out functions."""

from __future__ import annotations

import re
import warnings

import numpy as np
import psycopg
import pytest

from vecalchemy import InvalidVectorError, SparseVector, codecs


def server_bytes(conn: psycopg.Connection, sql: str) -> bytes:
    row = conn.execute(sql).fetchone()
    assert row is not None
    return bytes(row[0])


def server_text(conn: psycopg.Connection, sql: str) -> str:
    row = conn.execute(sql).fetchone()
    assert row is not None
    return str(row[0])


def test_vector_binary_encoding_equals_vector_send(raw_conn: psycopg.Connection) -> None:
    arr = np.array([1.5, -0.0, 3.4e38, 1e-45], dtype=np.float32)
    expected = server_bytes(raw_conn, "SELECT vector_send('[1.5,-0,3.4e38,1e-45]'::vector)")
    assert codecs.encode_dense_binary(arr, "vector") == expected


def test_halfvec_binary_encoding_equals_halfvec_send(raw_conn: psycopg.Connection) -> None:
    arr = np.array([1.5, -0.0, 65504, 6e-8], dtype=np.float16)
    expected = server_bytes(raw_conn, "SELECT halfvec_send('[1.5,-0,65504,6e-8]'::halfvec)")
    assert codecs.encode_dense_binary(arr, "halfvec") == expected


def test_sparsevec_binary_encoding_equals_sparsevec_send(raw_conn: psycopg.Connection) -> None:
    sv = SparseVector({0: 1.5, 7: -2.0}, 10)
    expected = server_bytes(raw_conn, "SELECT sparsevec_send('{1:1.5,8:-2}/10'::sparsevec)")
    assert codecs.encode_sparse_binary(sv) == expected


def test_bit_binary_encoding_equals_bit_send(raw_conn: psycopg.Connection) -> None:
    bits = codecs.check_bits("10110011101")
    expected = server_bytes(raw_conn, "SELECT bit_send(B'10110011101')")
    assert codecs.encode_bits_binary(bits) == expected


def test_vector_send_output_decodes_to_the_values(raw_conn: psycopg.Connection) -> None:
    data = server_bytes(raw_conn, "SELECT vector_send('[1.5,-2,3.4e38]'::vector)")
    out = codecs.decode_dense_binary(data, "vector")
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.array([1.5, -2, 3.4e38], dtype=np.float32))


def test_halfvec_send_output_decodes_to_float16(raw_conn: psycopg.Connection) -> None:
    data = server_bytes(raw_conn, "SELECT halfvec_send('[1.5,-2,65504]'::halfvec)")
    out = codecs.decode_dense_binary(data, "halfvec")
    assert out.dtype == np.float16
    np.testing.assert_array_equal(out, np.array([1.5, -2, 65504], dtype=np.float16))


def test_sparsevec_send_output_decodes_with_zero_based_indices(
    raw_conn: psycopg.Connection,
) -> None:
    data = server_bytes(raw_conn, "SELECT sparsevec_send('{2:1.5,5:-3}/6'::sparsevec)")
    assert codecs.decode_sparse_binary(data) == SparseVector({1: 1.5, 4: -3.0}, 6)


def test_bit_send_output_decodes_to_the_bit_string(raw_conn: psycopg.Connection) -> None:
    data = server_bytes(raw_conn, "SELECT bit_send(B'1011001110100')")
    assert codecs.decode_bits_binary(data) == "1011001110100"


def test_vector_text_encoding_is_accepted_and_printed_identically(
    raw_conn: psycopg.Connection,
) -> None:
    arr = np.array([0.1, -2.5, 1e-45, 3.4e38], dtype=np.float32)
    text = codecs.encode_dense_text(arr)
    printed = server_text(raw_conn, f"SELECT '{text}'::vector::text")
    np.testing.assert_array_equal(codecs.decode_dense_text(printed, "vector"), arr)


def test_vector_text_output_parses_to_float32(raw_conn: psycopg.Connection) -> None:
    printed = server_text(raw_conn, "SELECT '[0.1,-2.5,7]'::vector::text")
    out = codecs.decode_dense_text(printed, "vector")
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.array([0.1, -2.5, 7], dtype=np.float32))


def test_negative_zero_keeps_its_sign_through_the_text_format(
    raw_conn: psycopg.Connection,
) -> None:
    text = codecs.encode_dense_text(np.array([-0.0], dtype=np.float32))
    printed = server_text(raw_conn, f"SELECT '{text}'::vector::text")
    assert np.signbit(codecs.decode_dense_text(printed, "vector")[0])


def test_sparsevec_text_encoding_is_one_based(raw_conn: psycopg.Connection) -> None:
    text = codecs.encode_sparse_text(SparseVector({0: 1.5, 3: 2.0}, 5))
    assert server_text(raw_conn, f"SELECT '{text}'::sparsevec::text") == "{1:1.5,4:2}/5"


def test_sparsevec_text_output_parses_back(raw_conn: psycopg.Connection) -> None:
    printed = server_text(raw_conn, "SELECT '{1:1.5,4:-2}/5'::sparsevec::text")
    assert codecs.decode_sparse_text(printed) == SparseVector({0: 1.5, 3: -2.0}, 5)


def test_all_zero_sparsevec_text_round_trips(raw_conn: psycopg.Connection) -> None:
    text = codecs.encode_sparse_text(SparseVector([0, 0, 0], None))
    printed = server_text(raw_conn, f"SELECT '{text}'::sparsevec::text")
    assert printed == "{}/3"
    assert codecs.decode_sparse_text(printed) == SparseVector({}, 3)


def test_bit_text_encoding_matches_the_server(raw_conn: psycopg.Connection) -> None:
    text = codecs.encode_bits_text(codecs.check_bits([True, False, True, True]))
    assert server_text(raw_conn, f"SELECT B'{text}'::text") == "1011"


@pytest.mark.parametrize("n", [1, 7, 8, 9, 64001])
def test_bit_binary_round_trip_for_lengths_around_byte_boundaries(n: int) -> None:
    rng = np.random.default_rng(n)
    text = "".join(rng.choice(["0", "1"], size=n))
    assert codecs.decode_bits_binary(codecs.encode_bits_binary(codecs.check_bits(text))) == text


# --- dense_checker: the per-column short path --------------------------------------------


def test_dense_checker_returns_a_finite_float32_array_itself() -> None:
    check = codecs.dense_checker("vector", 3)
    a = np.array([1.0, -2.5, 3e38], dtype=np.float32)
    assert check(a) is a


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.nan, "NaN not allowed in vector (element 1)"),
        (np.inf, "infinite value not allowed in vector (element 1)"),
        (-np.inf, "infinite value not allowed in vector (element 1)"),
    ],
)
def test_dense_checker_refuses_non_finite_float32_like_check_dense(
    bad: float, message: str
) -> None:
    a = np.array([1.0, bad, 3.0], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no NumPy RuntimeWarning on the way
        with pytest.raises(InvalidVectorError, match=re.escape(message)):
            codecs.dense_checker("vector", 3)(a)


@pytest.mark.parametrize(
    "value",
    [
        np.array([1.0, 2.0, 3.0], dtype=">f4"),  # big-endian: not the short path
        np.arange(6, dtype=np.float32)[::2],  # strided view
        np.array([1.0, 2.0, 3.0]),  # float64
        [1, 2, 3],
    ],
    ids=["big-endian", "strided", "float64", "list"],
)
def test_dense_checker_gives_what_check_dense_gives(value: object) -> None:
    got = codecs.dense_checker("vector", 3)(value)
    want = codecs.check_dense(value, "vector", 3)
    assert got.dtype == np.float32 and np.array_equal(got, want)


def test_dense_checker_refuses_a_wrong_dimension_with_check_denses_message() -> None:
    with pytest.raises(InvalidVectorError, match="expected 3 dimensions, not 4"):
        codecs.dense_checker("vector", 3)(np.zeros(4, dtype=np.float32))


def test_dense_checker_applies_then_to_the_checked_array() -> None:
    check = codecs.dense_checker("vector", 2, then=lambda arr: ("bound", arr.tolist()))
    assert check(np.array([1.5, 2.0], dtype=np.float32)) == ("bound", [1.5, 2.0])
    assert check([3, 4]) == ("bound", [3.0, 4.0])
    half = codecs.dense_checker("halfvec", 2, then=lambda arr: arr.dtype)
    assert half([1, 2]) == np.float16


# --- check_dense_matrix: the same rule for a whole matrix ---------------------------------


@pytest.mark.parametrize("sql_type", ["vector", "halfvec"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16, np.int64])
def test_check_dense_matrix_rounds_every_row_as_check_dense(sql_type: str, dtype: type) -> None:
    rng = np.random.default_rng(3)
    m = np.clip(rng.standard_normal((50, 6)) * 30000, -65519, 65519).astype(dtype)
    m[0, :2] = [65519, -65519]
    got = codecs.check_dense_matrix(m, sql_type, 6)
    want = np.stack([codecs.check_dense(row, sql_type, 6) for row in m])
    assert got.dtype == want.dtype and got.tobytes() == want.tobytes()


def test_check_dense_matrix_returns_a_matrix_of_the_column_dtype_itself() -> None:
    m = np.ones((4, 3), dtype=np.float32)
    assert codecs.check_dense_matrix(m, "vector", 3) is m


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (None, '"70000" is out of range for type halfvec (row 3, element 1)'),
        ("emb", 'emb (halfvec(2)): "70000" is out of range for type halfvec (row 3, element 1)'),
    ],
)
def test_check_dense_matrix_places_the_bad_element_by_row(name: str | None, message: str) -> None:
    m = np.zeros((4, 2))
    m[3, 1] = 70000
    with pytest.raises(InvalidVectorError) as err:
        codecs.check_dense_matrix(m, "halfvec", 2, name=name)
    assert str(err.value) == message + " (largest magnitude 65504)"


def test_check_dense_matrix_without_a_name_words_errors_as_check_dense() -> None:
    with pytest.raises(InvalidVectorError) as err:
        codecs.check_dense_matrix(np.ones((2, 2)), "vector", 3)
    assert str(err.value) == "vector(3): expected 3 dimensions, not 2"
    m = np.ones((3, 2), dtype=np.float32)
    m[2, 0] = np.nan
    with pytest.raises(InvalidVectorError) as err:
        codecs.check_dense_matrix(m, "vector", 2)
    assert str(err.value) == "NaN not allowed in vector (row 2, element 0)"


def test_check_dense_matrix_finds_inf_and_minus_inf_without_a_numpy_warning() -> None:
    m = np.ones((3, 2), dtype=np.float32)
    m[1] = [np.inf, -np.inf]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InvalidVectorError) as err:
            codecs.check_dense_matrix(m, "vector", 2)
    assert str(err.value) == "infinite value not allowed in vector (row 1, element 0)"
