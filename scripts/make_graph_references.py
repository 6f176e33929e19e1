"""Produce the small reference files of tests/data/ for the graph tests (not needed at run time).

The references hold what the ORIGINAL Pose2Mesh release computes under NumPy 1.x, whose scalar
sort fixed the vertex order of released weights. Three steps, two Python environments:

1. In this repository's environment, write the meshes to coarsen (a deterministic irregular test
   mesh, the synthetic SMPL body and MANO hand)::

       python scripts/make_graph_references.py meshes --out /tmp/graph_meshes.npz

2. In a scratch environment with the old NumPy
   (``python3 -m venv /tmp/np124 && /tmp/np124/bin/pip install numpy==1.24.4 'scipy<1.12'``),
   the NumPy 1.24 argsort references::

       /tmp/np124/bin/python scripts/make_graph_references.py sort --out tests/data/introsort_numpy124.npz

3. In the same scratch environment, the original release's ``build_coarse_graphs`` on those
   meshes (``--original-lib``: the ``lib/`` folder of a checkout of hongsukchoi/Pose2Mesh_RELEASE)::

       /tmp/np124/bin/python scripts/make_graph_references.py graphs --meshes /tmp/graph_meshes.npz \
           --original-lib /path/to/Pose2Mesh_RELEASE/lib --out tests/data/

Reference layout (``graphs_<case>.npz``, one per mesh; every joint set of the case in one file):
``faces``, ``levels``, ``joint_sets`` (names), ``graph_perm_{i}``, ``graph_perm_reverse``; per
mesh level ``i < levels``: ``A_{i}_sha256`` (exact adjacency), ``Lraw_{i}_sha256`` (exact
Laplacian before rescaling), ``lmax_{i}``, ``L_{i}_structure_sha256`` and sampled entries
``L_{i}_sample_{row,col,val}`` of the rescaled Laplacian (its last bits vary between runs of the
original: ARPACK starts from a random vector); per joint set ``J``: ``{J}_A_last_sha256``,
``{J}_L_last_sha256`` (the joint graph, exact).
"""
from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.util
import sys
import types
import warnings
from pathlib import Path

import numpy as np

CASES = {
    # case name -> (joint sets, levels)
    "testmesh": (("human36",), 9),
    "isolated_vertices": (("human36",), 5),
    "synthetic_smpl": (("human36", "coco"), 9),
    "synthetic_mano": (("mano",), 6),
}
SAMPLES_PER_LEVEL = 128


# ----------------------------------------------------------------------------------------------
# step 1: meshes
# ----------------------------------------------------------------------------------------------

def irregular_test_mesh(seed: int = 7, around: int = 60, rows: int = 50, unreferenced=()) -> np.ndarray:
    """An open cylinder grid (around x rows vertices) with random diagonals, mixed winding, a few
    duplicated faces (edges of weight 2 in the original's adjacency) and shuffled vertex ids.
    Faces touching the (shuffled) ids in ``unreferenced`` are dropped: isolated vertices."""
    rs = np.random.RandomState(seed)
    vid = np.arange(around * rows).reshape(rows, around)
    faces = []
    for r in range(rows - 1):
        for c in range(around):
            a, b = vid[r, c], vid[r, (c + 1) % around]
            d, e = vid[r + 1, c], vid[r + 1, (c + 1) % around]
            if rs.rand() < 0.5:
                tris = [(a, b, e), (a, e, d)]
            else:
                tris = [(a, b, d), (b, e, d)]
            for t in tris:
                faces.append(t if rs.rand() < 0.7 else t[::-1])
    faces = np.asarray(faces, dtype=np.int64)
    dup = faces[rs.choice(len(faces), 40, replace=False)]
    faces = np.concatenate([faces, dup, dup[:15]])
    relabel = rs.permutation(around * rows)
    faces = relabel[faces][rs.permutation(len(faces))]
    return faces[~np.isin(faces, unreferenced).any(axis=1)]


def make_meshes(out: Path) -> None:
    from pose2mesh.joints import get_joint_set

    arrays = {"testmesh": irregular_test_mesh(),
              # vertices 5 and 600 in no face: the original's row bookkeeping shifts after them
              "isolated_vertices": irregular_test_mesh(seed=11, around=40, rows=30, unreferenced=(5, 600))}
    for case, class_name in (("synthetic_smpl", "SMPL"), ("synthetic_mano", "MANO")):
        try:
            import pose2mesh.body_models as body_models

            arrays[case] = np.asarray(getattr(body_models, class_name)(synthetic=True).face, dtype=np.int64)
        except (ImportError, AttributeError, TypeError) as err:
            print(f"{case}: synthetic {class_name} unavailable ({err}), skipped")
    for name in ("human36", "coco", "mano"):
        js = get_joint_set(name)
        arrays[f"joints_{name}_num"] = np.array(js.num_joints)
        arrays[f"joints_{name}_skeleton"] = np.asarray(js.skeleton, dtype=np.int64)
        arrays[f"joints_{name}_pairs"] = np.asarray(js.graph_pairs, dtype=np.int64)
    np.savez(out, **arrays)
    print(f"wrote {out}")


