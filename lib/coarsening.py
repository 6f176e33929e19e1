"""Graph coarsening by heavy-edge matching, as the original Pose2Mesh release computed it.

The mesh graph is coarsened ``levels`` times by greedy heavy-edge matching (Graclus-style,
Defferrard et al. 2016): vertices are visited in the order of their (weighted) degree and each
unmatched vertex is merged with its unmatched neighbour of highest normalized edge weight. The
levels are then renumbered so that the two children of coarse vertex ``i`` sit at ``2i`` and
``2i + 1`` (a binary tree), padding with isolated "fake" vertices where a vertex had no partner.

Released Pose2Mesh weights index vertices in exactly this order, so every detail below matches
the original, quirks included. Each quirk has its own function and test:

- :func:`degree_visit_order`: vertices are visited in ``np.argsort(degree, kind='quicksort')``
  order with NumPy 1.x's *scalar* introsort tie order (:func:`introsort_argsort`), which newer
  NumPy versions no longer guarantee (they dispatch to SIMD sorts on some CPUs).
- :func:`matching_row_extents`: the original's row bookkeeping is off by one at both ends
  (vertex 0 also scans the first stored entry of the next row; the last vertex misses its last
  entry), and the "self weights" it reads are the first stored entry of each row, which is the
  diagonal only when the vertex has one and no smaller-numbered neighbour.
- :func:`rescale_laplacian`: ``L / (2 lmax) - I``, not ``2 L / lmax - I`` as its comment says
  (and the joint-graph Laplacian at the coarsest level is not rescaled at all; see
  :mod:`pose2mesh.graph_utils`).

Matrices are ``scipy.sparse.csr_matrix`` of float64 throughout.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg

__all__ = [
    "introsort_argsort",
    "degree_visit_order",
    "matching_row_extents",
    "heavy_edge_matching_level",
    "heavy_edge_matching",
    "binary_tree_permutations",
    "inverse_permutation",
    "permute_adjacency",
    "normalized_laplacian",
    "largest_eigenvalue",
    "rescale_laplacian",
    "coarsen",
    "permute_data",
]

# a vertex order: a list of indices or an integer array
Permutation = Union[Sequence[int], np.ndarray]

# NumPy's scalar introsort constants (numpy/core/src/npysort/quicksort.cpp, NumPy 1.x)
_SMALL_QUICKSORT = 15


# ----------------------------------------------------------------------------------------------
# The visiting order: NumPy 1.x's scalar introsort, written out
# ----------------------------------------------------------------------------------------------

def _sort_ranks(keys: np.ndarray) -> List[int]:
    """Dense integer ranks with ``rank[a] < rank[b]`` exactly when NumPy's ``less(a, b)``.

    NumPy's float ``less`` is ``a < b or (b is NaN and a is not)``: NaNs rank above everything
    and tie with each other; ``-0.0`` ties with ``0.0``. ``np.unique`` orders values the same way.
    """
    keys = np.asarray(keys)
    if keys.ndim != 1:
        raise ValueError(f"introsort_argsort sorts a 1-D array, got shape {keys.shape}")
    if keys.dtype.kind not in "biuf":
        raise TypeError(f"introsort_argsort sorts real numbers, got dtype {keys.dtype}")
    if keys.dtype.kind == "f":
        keys = keys.astype(np.float64) if keys.dtype.itemsize < 8 else keys
        nan = np.isnan(keys)
        if nan.any():
            ranks = np.empty(keys.size, dtype=np.int64)
            finite_ranks = np.unique(keys[~nan], return_inverse=True)[1].ravel()
            ranks[~nan] = finite_ranks
            ranks[nan] = finite_ranks.max(initial=-1) + 1
            return ranks.tolist()
    return np.unique(keys, return_inverse=True)[1].ravel().tolist()


def _sift_down(v: List[int], a: List[int], base: int, tmp: int, i: int, n: int) -> None:
    """Place ``tmp`` at heap slot ``i`` of the heap ``a[base + 1 .. base + n]``, sifting it down."""
    vt = v[tmp]
    j = i << 1
    while j <= n:
        if j < n and v[a[base + j]] < v[a[base + j + 1]]:
            j += 1
        if vt < v[a[base + j]]:
            a[base + i] = a[base + j]
            i = j
            j += j
        else:
            break
    a[base + i] = tmp


def _heapsort_range(v: List[int], a: List[int], lo: int, n: int) -> None:
    """NumPy's ``aheapsort_`` on ``a[lo:lo + n]`` (1-based heap over that slice), in place."""
    base = lo - 1  # heap index k lives at a[base + k]
    for k in range(n >> 1, 0, -1):
        _sift_down(v, a, base, a[base + k], k, n)
    while n > 1:
        tmp = a[base + n]
        a[base + n] = a[base + 1]
        n -= 1
        _sift_down(v, a, base, tmp, 1, n)


