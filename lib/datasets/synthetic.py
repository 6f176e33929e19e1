"""A procedurally generated dataset: random plausible poses, shapes and cameras, on the fly.

Clearly not a benchmark: numbers on it are not paper numbers. It exists so that training,
testing and the demo run end to end on a fresh machine, with the synthetic body and hand (or
the official SMPL / MANO files when configured).

Each sample ``i`` of a split is a pure function of ``(seed, split, i)``: its body pose, shape
and camera come from its own random stream, and the train and test streams never overlap.
Augmentation and synthesized 2D errors come from :meth:`PoseMeshDataset.sample_rng`, which
also depends on the epoch (:meth:`set_epoch`) and, through the mixer, on the draw.

Bodies (``DATASET.synthetic_body: smpl``): per-joint axis-angle limits (components drawn
around a neutral standing pose), a random heading about
the vertical axis with a slight tilt, shape ``N(0, 1)`` clipped to +-3 (the original resets
fits beyond 3), the root 3 to 7 m in front of a camera with focal length 1000-1500 px and a
principal point near the centre of a 1000 x 1000 image. Input joints (``human36``, ``coco``,
``smpl``) and target joints are regressed from the mesh with the mesh model's regressors.
Hands (``synthetic_body: mano``): random global orientation, finger poses within small
limits around MANO's mean pose, the wrist 0.4 to 1.0 m from the camera; joint set ``mano``.

Speed: the mesh model is evaluated in batches. :meth:`__getitems__` (used by the DataLoader's
automatic batching) evaluates one batch for all requested indices; :meth:`__getitem__`
evaluates the aligned chunk of ``chunk_size`` indices around ``i`` and keeps the last chunks
in memory, which serves sequential access (testing) at batch speed.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from ..coord_utils import cam2pixel
from .common import SPLITS, PoseMeshDataset

__all__ = ["SyntheticDataset", "sample_body_params", "sample_hand_params", "BODY_POSE_LIMITS", "BODY_POSE_NEUTRAL"]

_BODY_JOINT_SETS = ("human36", "coco", "smpl")
_HAND_JOINT_SETS = ("mano",)

# Axis-angle limits (radians) of the 23 SMPL body joints, per axis (x, y, z) as (low, high), in
# SMPL's rest frame: x to the body's left, y up, z forward. Knees bend about +x, elbows about
# -y (left) / +y (right), shoulders lower the arms about -z (left) / +z (right).
_LIMITS = {
    "L_Hip": ((-1.6, 0.4), (-0.4, 0.4), (-0.2, 0.8)),
    "R_Hip": ((-1.6, 0.4), (-0.4, 0.4), (-0.8, 0.2)),
    "Torso": ((-0.3, 0.5), (-0.3, 0.3), (-0.25, 0.25)),
    "L_Knee": ((0.0, 2.2), (-0.1, 0.1), (-0.1, 0.1)),
    "R_Knee": ((0.0, 2.2), (-0.1, 0.1), (-0.1, 0.1)),
    "Spine": ((-0.2, 0.3), (-0.2, 0.2), (-0.15, 0.15)),
    "L_Ankle": ((-0.4, 0.5), (-0.2, 0.2), (-0.2, 0.2)),
    "R_Ankle": ((-0.4, 0.5), (-0.2, 0.2), (-0.2, 0.2)),
    "Chest": ((-0.2, 0.3), (-0.2, 0.2), (-0.15, 0.15)),
    "L_Toe": ((-0.2, 0.2), (-0.1, 0.1), (-0.1, 0.1)),
    "R_Toe": ((-0.2, 0.2), (-0.1, 0.1), (-0.1, 0.1)),
    "Neck": ((-0.3, 0.4), (-0.4, 0.4), (-0.2, 0.2)),
    "L_Thorax": ((-0.15, 0.15), (-0.2, 0.2), (-0.2, 0.2)),
    "R_Thorax": ((-0.15, 0.15), (-0.2, 0.2), (-0.2, 0.2)),
    "Head": ((-0.3, 0.4), (-0.4, 0.4), (-0.2, 0.2)),
    "L_Shoulder": ((-0.6, 0.6), (-1.2, 0.5), (-1.4, 0.8)),
    "R_Shoulder": ((-0.6, 0.6), (-0.5, 1.2), (-0.8, 1.4)),
    "L_Elbow": ((-0.2, 0.2), (-2.2, 0.0), (-0.2, 0.2)),
    "R_Elbow": ((-0.2, 0.2), (0.0, 2.2), (-0.2, 0.2)),
    "L_Wrist": ((-0.5, 0.5), (-0.3, 0.3), (-0.5, 0.5)),
    "R_Wrist": ((-0.5, 0.5), (-0.3, 0.3), (-0.5, 0.5)),
    "L_Hand": ((-0.2, 0.2), (-0.2, 0.2), (-0.2, 0.2)),
    "R_Hand": ((-0.2, 0.2), (-0.2, 0.2), (-0.2, 0.2)),
}


# The most likely pose inside those limits (zero where not listed): arms lowered, elbows and
# knees slightly bent.
_NEUTRAL = {"L_Shoulder": (0.0, 0.0, -1.0), "R_Shoulder": (0.0, 0.0, 1.0), "L_Elbow": (0.0, -0.3, 0.0),
            "R_Elbow": (0.0, 0.3, 0.0), "L_Knee": (0.2, 0.0, 0.0), "R_Knee": (0.2, 0.0, 0.0)}


def _tables():
    from ..joints import get_joint_set

    names = get_joint_set("smpl").names[1:]
    limits = np.array([_LIMITS[n] for n in names], dtype=np.float64)  # 23 x 3 x 2
    neutral = np.array([_NEUTRAL.get(n, (0.0, 0.0, 0.0)) for n in names], dtype=np.float64)  # 23 x 3
    return limits, neutral


BODY_POSE_LIMITS, BODY_POSE_NEUTRAL = _tables()


def _stream(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), 1000 + SPLITS.index(split), int(index)]))


def sample_body_params(rng: np.random.Generator) -> Dict[str, np.ndarray]:
    """One body: pose (72,) axis-angle in the camera frame (y down, z forward), shape (10,),
    focal (2,), principal point (2,), root position (3,) in mm."""
    # each axis-angle component: normal around the neutral pose, a quarter of its range wide,
    # clipped to the limits
    lo, hi = BODY_POSE_LIMITS[..., 0], BODY_POSE_LIMITS[..., 1]
    body = np.clip(BODY_POSE_NEUTRAL + rng.standard_normal(lo.shape) * (hi - lo) / 4.0, lo, hi)
    heading = rng.uniform(0.0, 2.0 * np.pi)
    tilt = np.clip(rng.normal(0.0, 0.12, size=2), -0.35, 0.35)
    # SMPL is y-up facing +z; turning it by pi about x makes it upright and facing the camera
    orient = (Rotation.from_euler("y", heading) * Rotation.from_euler("xz", tilt) * Rotation.from_euler("x", np.pi))
    shape = np.clip(rng.standard_normal(10), -3.0, 3.0)
    focal = np.full(2, rng.uniform(1000.0, 1500.0))
    princpt = 500.0 + rng.uniform(-20.0, 20.0, size=2)
    depth = rng.uniform(3000.0, 7000.0)
    root = np.array([rng.uniform(-0.12, 0.12) * depth, rng.uniform(-0.08, 0.08) * depth, depth])
    return {"pose": np.concatenate([orient.as_rotvec(), body.reshape(-1)]), "shape": shape, "focal": focal,
            "princpt": princpt, "root": root}


def sample_hand_params(rng: np.random.Generator) -> Dict[str, np.ndarray]:
    """One right hand: pose (48,) (finger offsets from MANO's mean pose), shape (10,), camera."""
    orient = Rotation.random(random_state=rng)
    fingers = np.clip(rng.normal(0.0, 0.2, size=45), -0.5, 0.5)
    shape = np.clip(rng.standard_normal(10), -3.0, 3.0)
    focal = np.full(2, rng.uniform(1000.0, 1500.0))
    princpt = 500.0 + rng.uniform(-20.0, 20.0, size=2)
    depth = rng.uniform(400.0, 1000.0)
    root = np.array([rng.uniform(-0.1, 0.1) * depth, rng.uniform(-0.1, 0.1) * depth, depth])
    return {"pose": np.concatenate([orient.as_rotvec(), fingers]), "shape": shape, "focal": focal,
            "princpt": princpt, "root": root}


class SyntheticDataset(PoseMeshDataset):
    """Random bodies (or hands) seen by random cameras; the same schema as the real loaders.

    Args:
        split: 'train' or 'test' (sizes ``DATASET.synthetic_train_size`` / ``synthetic_test_size``).
        cfg: the configuration.
        mesh_model: the SMPL (or MANO for ``synthetic_body: mano``) model; default one built
            from ``DATASET.body_model``.
        seed: base seed of the sample streams.
        chunk_size: samples evaluated together by :meth:`__getitem__`.
        cache_chunks: evaluated chunks kept in memory.
    """

    name = "Synthetic"

    def __init__(self, split: str, cfg, mesh_model=None, seed: int = 0, chunk_size: int = 256, cache_chunks: int = 2):
        super().__init__(split, cfg, mesh_model, seed)
        self.body = cfg.DATASET.synthetic_body
        allowed = _HAND_JOINT_SETS if self.body == "mano" else _BODY_JOINT_SETS
        for what, js in (("input_joint_set", self.joint_set), ("target_joint_set", self.target_joint_set)):
            if js.name not in allowed:
                raise ValueError(f"Synthetic dataset with synthetic_body {self.body!r}: DATASET.{what} "
                                 f"{js.name!r} is not one of {', '.join(allowed)}")
        if self.mesh_model is None:
            from ..body_models import MANO, SMPL

            synthetic_files = cfg.DATASET.body_model == "synthetic"
            self.mesh_model = (MANO(synthetic=synthetic_files) if self.body == "mano"
                               else SMPL(synthetic=synthetic_files))
        expected_vertices = 778 if self.body == "mano" else 6890
        if int(self.mesh_model.vertex_num) != expected_vertices:
            raise ValueError(f"Synthetic dataset with synthetic_body {self.body!r} needs a mesh model with "
                             f"{expected_vertices} vertices, got {self.mesh_model!r}")
        self.size = int(cfg.DATASET.synthetic_train_size if self.is_train else cfg.DATASET.synthetic_test_size)
        if self.size <= 0:
            raise ValueError(f"Synthetic dataset: DATASET.synthetic_{split}_size must be positive, got {self.size}")
        self.chunk_size = int(chunk_size)
        self.cache_chunks = int(cache_chunks)
        self._cache: "OrderedDict[int, Dict[str, np.ndarray]]" = OrderedDict()

        # one stacked regressor, input rows then target rows, restricted to the vertices it reads
        reg_in = np.asarray(self.mesh_model.joint_regressor(self.joint_set.name), dtype=np.float32)
        reg_t = np.asarray(self.mesh_model.joint_regressor(self.target_joint_set.name), dtype=np.float32)
        stacked = np.concatenate([reg_in, reg_t])
        self._reg_cols = torch.from_numpy(np.flatnonzero(np.any(stacked != 0, axis=0)))
        self._reg = torch.from_numpy(stacked[:, self._reg_cols.numpy()])
        self._num_in = len(reg_in)

    def __len__(self) -> int:
        return self.size

    # ---- generation -------------------------------------------------------------------------
    def params(self, index: int) -> Dict[str, np.ndarray]:
        """The body / hand and camera parameters of sample ``index`` (deterministic)."""
        if not 0 <= index < self.size:
            raise IndexError(f"Synthetic {self.split} index {index} out of range (size {self.size})")
        rng = _stream(self.seed, self.split, index)
        return sample_hand_params(rng) if self.body == "mano" else sample_body_params(rng)

    @torch.no_grad()
    def generate(self, indices: Sequence[int]) -> Dict[str, np.ndarray]:
        """Evaluate the mesh model for ``indices`` in one batch.

        Returns (B = len(indices)): 'mesh' (B, V, 3) mm root-relative (target set's root);
        'joint_cam' (B, J, 3) mm input joints in the camera frame; 'joint_img' (B, J, 2)
        pixels; 'lift_pose3d' (B, J, 3) and 'reg_pose3d' (B, J_t, 3) mm root-relative;
        'focal', 'princpt' (B, 2); 'root_cam' (B, 3) mm, the target root in the camera frame.
        """
        params = [self.params(int(i)) for i in indices]
        pose = torch.from_numpy(np.stack([p["pose"] for p in params]).astype(np.float32))
        shape = torch.from_numpy(np.stack([p["shape"] for p in params]).astype(np.float32))
        verts, _ = self.mesh_model(pose, shape)
        verts = verts.float() * 1000.0  # B x V x 3, mm
        joints = torch.einsum("jv,bvc->bjc", self._reg, verts[:, self._reg_cols])
        joints_in, joints_t = joints[:, :self._num_in], joints[:, self._num_in:]
        root_t = joints_t[:, self.target_joint_set.root]  # B x 3
        mesh = (verts - root_t[:, None]).numpy()
        reg = (joints_t - root_t[:, None]).numpy()
        root_cam = np.stack([p["root"] for p in params])
        joint_cam = (joints_in - root_t[:, None]).numpy().astype(np.float64) + root_cam[:, None]
        focal = np.stack([p["focal"] for p in params])
        princpt = np.stack([p["princpt"] for p in params])
        joint_img = cam2pixel(joint_cam, focal[:, None], princpt[:, None])[..., :2]
        lift = joint_cam - joint_cam[:, self.joint_set.root:self.joint_set.root + 1]
        return {"mesh": mesh, "joint_cam": joint_cam, "joint_img": joint_img, "lift_pose3d": lift, "reg_pose3d": reg,
                "focal": focal, "princpt": princpt, "root_cam": root_cam}

    def _chunk(self, chunk: int) -> Dict[str, np.ndarray]:
        if chunk in self._cache:
            self._cache.move_to_end(chunk)
            return self._cache[chunk]
        start = chunk * self.chunk_size
        data = self.generate(range(start, min(start + self.chunk_size, self.size)))
        self._cache[chunk] = data
        while len(self._cache) > self.cache_chunks:
            self._cache.popitem(last=False)
        return data

    def raw(self, index: int) -> Dict[str, np.ndarray]:
        """Sample ``index`` before the input pipeline (see :meth:`generate` for the keys)."""
        if not 0 <= index < self.size:
            raise IndexError(f"Synthetic {self.split} index {index} out of range (size {self.size})")
        data = self._chunk(index // self.chunk_size)
        return {k: v[index % self.chunk_size] for k, v in data.items()}

    def _assemble(self, index: int, raw: Mapping[str, np.ndarray], draw: Optional[int] = None):
        return self.assemble(self.sample_rng(index, draw=draw), raw["joint_img"], raw["lift_pose3d"],
                             mesh_mm=raw["mesh"], reg_pose3d=raw["reg_pose3d"])

    def __getitem__(self, index: int):
        index = int(index)
        if index < 0:
            index += self.size
        return self._assemble(index, self.raw(index))

    def __getitems__(self, indices: Sequence[int]) -> List:
        """A whole batch with one mesh-model evaluation (the DataLoader calls this)."""
        return self._batch(indices, None)

    def draw_items(self, indices: Sequence[int], draws: Sequence[int]) -> List:
        """A batch whose random streams are keyed on ``draws`` (the mixer's positions)."""
        if len(draws) != len(indices):
            raise ValueError(f"Synthetic: {len(indices)} indices but {len(draws)} draws")
        return self._batch(indices, [int(d) for d in draws])

    def _batch(self, indices: Sequence[int], draws: Optional[List[int]]) -> List:
        indices = [int(i) + self.size if int(i) < 0 else int(i) for i in indices]
        for i in indices:
            if not 0 <= i < self.size:
                raise IndexError(f"Synthetic {self.split} index {i} out of range (size {self.size})")
        data = self.generate(indices)
        return [self._assemble(i, {k: v[n] for k, v in data.items()}, None if draws is None else draws[n])
                for n, i in enumerate(indices)]

    # ---- evaluation (the base class's, labelled) -----------------------------------------------
    summary_label = " [synthetic data, not paper numbers]"

    def _report(self, samples: int, joint_set: str, metrics: Mapping[str, float]) -> Dict:
        return {"dataset": "Synthetic", "note": "procedurally generated data; not comparable with paper numbers",
                "split": self.split, "body": self.body, "body_model": self.mesh_model.__class__.__name__,
                "body_model_source": getattr(self.mesh_model, "source", "unknown"), "seed": self.seed,
                "samples": int(samples), "joint_set": joint_set, "metrics_mm": dict(metrics)}

