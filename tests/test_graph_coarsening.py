"""pose2mesh.coarsening: each faithfulness trap of the original's coarsening, in isolation.

References in tests/data/ come from NumPy 1.24 and the original release's code
(scripts/make_graph_references.py says how).
"""
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

import pose2mesh.coarsening as coarsening
from pose2mesh.coarsening import (binary_tree_permutations, coarsen, degree_visit_order, heavy_edge_matching,
                                  heavy_edge_matching_level, introsort_argsort, inverse_permutation,
                                  largest_eigenvalue, matching_row_extents, normalized_laplacian,
                                  permute_adjacency, permute_data, rescale_laplacian)

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def sort_refs():
    with np.load(DATA / "introsort_numpy124.npz") as z:
        return {k: z[k] for k in z.files}


# ----------------------------------------------------------------------------------------------
# the visiting order
# ----------------------------------------------------------------------------------------------

def test_introsort_matches_numpy_1_24(sort_refs, monkeypatch):
    """Tie order equal to NumPy 1.24's argsort(kind='quicksort') on arrays with massive ties,
    NaNs, signed zeros and infinities, and on inputs that reach the heapsort fallback."""
    heap_calls = []
    real_heapsort = coarsening._heapsort_range

    def counting_heapsort(v, a, lo, n):
        heap_calls.append(n)
        return real_heapsort(v, a, lo, n)

    monkeypatch.setattr(coarsening, "_heapsort_range", counting_heapsort)
    for k in range(int(sort_refs["num_cases"])):
        keys, expected = sort_refs[f"keys_{k}"], sort_refs[f"order_{k}"].astype(np.int64)
        got = introsort_argsort(keys)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, expected, err_msg=f"case {k} (n={keys.size})")
    assert heap_calls, "no reference input reached the heapsort fallback"


def test_heapsort_fallback_matches_numpy_1_24(sort_refs):
    for k in range(int(sort_refs["num_heap_cases"])):
        keys = sort_refs[f"heap_keys_{k}"]
        ranks = coarsening._sort_ranks(keys)
        order = list(range(len(ranks)))
        coarsening._heapsort_range(ranks, order, 0, len(ranks))
        np.testing.assert_array_equal(order, sort_refs[f"heap_order_{k}"].astype(np.int64))


def test_introsort_sorts_and_is_fast():
    rs = np.random.RandomState(3)
    small_ints = rs.randint(0, 3, 20).astype(np.uint8)
    for keys in (rs.rand(1000), rs.randint(-5, 5, 333), np.array([2.0]), np.zeros(0), small_ints):
        order = introsort_argsort(keys)
        assert sorted(order.tolist()) == list(range(keys.size))
        assert np.all(np.diff(keys[order]) >= 0)
    degrees = rs.randint(3, 10, 7000).astype(np.float64)
    start = time.perf_counter()
    introsort_argsort(degrees)
    assert time.perf_counter() - start < 0.5  # about 5 ms on one core
    with pytest.raises(TypeError):
        introsort_argsort(np.array(["a", "b"]))
    with pytest.raises(ValueError):
        introsort_argsort(np.zeros((2, 2)))


def test_degree_visit_order_sorts_weighted_column_sums():
    W = sp.csr_matrix(np.array([[0, 2, 1, 0], [2, 0, 0, 0], [1, 0, 1, 1], [0, 0, 1, 0]], dtype=float))
    # column sums 3, 2, 3, 1 (self loop counted): ties 0 and 2 keep NumPy 1.x's order
    np.testing.assert_array_equal(degree_visit_order(W), [3, 1, 0, 2])
    ring = sp.csr_matrix(np.roll(np.eye(40), 1, axis=1) + np.roll(np.eye(40), -1, axis=1))
    np.testing.assert_array_equal(degree_visit_order(ring), introsort_argsort(np.full(40, 2.0)))


# ----------------------------------------------------------------------------------------------
# heavy-edge matching
# ----------------------------------------------------------------------------------------------

def test_matching_row_extents_reproduce_the_off_by_one():
    rows = np.array([0, 0, 1, 1, 1, 2])  # true row lengths 2, 3, 1
    start, length = matching_row_extents(rows, 3)
    np.testing.assert_array_equal(start, [0, 2, 5])
    np.testing.assert_array_equal(length, [3, 3, 0])  # row 0 one more, last row one fewer
    start, length = matching_row_extents(np.array([0, 0, 0]), 1)
    np.testing.assert_array_equal(length, [3])


def test_matching_pairs_vertex_zero_with_a_non_neighbour_as_the_original():
    # edges 0-3 (weight 1) and 1-2 (weight 3). The original's vertex 0 also scans the first
    # entry of row 1 (vertex 2) and prefers it: clusters {0, 2}, {3}, {1}; result of the
    # original code under NumPy 1.24.
    W = sp.csr_matrix((np.array([1.0, 3.0, 3.0, 1.0]), (np.array([0, 1, 2, 3]), np.array([3, 2, 1, 0]))),
                      shape=(4, 4))
    graphs, parents = heavy_edge_matching(W, 1)
    np.testing.assert_array_equal(parents[0], [0, 2, 0, 1])
    np.testing.assert_array_equal(graphs[1].toarray(), [[0, 1, 3], [1, 0, 0], [3, 0, 0]])