def introsort_argsort(keys: np.ndarray) -> np.ndarray:
    """``np.argsort(keys, kind='quicksort')`` exactly as NumPy 1.x's scalar code ordered it.

    NumPy <= 1.24 sorted with the introsort of ``numpy/core/src/npysort/quicksort.cpp``
    (``aquicksort_``): median-of-three quicksort that pushes the larger partition on a stack and
    loops on the smaller one, insertion sort below 16 elements, and a heapsort fallback for a
    partition popped after more than ``2 * floor(log2(n))`` partitioning steps. The order it gives
    to equal keys is an artefact of these steps; NumPy >= 1.25 may use SIMD sorts instead that
    order ties differently. This function runs the scalar algorithm step by step, so the order
    is the same on every machine and NumPy version.

    Args:
        keys: (N,) real numbers (NaN sorts last, as in NumPy).

    Returns:
        (N,) int64 indices that sort ``keys``.
    """
    v = _sort_ranks(keys)
    n = len(v)
    a = list(range(n))
    if n < 2:
        return np.asarray(a, dtype=np.int64)
    stack: List[Tuple[int, int, int]] = []  # (pl, pr, depth) of partitions left to sort
    pl, pr = 0, n - 1
    cdepth = (n.bit_length() - 1) * 2  # npy_get_msb(n) * 2
    while True:
        if cdepth < 0:
            _heapsort_range(v, a, pl, pr - pl + 1)
        else:
            while pr - pl > _SMALL_QUICKSORT:
                # median of three: a[pl] <= a[pm] <= a[pr]
                pm = pl + ((pr - pl) >> 1)
                if v[a[pm]] < v[a[pl]]:
                    a[pm], a[pl] = a[pl], a[pm]
                if v[a[pr]] < v[a[pm]]:
                    a[pr], a[pm] = a[pm], a[pr]
                if v[a[pm]] < v[a[pl]]:
                    a[pm], a[pl] = a[pl], a[pm]
                vp = v[a[pm]]
                pi, pj = pl, pr - 1
                a[pm], a[pj] = a[pj], a[pm]
                while True:
                    pi += 1
                    while v[a[pi]] < vp:
                        pi += 1
                    pj -= 1
                    while vp < v[a[pj]]:
                        pj -= 1
                    if pi >= pj:
                        break
                    a[pi], a[pj] = a[pj], a[pi]
                pk = pr - 1
                a[pi], a[pk] = a[pk], a[pi]
                # push the larger partition, go on with the smaller one
                cdepth -= 1
                if pi - pl < pr - pi:
                    stack.append((pi + 1, pr, cdepth))
                    pr = pi - 1
                else:
                    stack.append((pl, pi - 1, cdepth))
                    pl = pi + 1
            # insertion sort of a[pl..pr]
            for pi in range(pl + 1, pr + 1):
                vi = a[pi]
                vp = v[vi]
                pj = pi
                while pj > pl and vp < v[a[pj - 1]]:
                    a[pj] = a[pj - 1]
                    pj -= 1
                a[pj] = vi
        if not stack:
            break
        pl, pr, cdepth = stack.pop()
    return np.asarray(a, dtype=np.int64)


