"""pose2mesh.graph_utils.build_coarse_graphs against the original release's outputs, plus its
invariants, the joint graph, the cache and the helpers.

References: tests/data/graphs_<case>.npz (scripts/make_graph_references.py: the original code
under NumPy 1.24) and, when present, the shared icosphere reference beside the repository.
"""
import hashlib
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import pose2mesh.graph_utils as graph_utils
from pose2mesh import paths
from pose2mesh.coarsening import coarsen, inverse_permutation
from pose2mesh.graph_utils import (build_coarse_graphs, coarse_faces, coarse_vertices, joint_adjacency,
                                   mesh_adjacency, sparse_python_to_torch)
from pose2mesh.joints import get_joint_set

DATA = Path(__file__).parent / "data"
SHARED_REFERENCE = Path(paths.repo_root()).parent / "shared" / "reference"
CASES = sorted(p.stem[len("graphs_"):] for p in DATA.glob("graphs_*.npz"))


def sha256_csr(m, with_data=True) -> str:
    """Same hash as scripts/make_graph_references.py."""
    m = sp.csr_matrix(m)
    h = hashlib.sha256()
    h.update(np.asarray(m.shape, dtype="<i8").tobytes())
    h.update(np.asarray(m.indptr, dtype="<i8").tobytes())
    h.update(np.asarray(m.indices, dtype="<i8").tobytes())
    if with_data:
        h.update(np.asarray(m.data, dtype="<f8").tobytes())
    return h.hexdigest()


def build(faces, joint_set_name, levels, **kwargs):
    js = get_joint_set(joint_set_name)
    kwargs.setdefault("cache", False)
    return build_coarse_graphs(faces, js.num_joints, js.skeleton, js.graph_pairs, levels=levels, **kwargs)