# ----------------------------------------------------------------------------------------------
# step 2: NumPy 1.x argsort references
# ----------------------------------------------------------------------------------------------

def _require_old_numpy() -> None:
    major, minor = (int(x) for x in np.__version__.split(".")[:2])
    if (major, minor) >= (1, 25):
        sys.exit(f"run this step with NumPy < 1.25 (scalar sorts); this is NumPy {np.__version__}")


def median3_killer(n: int) -> np.ndarray:
    """Keys that drive a median-of-3 quicksort deep (McIlroy's adversary), so that NumPy's
    introsort falls back to heapsort. Built against a comparison-counting model of the partition
    steps; NumPy's own sort of the result is what the tests compare with."""
    gas = n
    val = [gas] * n
    state = {"solid": 0, "candidate": -1}

    def less(x, y):
        if val[x] == gas and val[y] == gas:
            victim = x if x == state["candidate"] else y
            val[victim] = state["solid"]
            state["solid"] += 1
        if val[x] == gas:
            state["candidate"] = x
        elif val[y] == gas:
            state["candidate"] = y
        return val[x] < val[y]

    a = list(range(n))
    stack = [(0, n - 1)]
    while stack:
        pl, pr = stack.pop()
        while pr - pl > 15:
            pm = pl + ((pr - pl) >> 1)
            if less(a[pm], a[pl]):
                a[pm], a[pl] = a[pl], a[pm]
            if less(a[pr], a[pm]):
                a[pr], a[pm] = a[pm], a[pr]
            if less(a[pm], a[pl]):
                a[pm], a[pl] = a[pl], a[pm]
            p = a[pm]
            pi, pj = pl, pr - 1
            a[pm], a[pj] = a[pj], a[pm]
            while True:
                pi += 1
                while less(a[pi], p):
                    pi += 1
                pj -= 1
                while less(p, a[pj]):
                    pj -= 1
                if pi >= pj:
                    break
                a[pi], a[pj] = a[pj], a[pi]
            a[pi], a[pr - 1] = a[pr - 1], a[pi]
            if pi - pl < pr - pi:
                stack.append((pi + 1, pr))
                pr = pi - 1
            else:
                stack.append((pl, pi - 1))
                pl = pi + 1
    keys = np.asarray(val, dtype=np.float64)
    return keys