def degree_visit_order(W: sp.spmatrix) -> np.ndarray:
    """The order in which heavy-edge matching visits the vertices of ``W``.

    The original sorts the column sums of ``W`` (weighted degrees, self loops included) with
    ``np.argsort`` (NumPy 1.x quicksort): ties, which are massive on a mesh, keep NumPy 1.x's
    scalar introsort order (:func:`introsort_argsort`).

    Args:
        W: (N, N) symmetric sparse weights.

    Returns:
        (N,) int64 vertex indices.
    """
    degrees = np.asarray(W.sum(axis=0)).ravel()
    return introsort_argsort(degrees)


# ----------------------------------------------------------------------------------------------
# Heavy-edge matching
# ----------------------------------------------------------------------------------------------

def matching_row_extents(rows: np.ndarray, num_rows: int) -> Tuple[np.ndarray, np.ndarray]:
    """Where each vertex's neighbours start and how many the original's matching scans.

    The original walks the row-sorted entries once, counting an entry into the current row
    *before* noticing that a new row has begun. So relative to the true rows: row 0 scans one
    entry too many (the first entry of the next stored row), the last stored row one too few,
    the others exactly their own. Rows are numbered by the order they occur in, so a vertex
    without entries shifts every later row (the original never meets one on a mesh).

    Args:
        rows: (nnz,) row index of each stored entry, sorted ascending.
        num_rows: size of the arrays to return (``rows[-1] + 1`` in the original).

    Returns:
        ``(start, length)``, each (num_rows,) int64: vertex ``t`` scans entries
        ``start[t] .. start[t] + length[t] - 1``; ``start[t]`` is also where it reads its
        "self weight".
    """
    rows = np.asarray(rows)
    nnz = rows.size
    run_starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]]) if nnz else np.zeros(0, np.int64)
    num_runs = run_starts.size
    if num_runs > num_rows:
        raise ValueError("more stored rows than vertices")
    start = np.zeros(num_rows, dtype=np.int64)
    length = np.zeros(num_rows, dtype=np.int64)
    start[:num_runs] = run_starts
    length[:num_runs] = np.diff(np.r_[run_starts, nnz])
    if num_runs:
        length[0] += 1
        length[num_runs - 1] -= 1
    return start, length