def load(case):
    with np.load(DATA / f"graphs_{case}.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def testmesh_graphs():
    ref = load("testmesh")
    return ref, build(ref["faces"], "human36", int(ref["levels"]))


# ----------------------------------------------------------------------------------------------
# equal to the original
# ----------------------------------------------------------------------------------------------

@pytest.mark.skipif(not (SHARED_REFERENCE / "icosphere_graphs_human36.npz").is_file(),
                    reason="shared reference folder not present")
def test_matches_original_on_shared_icosphere():
    with np.load(SHARED_REFERENCE / "icosphere_graphs_human36.npz") as z:
        ref = {k: z[k] for k in z.files}
    adj, lap, perm, perm_reverse = build(ref["faces"], "human36", 9)
    num = int(ref["num_levels"])
    assert len(adj) == len(lap) == len(perm) == num == 10
    assert isinstance(perm, list) and all(isinstance(p, list) for p in perm)
    for i in range(num):
        assert perm[i] == ref[f"graph_perm_{i}"].tolist(), f"level {i}"
        for name, mats in (("A", adj), ("L", lap)):
            m = mats[i]
            assert type(m) is sp.csr_matrix and m.dtype == np.float64
            assert m.shape == tuple(ref[f"{name}_{i}_shape"])
            np.testing.assert_array_equal(m.indptr, ref[f"{name}_{i}_indptr"])
            np.testing.assert_array_equal(m.indices, ref[f"{name}_{i}_indices"])
        np.testing.assert_array_equal(adj[i].data, ref[f"A_{i}_data"])
        np.testing.assert_allclose(lap[i].data, ref[f"L_{i}_data"], rtol=0, atol=1e-13)
    assert perm_reverse.dtype == np.int64
    np.testing.assert_array_equal(perm_reverse, ref["graph_perm_reverse"])


@pytest.mark.parametrize("case", CASES)
def test_matches_original_references(case):
    ref = load(case)
    levels = int(ref["levels"])
    faces = ref["faces"].astype(np.int64)
    raw_adj, raw_lap, raw_perm = coarsen(mesh_adjacency(faces), levels)
    for name in ref["joint_sets"]:
        adj, lap, perm, perm_reverse = build(faces, str(name), levels)
        assert len(perm) == len(adj) == len(lap) == levels + 1
        for i in range(levels + 1):
            assert perm[i] == ref[f"graph_perm_{i}"].tolist(), f"{case}/{name}: level {i}"
        np.testing.assert_array_equal(perm_reverse, ref["graph_perm_reverse"])
        for i in range(levels):
            assert sha256_csr(adj[i]) == str(ref[f"A_{i}_sha256"]), f"adjacency {i}"
            assert sha256_csr(raw_lap[i]) == str(ref[f"Lraw_{i}_sha256"]), f"Laplacian {i} before rescaling"
            assert sha256_csr(lap[i], with_data=False) == str(ref[f"L_{i}_structure_sha256"])
            rows, cols = ref[f"L_{i}_sample_row"].astype(np.int64), ref[f"L_{i}_sample_col"].astype(np.int64)
            got = np.asarray(lap[i][rows, cols]).ravel()
            np.testing.assert_allclose(got, ref[f"L_{i}_sample_val"], rtol=0, atol=1e-13)
        assert sha256_csr(adj[-1]) == str(ref[f"{name}_A_last_sha256"])
        assert sha256_csr(lap[-1]) == str(ref[f"{name}_L_last_sha256"])


# ----------------------------------------------------------------------------------------------
# invariants
# ----------------------------------------------------------------------------------------------

def test_permutations_form_a_binary_tree(testmesh_graphs):
    ref, (adj, lap, perm, perm_reverse) = testmesh_graphs
    levels = int(ref["levels"])
    num_vertices = int(ref["faces"].max()) + 1
    for i, p in enumerate(perm):
        assert sorted(p) == list(range(len(p)))  # a bijection
        assert len(p) == len(perm[-1]) * 2 ** (levels - i)
    np.testing.assert_array_equal(np.asarray(perm[0])[perm_reverse], np.arange(len(perm[0])))
    np.testing.assert_array_equal(perm_reverse, inverse_permutation(perm[0]))
    # un-permuting a padded output recovers the mesh order
    x = np.random.RandomState(0).rand(num_vertices, 3)
    padded = np.zeros((len(perm[0]), 3))
    real = np.asarray(perm[0]) < num_vertices
    padded[real] = x[np.asarray(perm[0])[real]]
    np.testing.assert_array_equal(padded[perm_reverse[:num_vertices]], x)
    # pairs (2k, 2k + 1) merge into k: coarse weights are the fine block sums
    for i in range(levels - 1):
        n = adj[i].shape[0]
        pool = sp.csr_matrix((np.ones(n), (np.arange(n), np.arange(n) // 2)), shape=(n, n // 2))
        np.testing.assert_array_equal((pool.T @ adj[i] @ pool).toarray(), adj[i + 1].toarray())


def test_mesh_laplacians_rescaled_joint_laplacian_not(testmesh_graphs):
    ref, (adj, lap, perm, _) = testmesh_graphs
    levels = int(ref["levels"])
    for i in (levels - 3, levels - 2, levels - 1):  # small levels: dense eigenvalues
        eig = np.linalg.eigvalsh(lap[i].toarray())
        assert eig.min() >= -1 - 1e-12 and eig.max() == pytest.approx(-0.5, abs=1e-12)  # L / (2 lmax) - I
    js = get_joint_set("human36")
    joint = joint_adjacency(js.num_joints, js.skeleton, js.graph_pairs)
    np.testing.assert_array_equal(adj[-1].toarray(), joint)
    assert np.all(np.diag(joint) == 1) and joint.sum() == 17 + 2 * (16 + 6)
    d = 1 / np.sqrt(joint.sum(axis=0) + np.spacing(0.0))
    np.testing.assert_allclose(lap[-1].toarray(), np.eye(17) - d[:, None] * joint * d[None, :], atol=1e-15)
    assert np.all(lap[-1].diagonal() > 0)  # not rescaled (a rescaled diagonal is negative)


def test_mesh_adjacency_weights_as_the_original():
    # the original's build_graph gives this matrix (checked under NumPy 1.24)
    faces = np.array([[0, 1, 2], [0, 1, 2], [0, 1, 2], [3, 4, 5], [3, 4, 5], [5, 4, 6]])
    expected = np.zeros((7, 7))
    for i, j, w in ((0, 1, 2), (1, 2, 2), (0, 2, 2),  # each seen 3 times in one direction: 3 - 1
                    (3, 4, 1), (4, 5, 1), (3, 5, 1),  # twice: 2 - 1
                    (4, 6, 1), (5, 6, 1)):
        expected[i, j] = expected[j, i] = w
    A = mesh_adjacency(faces)
    assert type(A) is sp.csr_matrix and A.dtype == np.float64 and A.has_canonical_format
    np.testing.assert_array_equal(A.toarray(), expected)


def test_bad_inputs_are_refused():
    js = get_joint_set("human36")
    faces = np.array([[0, 1, 2], [1, 2, 3]])
    for bad in (np.zeros((0, 3), int), np.array([0, 1, 2]), np.array([[0, 1, -2]]), np.array([[0.5, 1, 2]])):
        with pytest.raises(ValueError):
            build_coarse_graphs(bad, 17, js.skeleton, js.graph_pairs, levels=1, cache=False)
    with pytest.raises(ValueError):
        build_coarse_graphs(faces, 17, js.skeleton, js.graph_pairs, levels=0, cache=False)
    with pytest.raises(ValueError, match="out of range"):
        build_coarse_graphs(faces, 5, js.skeleton, js.graph_pairs, levels=1, cache=False)


# ----------------------------------------------------------------------------------------------
# cache
# ----------------------------------------------------------------------------------------------

def _assert_same(a, b):
    adj_a, lap_a, perm_a, rev_a = a
    adj_b, lap_b, perm_b, rev_b = b
    assert perm_a == perm_b
    np.testing.assert_array_equal(rev_a, rev_b)
    assert rev_a.dtype == rev_b.dtype == np.int64
    for x, y in zip(adj_a + lap_a, adj_b + lap_b):
        assert type(x) is type(y) is sp.csr_matrix
        assert sha256_csr(x) == sha256_csr(y)


def test_cache_hit_equal_and_fast(tmp_path, monkeypatch):
    ref = load("testmesh")
    faces, levels = ref["faces"], int(ref["levels"])
    first = build(faces, "human36", levels, cache=True, cache_dir=tmp_path)
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz"

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(graph_utils, "_build", no_rebuild)
    start = time.perf_counter()
    second = build(faces, "human36", levels, cache=True, cache_dir=tmp_path)
    assert time.perf_counter() - start < 0.5  # milliseconds when the machine is idle
    _assert_same(first, second)
    second[1].clear()  # callers get fresh objects
    _assert_same(first, build(faces, "human36", levels, cache=True, cache_dir=tmp_path))
    # another joint set or level count is another file
    monkeypatch.undo()
    build(faces, "coco", levels, cache=True, cache_dir=tmp_path)
    build(faces, "human36", levels - 1, cache=True, cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 3


def test_corrupt_cache_is_rebuilt(tmp_path):
    faces = np.load(DATA / "graphs_testmesh.npz")["faces"]
    good = build(faces, "human36", 4, cache=True, cache_dir=tmp_path)
    (path,) = tmp_path.iterdir()
    content = path.read_bytes()
    for corrupt in (b"not a zip file", content[: len(content) // 2],
                    content[:2000] + bytes(b ^ 0xFF for b in content[2000:2100]) + content[2100:]):
        path.write_bytes(corrupt)
        _assert_same(good, build(faces, "human36", 4, cache=True, cache_dir=tmp_path))
        assert path.read_bytes() == content  # rewritten
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary files left


def test_default_cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("POSE2MESH_CACHE", str(tmp_path))
    faces = np.array([[0, 1, 2], [1, 2, 3], [2, 3, 0]])
    build(faces, "human36", 1, cache=True)
    assert len(list((tmp_path / "graphs").glob("*.npz"))) == 1


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------

def test_sparse_python_to_torch():
    m = sp.csr_matrix(np.array([[0.0, 1.5, 0.0], [2.0, 0.0, -1.0]]))
    t = sparse_python_to_torch(m)
    assert t.layout == torch.sparse_coo and t.dtype == torch.float32 and t.shape == (2, 3)
    np.testing.assert_array_equal(t.to_dense().numpy(), m.toarray().astype(np.float32))
    x = torch.randn(3, 4)
    torch.testing.assert_close(torch.sparse.mm(t, x), torch.from_numpy(m.toarray()).float() @ x)


def test_coarse_vertices_and_faces(testmesh_graphs):
    ref, (_, _, perm, _) = testmesh_graphs
    faces = ref["faces"].astype(np.int64)
    verts = np.random.RandomState(2).rand(int(faces.max()) + 1, 3)
    levels = coarse_vertices(verts, perm)
    assert [len(v) for v in levels] == [len(p) for p in perm]
    real = np.asarray(perm[0]) < len(verts)
    np.testing.assert_array_equal(levels[0][real], verts[np.asarray(perm[0])[real]])
    assert np.isnan(levels[0][~real]).all()
    pair = levels[0][:2]
    expected = np.nanmean(pair, axis=0) if not np.isnan(pair).all() else np.full(3, np.nan)
    np.testing.assert_allclose(levels[1][0], expected)
    assert not np.isnan(levels[-1]).any()
    tris = coarse_faces(faces, perm)
    assert len(tris) == len(perm) and len(tris[0]) == len(faces)
    for level_tris, size in zip(tris, (len(p) for p in perm)):
        assert level_tris.max() < size and np.all(level_tris[:, 0] != level_tris[:, 1])