def test_matching_uses_first_stored_entry_as_self_weight():
    # path 0-1-2 with a heavy self loop on 2, vertex 1 visited first. With the true self weights
    # 2 would win ((2 + 0 + 6) / 9 > (2 + 0 + 0) / 3); the original reads the first stored entry
    # of each row instead (W[1, 0], W[0, 1], W[2, 1]), so 0 wins: 4 / 3 > 4 / 9. The expected
    # clusters are the original code's under NumPy 1.24.
    A = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 6]], dtype=float)
    cluster = heavy_edge_matching_level(sp.csr_matrix(A), np.array([1, 0, 2]), A.sum(axis=0))
    np.testing.assert_array_equal(cluster, [0, 0, 1])


def test_isolated_last_vertex_is_refused():
    W = sp.csr_matrix(np.array([[0, 1, 0], [1, 0, 0], [0, 0, 0]], dtype=float))
    with pytest.raises(ValueError, match="no edges"):
        heavy_edge_matching(W, 1)


# ----------------------------------------------------------------------------------------------
# binary tree order
# ----------------------------------------------------------------------------------------------

def test_binary_tree_permutations_original_example():
    # the example the original release checks at import time
    parents = [np.array([4, 1, 1, 2, 2, 3, 0, 0, 3]), np.array([2, 1, 0, 1, 0])]
    assert binary_tree_permutations(parents) == [[3, 4, 0, 9, 1, 2, 5, 8, 6, 7, 10, 11], [2, 4, 1, 3, 0, 5], [0, 1, 2]]
    assert binary_tree_permutations([]) == []


def test_inverse_permutation_and_permute_data():
    perm = [2, 0, 3, 1]
    inv = inverse_permutation(perm)
    assert inv.dtype == np.int64
    np.testing.assert_array_equal(np.asarray(perm)[inv], np.arange(4))
    x = np.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(permute_data(x, perm), [[4, 5], [0, 1], [0, 0], [2, 3]])


def test_permute_adjacency_pads_with_isolated_vertices():
    A = sp.csr_matrix(np.array([[0, 1, 0], [1, 0, 2], [0, 2, 0]], dtype=float))
    P = permute_adjacency(A, [2, 3, 0, 1])
    dense = np.zeros((4, 4))
    dense[:3, :3] = A.toarray()
    inv = inverse_permutation([2, 3, 0, 1])
    expected = np.zeros((4, 4))
    expected[np.ix_(inv, inv)] = dense
    np.testing.assert_array_equal(P.toarray(), expected)
    assert P.has_canonical_format and P[1].nnz == 0  # position 1 holds fake vertex 3


# ----------------------------------------------------------------------------------------------
# Laplacians
# ----------------------------------------------------------------------------------------------

def test_rescale_laplacian_by_hand():
    W = sp.csr_matrix(np.array([[0.0, 1.0], [1.0, 0.0]]))
    L = normalized_laplacian(W)
    np.testing.assert_allclose(L.toarray(), [[1, -1], [-1, 1]])
    lmax = largest_eigenvalue(L)
    assert lmax == pytest.approx(2.0)
    R = rescale_laplacian(L, lmax)
    # the original's L / (2 lmax) - I, not the 2 L / lmax - I its comment promises
    np.testing.assert_allclose(R.toarray(), [[-0.75, -0.25], [-0.25, -0.75]], atol=1e-15)
    assert not np.allclose(R.toarray(), 2 * L.toarray() / lmax - np.eye(2))
    np.testing.assert_allclose(L.toarray(), [[1, -1], [-1, 1]])  # input untouched
    assert isinstance(R, sp.csr_matrix)


def test_rescale_laplacian_multiplies_by_the_reciprocal():
    # SciPy's in-place L /= c (the original's code) multiplies by 1 / c; for 0.015 that differs
    # from a division in the last bit
    L = sp.csr_matrix(np.array([[0.3, -0.015], [-0.015, 0.7]]))
    lmax = 1.2345678901234567
    recip = 1.0 / (lmax * 2)
    assert -0.015 * recip != -0.015 / (lmax * 2)
    expected = np.array([[0.3 * recip - 1, -0.015 * recip], [-0.015 * recip, 0.7 * recip - 1]])
    np.testing.assert_array_equal(rescale_laplacian(L, lmax).toarray(), expected)


def test_normalized_laplacian_of_fake_vertex_and_largest_eigenvalue():
    rs = np.random.RandomState(0)
    dense = np.triu((rs.rand(120, 120) < 0.05).astype(float), 1)
    dense = dense + dense.T
    dense[[5, 77]] = 0
    dense[:, [5, 77]] = 0
    L = normalized_laplacian(sp.csr_matrix(dense))
    assert L[5, 5] == 1.0 and L[5].nnz == 1
    eig = np.linalg.eigvalsh(L.toarray())
    assert largest_eigenvalue(L) == pytest.approx(eig.max(), abs=1e-12)


def test_coarsen_levels_halve_and_laplacians_are_unscaled():
    rs = np.random.RandomState(1)
    dense = np.triu((rs.rand(60, 60) < 0.1).astype(float), 1)
    dense = dense + dense.T
    dense[np.arange(59), np.arange(1, 60)] = dense[np.arange(1, 60), np.arange(59)] = 1  # connected
    adjacencies, laplacians, perms = coarsen(sp.csr_matrix(dense), 3)
    sizes = [len(p) for p in perms]
    assert sizes == [sizes[-1] * 8, sizes[-1] * 4, sizes[-1] * 2, sizes[-1]]
    for A, L in zip(adjacencies[:3], laplacians[:3]):
        assert A.shape == L.shape
        assert np.all(np.linalg.eigvalsh(L.toarray()) > -1e-12)  # not rescaled yet