def heavy_edge_matching_level(W: sp.csr_matrix, visit_order: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """One level of heavy-edge matching: the cluster (coarse vertex) of every vertex.

    Vertices are visited in ``visit_order``; an unmatched vertex ``i`` is paired with the first
    unmatched neighbour ``j`` (in ascending index) maximising
    ``(2 W_ij + W_ii + W_jj) / (d_i + d_j + 1e-9)`` (``W_ii``, ``W_jj`` and the scanned
    neighbours as in :func:`matching_row_extents`), or stays alone. Clusters are numbered in
    the order they are formed.

    Args:
        W: (N, N) symmetric weights, canonical CSR without explicit zeros.
        visit_order: (N,) permutation of the vertices.
        weights: (N,) the degrees ``d``.

    Returns:
        (N,) int32 cluster index of each vertex.
    """
    W = sp.csr_matrix(W, copy=True)
    W.sum_duplicates()  # row-sorted entries, as the original's scipy.sparse.find gave them
    W.eliminate_zeros()
    n = W.shape[0]
    if W.nnz == 0:
        raise ValueError("cannot coarsen a graph without edges")
    rows = np.repeat(np.arange(n), np.diff(W.indptr))
    cols = W.indices.astype(np.int64)
    vals = W.data.astype(np.float64)
    num_visited = int(rows[-1]) + 1
    if num_visited != n:
        raise ValueError(f"vertex {n - 1} has no edges: the original coarsening cannot handle a "
                         "highest-numbered isolated vertex (is every vertex in some face?)")
    start, length = matching_row_extents(rows, num_visited)
    weights = np.asarray(weights, dtype=np.float64).ravel()

    # every (vertex, scanned entry) pair with its matching score, in scanning order
    owner = np.repeat(np.arange(num_visited), length)
    offset_in_row = np.arange(owner.size) - np.repeat(np.cumsum(length) - length, length)
    pos = start[owner] + offset_in_row
    nbr = cols[pos]
    w_ij = vals[pos]
    w_ii = vals[start[owner]]
    w_jj = vals[start[nbr]]
    score = (2.0 * w_ij + w_ii + w_jj) / (weights[owner] + weights[nbr] + 1e-9)

    nbr_list = nbr.tolist()
    score_list = score.tolist()
    first = (np.cumsum(length) - length).tolist()
    count = length.tolist()
    marked = [False] * num_visited
    cluster = [0] * num_visited
    num_clusters = 0
    for tid in visit_order.tolist():
        if marked[tid]:
            continue
        marked[tid] = True
        best, best_score = -1, 0.0
        for q in range(first[tid], first[tid] + count[tid]):
            j = nbr_list[q]
            if not marked[j] and score_list[q] > best_score:
                best, best_score = j, score_list[q]
        cluster[tid] = num_clusters
        if best >= 0:
            cluster[best] = num_clusters
            marked[best] = True
        num_clusters += 1
    return np.asarray(cluster, dtype=np.int32)


def heavy_edge_matching(W: sp.spmatrix, levels: int) -> Tuple[List[sp.csr_matrix], List[np.ndarray]]:
    """Coarsen ``W`` ``levels`` times.

    The first level's pairing weights are the degrees without self loops; later levels use
    the full column sums (the clusters' internal edges become self loops). Edge weights of a
    coarse graph are the sums of the fine edges between (and within) its clusters.

    Args:
        W: (N, N) symmetric adjacency.
        levels: number of coarsenings.

    Returns:
        ``(graphs, parents)``: ``levels + 1`` graphs from finest to coarsest, and ``levels``
        cluster-index arrays (``parents[i]`` maps the vertices of ``graphs[i]`` to those of
        ``graphs[i + 1]``).
    """
    W = sp.csr_matrix(W, dtype=np.float64, copy=True)
    W.sum_duplicates()
    W.eliminate_zeros()
    graphs = [W]
    parents = []
    weights = np.asarray(W.sum(axis=0)).ravel() - W.diagonal()
    for _ in range(levels):
        cluster = heavy_edge_matching_level(W, degree_visit_order(W), weights)
        parents.append(cluster)
        rows = np.repeat(np.arange(W.shape[0]), np.diff(W.indptr))
        num_new = int(cluster.max()) + 1
        W = sp.csr_matrix((W.data, (cluster[W.indices], cluster[rows])), shape=(num_new, num_new))
        W.eliminate_zeros()
        graphs.append(W)
        weights = np.asarray(W.sum(axis=0)).ravel()
    return graphs, parents


# ----------------------------------------------------------------------------------------------
# The binary-tree vertex order
# ----------------------------------------------------------------------------------------------

def binary_tree_permutations(parents: Sequence[np.ndarray]) -> List[List[int]]:
    """Vertex orders in which the two children of coarse vertex ``i`` sit at ``2i``, ``2i + 1``.

    The coarsest level keeps its order. Going finer, each coarse vertex lists its children in
    ascending index; a lone child is followed by a new fake vertex, and a fake coarse vertex
    gets two fake children. Fake vertices are numbered after the real ones, in order of use.

    Args:
        parents: as returned by :func:`heavy_edge_matching`.

    Returns:
        ``len(parents) + 1`` lists, finest first: ``perm[i][k]`` is the vertex of level ``i``
        (``>= its vertex count`` for a fake) placed at position ``k``; level ``i`` has
        ``len(perm[-1]) * 2 ** (len(parents) - i)`` positions.
    """
    if len(parents) == 0:
        return []
    parents = [np.asarray(p, dtype=np.int64) for p in parents]
    coarse = np.arange(int(parents[-1].max()) + 1)
    orders = [coarse]
    for parent in parents[::-1]:
        num_fine = parent.size
        num_clusters = int(parent.max()) + 1
        counts = np.bincount(parent, minlength=num_clusters)
        if counts.max() > 2 or counts.min() < 1:
            raise ValueError("a cluster must have one or two children")
        by_cluster = np.argsort(parent, kind="stable")
        first_child = by_cluster[np.cumsum(counts) - counts]
        second_child = np.where(counts == 2, by_cluster[np.minimum(np.cumsum(counts) - 1, num_fine - 1)], -1)

        real = coarse < num_clusters
        idx = np.where(real, coarse, 0)
        left = np.where(real, first_child[idx], -1)
        right = np.where(real, second_child[idx], -1)
        fakes_needed = (left < 0).astype(np.int64) + (right < 0)
        fake_base = num_fine + np.cumsum(fakes_needed) - fakes_needed
        left = np.where(left < 0, fake_base, left)
        right = np.where(right < 0, fake_base + (fakes_needed == 2), right)
        coarse = np.stack([left, right], axis=1).ravel()
        orders.append(coarse)
    return [o.tolist() for o in orders[::-1]]


def inverse_permutation(perm: Permutation) -> np.ndarray:
    """``inv`` with ``inv[perm[k]] = k`` (the original's ``perm_index_reverse``).

    Args:
        perm: (M,) a permutation of ``0 .. M - 1``.

    Returns:
        (M,) int64.
    """
    perm = np.asarray(perm, dtype=np.int64)
    inv = np.empty_like(perm)
    inv[perm] = np.arange(perm.size)
    return inv


def permute_adjacency(A: sp.spmatrix, perm: Permutation) -> sp.csr_matrix:
    """Pad ``A`` with isolated fake vertices to ``len(perm)`` and reorder it by ``perm``.

    Args:
        A: (M, M) adjacency.
        perm: (M', M' >= M) vertex order; ``perm[k]`` becomes vertex ``k``.

    Returns:
        (M', M') canonical CSR, explicit zeros removed.
    """
    A = sp.coo_matrix(A)
    size = len(perm)
    if size < A.shape[0]:
        raise ValueError("the permutation is shorter than the graph")
    new_index = inverse_permutation(perm)
    out = sp.csr_matrix((A.data.astype(np.float64), (new_index[A.row], new_index[A.col])), shape=(size, size))
    out.eliminate_zeros()
    return out


def permute_data(x: np.ndarray, perm: Permutation) -> np.ndarray:
    """Reorder per-vertex data by ``perm``; fake vertices get zeros (the original's ``perm_data``).

    Args:
        x: (M, F) data of the real vertices.
        perm: (M' >= M,) vertex order.

    Returns:
        (M', F) float64.
    """
    x = np.asarray(x)
    perm = np.asarray(perm, dtype=np.int64)
    out = np.zeros((perm.size,) + x.shape[1:], dtype=np.float64)
    real = perm < x.shape[0]
    out[real] = x[perm[real]]
    return out


# ----------------------------------------------------------------------------------------------
# Laplacians
# ----------------------------------------------------------------------------------------------

def normalized_laplacian(W: sp.spmatrix) -> sp.csr_matrix:
    """``L = I - D^-1/2 W D^-1/2`` with ``D`` the column sums of ``W``.

    As in the original, the degrees get ``np.spacing(0)`` added before the inverse square
    root, so an isolated (fake) vertex gets ``L_ii = 1`` and no other entry.

    Args:
        W: (N, N) symmetric weights.

    Returns:
        (N, N) CSR, float dtype of ``W``.
    """
    W = sp.csr_matrix(W)
    d = np.asarray(W.sum(axis=0)).ravel()
    d = d + np.spacing(np.array(0, W.dtype))
    d = 1 / np.sqrt(d)
    D = sp.diags(d, 0)
    eye = sp.identity(d.size, dtype=W.dtype, format="csr")
    return sp.csr_matrix(eye - D @ W @ D)


def largest_eigenvalue(L: sp.spmatrix) -> float:
    """Largest-magnitude eigenvalue of a symmetric sparse matrix (ARPACK, as the original).

    ARPACK's default start vector is random, which made the original's value vary in the
    last bits between runs; a fixed start vector makes ours reproducible. Isolated vertices
    (the fake ones: a row holding its diagonal only) are eigenvectors on their own, so they are
    taken out of the iteration, which speeds up the finest level by about a third.

    Args:
        L: (N, N) symmetric.

    Returns:
        the eigenvalue of largest magnitude, signed.
    """
    L = sp.csr_matrix(L)
    diag = L.diagonal()
    row_nnz = np.diff(L.indptr)
    isolated = (row_nnz == 0) | ((row_nnz == 1) & (diag != 0))
    candidates = list(diag[isolated])
    keep = np.flatnonzero(~isolated)
    if keep.size:
        block = L[keep][:, keep]
        if keep.size <= 64:
            values = np.linalg.eigvalsh(block.toarray())
            candidates.append(values[np.argmax(np.abs(values))])
        else:
            v0 = np.random.RandomState(0).uniform(-1.0, 1.0, size=keep.size)
            candidates.append(scipy.sparse.linalg.eigsh(block, k=1, which="LM", v0=v0, return_eigenvectors=False)[0])
    eigenvalues = np.asarray(candidates, dtype=np.float64)
    return float(eigenvalues[np.argmax(np.abs(eigenvalues))])


def rescale_laplacian(L: sp.spmatrix, lmax: float = 2.0) -> sp.csr_matrix:
    """The original's rescaling, ``L / (2 lmax) - I``.

    Its comment says ``2 L / lmax - I`` (the Chebyshev rescaling to [-1, 1]); the code divides
    by ``2 lmax`` instead, mapping the spectrum to [-1, -0.5]. Released weights were trained on
    this. The division is done as the original's in-place ``L /= 2 lmax`` did it in SciPy: a
    multiplication by the reciprocal.

    Args:
        L: (N, N) Laplacian.
        lmax: its largest eigenvalue.

    Returns:
        (N, N) CSR (a new matrix; ``L`` is not changed).
    """
    L = sp.csr_matrix(L, copy=True)
    L.data *= 1.0 / (lmax * 2)
    eye = sp.identity(L.shape[0], format="csr", dtype=L.dtype)
    return sp.csr_matrix(L - eye)


# ----------------------------------------------------------------------------------------------
# Everything together
# ----------------------------------------------------------------------------------------------

def coarsen(A: sp.spmatrix, levels: int) -> Tuple[List[sp.csr_matrix], List[sp.csr_matrix], Optional[List[List[int]]]]:
    """Coarsen ``A`` and renumber every level into the binary-tree order.

    Args:
        A: (N, N) symmetric adjacency of the mesh.
        levels: number of coarsenings.

    Returns:
        ``(adjacencies, laplacians, perms)``: ``levels + 1`` padded, permuted adjacencies and
        their (not rescaled) normalized Laplacians, finest first, and the vertex orders of
        :func:`binary_tree_permutations` (None when ``levels`` is 0).
    """
    graphs, parents = heavy_edge_matching(A, levels)
    perms = binary_tree_permutations(parents)
    adjacencies = []
    laplacians = []
    for i, W in enumerate(graphs):
        if i < levels:
            W = permute_adjacency(W, perms[i])
        else:
            W = sp.csr_matrix(W)
            W.eliminate_zeros()
        adjacencies.append(W)
        laplacians.append(normalized_laplacian(W))
    return adjacencies, laplacians, (perms if perms else None)