def make_sort_references(out: Path) -> None:
    _require_old_numpy()
    rs = np.random.RandomState(20240)
    arrays = {"numpy_version": np.array(np.__version__)}
    cases = []
    # integer-valued degrees with massive ties, many sizes
    sizes = [0, 1, 2, 3, 15, 16, 17, 18, 31, 32, 33, 50, 64, 100, 127, 128, 129, 255, 300, 500, 778,
             1024, 2000, 6890]
    for n in sizes:
        for distinct in (1, 2, 3, 7):
            if n > 1000 and distinct != 7:
                continue
            cases.append(rs.randint(0, distinct, size=n).astype(np.float64) + 3)
    for _ in range(40):
        n = int(rs.randint(16, 400))
        cases.append(rs.randint(0, int(rs.randint(1, 12)), size=n).astype(np.float64))
    # sorted, reversed, organ pipe, few unique with structure
    for n in (40, 200, 700):
        base = np.repeat(np.arange(6), n // 6 + 1)[:n].astype(np.float64)
        cases += [base, base[::-1].copy(), np.concatenate([base[: n // 2], base[: n - n // 2][::-1]])]
    # floats: negatives, -0.0 vs 0.0, infinities, NaNs
    for n in (20, 90, 600):
        x = rs.choice([-2.5, -0.0, 0.0, 1.0, 1.0, np.inf, -np.inf, np.nan, 3.25], size=n)
        cases.append(x.astype(np.float64))
    # adversarial inputs that reach the heapsort fallback
    for n in (64, 200, 1000):
        cases.append(median3_killer(n))
    for k, keys in enumerate(cases):
        arrays[f"keys_{k}"] = keys
        arrays[f"order_{k}"] = np.argsort(keys, kind="quicksort").astype(np.int16)
    # heapsort alone (NumPy's aheapsort_ is the introsort's fallback)
    heap_cases = [rs.randint(0, 4, size=n).astype(np.float64) for n in (2, 3, 10, 33, 257, 1000)]
    for k, keys in enumerate(heap_cases):
        arrays[f"heap_keys_{k}"] = keys
        arrays[f"heap_order_{k}"] = np.argsort(keys, kind="heapsort").astype(np.int16)
    arrays["num_cases"] = np.array(len(cases))
    arrays["num_heap_cases"] = np.array(len(heap_cases))
    np.savez_compressed(out, **arrays)
    print(f"wrote {out}: {len(cases)} introsort cases, {len(heap_cases)} heapsort cases")


# ----------------------------------------------------------------------------------------------
# step 3: graph references from the original code
# ----------------------------------------------------------------------------------------------

def sha256_csr(m, dtype=np.float64) -> str:
    """Hash of a canonical CSR matrix: shape, indptr, indices (int64) and data (float64)."""
    import scipy.sparse as sp

    m = sp.csr_matrix(m)
    m.sum_duplicates()
    m.sort_indices()
    h = hashlib.sha256()
    h.update(np.asarray(m.shape, dtype="<i8").tobytes())
    h.update(np.asarray(m.indptr, dtype="<i8").tobytes())
    h.update(np.asarray(m.indices, dtype="<i8").tobytes())
    if dtype is not None:
        h.update(np.asarray(m.data, dtype="<f8").tobytes())
    return h.hexdigest()


def _import_original(lib: Path):
    """The original release's graph_utils and coarsening, importable under NumPy 1.24."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if not hasattr(np, "bool"):
            np.bool = bool  # removed in NumPy 1.24; the original's HEM_one_level uses it
    try:
        importlib.import_module("torch")
    except ImportError:  # build_coarse_graphs does not use torch; its module imports it
        sys.modules["torch"] = types.ModuleType("torch")
    importlib.import_module("scipy.sparse.linalg")  # the original reaches it through scipy.sparse

    modules = []
    for name in ("coarsening", "graph_utils"):  # graph_utils imports coarsening by that name
        spec = importlib.util.spec_from_file_location(name, lib / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        modules.append(module)
    return modules[1], modules[0]


def make_graph_references(meshes: Path, original_lib: Path, out_dir: Path) -> None:
    _require_old_numpy()
    original, orig_coarsening = _import_original(original_lib)
    m = np.load(meshes)
    out_dir.mkdir(parents=True, exist_ok=True)
    for case, (joint_sets, levels) in CASES.items():
        if case not in m:
            print(f"{case}: not in {meshes}, skipped")
            continue
        faces = m[case]
        lmax_seen = []
        real_lmax = original.lmax_L

        def recording_lmax(L):
            value = real_lmax(L)
            lmax_seen.append(float(value))
            return value

        original.lmax_L = recording_lmax
        arrays = {"faces": faces.astype(np.int16 if faces.max() < 2 ** 15 else np.int32), "levels": np.array(levels),
                  "joint_sets": np.array(joint_sets)}
        reference_perm = None
        rs = np.random.RandomState(5)
        for name in joint_sets:
            num = int(m[f"joints_{name}_num"])
            skeleton = [tuple(p) for p in m[f"joints_{name}_skeleton"].tolist()]
            pairs = [tuple(p) for p in m[f"joints_{name}_pairs"].tolist()]
            lmax_seen.clear()
            adj, lap, perm, perm_reverse = original.build_coarse_graphs(faces, num, skeleton, pairs, levels=levels)
            arrays[f"{name}_A_last_sha256"] = np.array(sha256_csr(adj[-1]))
            arrays[f"{name}_L_last_sha256"] = np.array(sha256_csr(lap[-1]))
            if reference_perm is not None:  # the mesh levels do not depend on the joint set
                assert all(list(p) == list(q) for p, q in zip(perm, reference_perm))
                continue
            reference_perm = perm
            int_type = np.int16 if len(perm[0]) < 2 ** 15 else np.int32
            for i, p in enumerate(perm):
                arrays[f"graph_perm_{i}"] = np.asarray(p).astype(int_type)
            arrays["graph_perm_reverse"] = np.asarray(perm_reverse).astype(int_type)
            raw_adj, raw_lap, _ = orig_coarsening.coarsen(original.build_graph(faces, faces.max() + 1), levels=levels)
            for i in range(levels):
                arrays[f"A_{i}_sha256"] = np.array(sha256_csr(adj[i]))
                assert sha256_csr(raw_adj[i]) == sha256_csr(adj[i])
                arrays[f"Lraw_{i}_sha256"] = np.array(sha256_csr(raw_lap[i]))
                arrays[f"lmax_{i}"] = np.array(lmax_seen[i])
                L = lap[i].tocoo()
                arrays[f"L_{i}_structure_sha256"] = np.array(sha256_csr(lap[i], dtype=None))
                pick = np.sort(rs.choice(L.nnz, min(SAMPLES_PER_LEVEL, L.nnz), replace=False))
                arrays[f"L_{i}_sample_row"] = L.row[pick].astype(int_type)
                arrays[f"L_{i}_sample_col"] = L.col[pick].astype(int_type)
                arrays[f"L_{i}_sample_val"] = L.data[pick].astype(np.float64)
        original.lmax_L = real_lmax
        path = out_dir / f"graphs_{case}.npz"
        np.savez_compressed(path, **arrays)
        print(f"wrote {path} ({path.stat().st_size // 1024} KiB): level sizes {[len(p) for p in reference_perm]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("meshes")
    p.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("sort")
    p.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("graphs")
    p.add_argument("--meshes", type=Path, required=True)
    p.add_argument("--original-lib", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.step == "meshes":
        make_meshes(args.out)
    elif args.step == "sort":
        make_sort_references(args.out)
    else:
        make_graph_references(args.meshes, args.original_lib, args.out)


if __name__ == "__main__":
    main()
