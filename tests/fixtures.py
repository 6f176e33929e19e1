"""Tiny datasets in each dataset's real file format, written into a temporary ``data/`` folder.

Every writer generates a few bodies (or hands) with the synthetic body model, derives the
annotations the real files hold from them (3D joints by the model's joint regressors, 2D joints
by the dataset's camera model, detector outputs as noisy projections), and writes them with the
original release's file names and JSON fields. Each returns a small dict of facts the tests
check against (sample counts, which samples must be invalid, the ground truth by image).

The poses are random but plausible (small joint angles around an upright body); cameras look
at the person. Numbers on these fixtures mean nothing beyond consistency.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np
import torch
from scipy.spatial.transform import Rotation

__all__ = ["synthetic_smpl", "synthetic_mano", "write_regressors", "write_human36m", "write_pw3d", "write_coco",
           "write_muco", "write_amass", "write_surreal", "write_freihand", "write_all"]

COCO_ROOT, H36M_ROOT = 17, 0


# --------------------------------------------------------------------------------------------
# body model helpers
# --------------------------------------------------------------------------------------------

def synthetic_smpl():
    from pose2mesh.body_models import SMPL

    return SMPL(synthetic=True)


def synthetic_mano():
    from pose2mesh.body_models import MANO

    return MANO(synthetic=True)


def _smpl(smpl, pose, shape, trans=None, gender="neutral"):
    """Vertices and joints in metres (numpy) from ``smpl.layer[gender]``."""
    with torch.no_grad():
        args = [torch.as_tensor(pose, dtype=torch.float32), torch.as_tensor(shape, dtype=torch.float32)]
        if trans is not None:
            args.append(torch.as_tensor(trans, dtype=torch.float32))
        verts, joints = smpl.layer[gender](*args)
    return verts.numpy().astype(np.float64), joints.numpy().astype(np.float64)


def _regress(regressor, verts):
    return np.einsum("jv,nvc->njc", np.asarray(regressor, dtype=np.float64), verts)


def _coco19(regressor, verts):
    j = _regress(regressor, verts)[:, :17]
    pelvis = (j[:, 11] + j[:, 12]) / 2
    neck = (j[:, 5] + j[:, 6]) / 2
    return np.concatenate([j, pelvis[:, None], neck[:, None]], axis=1)


def _project(points, focal, princpt):
    points = np.asarray(points, dtype=np.float64)
    return points[..., :2] / points[..., 2:3] * np.asarray(focal) + np.asarray(princpt)


def _bbox(joint_img, margin=1.2):
    lo, hi = joint_img.min(axis=0), joint_img.max(axis=0)
    c, s = (lo + hi) / 2, (hi - lo) * margin
    return [float(c[0] - s[0] / 2), float(c[1] - s[1] / 2), float(s[0]), float(s[1])]


def _body_poses(rng, n, root_rotations, scale=0.15):
    """``n`` poses: the given root rotations (matrices) and small random joint angles."""
    pose = rng.normal(0.0, scale, size=(n, 72))
    pose[:, :3] = Rotation.from_matrix(root_rotations).as_rotvec()
    return pose


def _shapes(rng, n):
    return rng.normal(0.0, 0.5, size=(n, 10)).clip(-2.0, 2.0)


def _rot_x(deg):
    return Rotation.from_euler("x", deg, degrees=True).as_matrix()


def _yaws(rng, n, axis="z"):
    return Rotation.from_euler(axis, rng.uniform(-180, 180, size=(n, 1)), degrees=True).as_matrix()


def _look_at(position, target, up=(0.0, 0.0, 1.0)):
    """World-to-camera rotation (x right, y down, z forward) of a camera at ``position``."""
    z = np.asarray(target, dtype=np.float64) - np.asarray(position, dtype=np.float64)
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z])


def _dump(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f)


def _tolist(a):
    return np.asarray(a, dtype=np.float64).tolist()


def write_regressors(data_dir, smpl) -> None:
    """The synthetic body's regressors where the original release keeps the real ones."""
    data_dir = Path(data_dir)
    (data_dir / "Human36M").mkdir(parents=True, exist_ok=True)
    (data_dir / "COCO").mkdir(parents=True, exist_ok=True)
    np.save(data_dir / "Human36M" / "J_regressor_h36m_correct.npy",
            np.asarray(smpl.joint_regressor("human36"), dtype=np.float32))
    np.save(data_dir / "COCO" / "J_regressor_coco.npy", np.asarray(smpl.joint_regressor("coco"), dtype=np.float32)[:17])


# --------------------------------------------------------------------------------------------
# Human3.6M
# --------------------------------------------------------------------------------------------

def write_human36m(data_dir, smpl, seed: int = 0, frames: Sequence[int] = (0, 3, 5, 10, 50, 100),
                   actions: Sequence[int] = (2, 3), cams: Sequence[int] = (1, 2)) -> Dict:
    """``Human36M/annotations/Human36M_subject{S}_{data,camera,joint_3d,smpl_param}.json`` for
    subjects 1, 5, 6, 7, 8, 9, 11 and ``absnet_output_on_testset.json``.

    Subject 1, action 2, frame 5 has no SMPL fit (skipped); subject 1, action 3, frame 10 has
    annotated joints 60 mm off its fit (fitting error above 25 mm: mesh invalid).
    """
    rng = np.random.default_rng(seed)
    root = Path(data_dir) / "Human36M"
    reg = smpl.joint_regressor("human36")
    focal, princpt, width, height = [1145.0, 1144.0], [512.0, 515.0], 1000, 1002
    img_id = ann_id = 0
    absnet: Dict[str, list] = {}
    truth: Dict[str, Dict] = {}
    counts = {"train": 0, "test": 0}
    bad_fit, no_fit = [], []
    for subject in (1, 5, 6, 7, 8, 9, 11):
        split = "train" if subject in (1, 5, 6, 7, 8) else "test"
        ratio = 5 if split == "train" else 50
        cameras = {}
        for cam in cams:
            azimuth = np.deg2rad(40.0 + 110.0 * cam)
            position = np.array([4500.0 * np.cos(azimuth), 4500.0 * np.sin(azimuth), 1600.0])
            R = _look_at(position, [0.0, 0.0, 900.0])
            cameras[str(cam)] = {"R": _tolist(R), "t": _tolist(-R @ position), "f": focal, "c": princpt}
        states = [(a, fr) for a in actions for fr in frames]
        n = len(states)
        pose = _body_poses(rng, n, _yaws(rng, n) @ _rot_x(90.0))
        shape = _shapes(rng, n)
        trans = np.concatenate([rng.uniform(-0.3, 0.3, (n, 2)), np.full((n, 1), 0.9)], axis=1)
        verts, _ = _smpl(smpl, pose, shape, trans)
        joints_world = _regress(reg, verts) * 1000.0
        images, anns, joint_3d, smpl_param = [], [], {}, {}
        for k, (action, frame) in enumerate(states):
            joints = joints_world[k].copy()
            key = (subject, action, frame)
            if key == (1, 3, 10):
                joints[1:7] += 60.0
            joint_3d.setdefault(str(action), {}).setdefault("1", {})[str(frame)] = _tolist(joints)
            if key != (1, 2, 5):
                smpl_param.setdefault(str(action), {}).setdefault("1", {})[str(frame)] = {
                    "pose": _tolist(pose[k]), "shape": _tolist(shape[k]), "trans": _tolist(trans[k])}
            for cam in cams:
                folder = f"s_{subject:02d}_act_{action:02d}_subact_01_ca_{cam:02d}"
                file_name = f"{folder}/{folder}_{frame + 1:06d}.jpg"
                name = file_name.split("/")[-1]
                cam_p = cameras[str(cam)]
                joint_cam = joints @ np.asarray(cam_p["R"]).T + np.asarray(cam_p["t"])
                joint_img = _project(joint_cam, focal, princpt)
                images.append({"id": img_id, "file_name": file_name, "width": width, "height": height,
                               "subject": subject, "action_idx": action, "subaction_idx": 1, "cam_idx": cam,
                               "frame_idx": frame})
                anns.append({"id": ann_id, "image_id": img_id, "bbox": _bbox(joint_img),
                             "keypoints_vis": [True] * 17})
                if frame % ratio == 0:
                    if key == (1, 2, 5):
                        no_fit.append(name)
                    else:
                        counts[split] += 1
                        truth[name] = {"joint_cam": joint_cam, "focal": focal, "princpt": princpt}
                        if key == (1, 3, 10):
                            bad_fit.append(name)
                        if split == "test":
                            absnet[name] = _tolist(joint_img + rng.normal(0, 3.0, joint_img.shape))
                img_id += 1
                ann_id += 1
        prefix = root / "annotations" / f"Human36M_subject{subject}"
        _dump(Path(f"{prefix}_data.json"), {"images": images, "annotations": anns})
        _dump(Path(f"{prefix}_camera.json"), cameras)
        _dump(Path(f"{prefix}_joint_3d.json"), joint_3d)
        _dump(Path(f"{prefix}_smpl_param.json"), smpl_param)
    _dump(root / "absnet_output_on_testset.json", absnet)
    write_regressors(data_dir, smpl)
    return {"counts": counts, "bad_fit": bad_fit, "no_fit": no_fit, "truth": truth}


# --------------------------------------------------------------------------------------------
# 3DPW
# --------------------------------------------------------------------------------------------

def write_pw3d(data_dir, smpl, seed: int = 1, split: str = "test", frames: int = 5) -> Dict:
    """``PW3D/data/3DPW_latest_{split}.json`` and ``darkpose_3dpw_{split}set_output.json``.

    Two sequences: one with two people (``frames`` frames), one with one person (``frames - 1``
    frames, one of them without a valid camera pose, so absent). SMPL parameters are in the
    camera frame, as the original's ``3dpw2coco.py`` wrote them (root rotated by the camera,
    translation folded in).
    """
    rng = np.random.default_rng(seed)
    root = Path(data_dir) / "PW3D" / "data"
    focal, princpt, width, height = [1960.0, 1960.0], [540.0, 960.0], 1080, 1920
    reg_coco = smpl.joint_regressor("coco")
    images, anns, dets = [], [], []
    image_ids: Dict = {}
    ann_id = 0
    per_video: Dict[str, int] = {}
    for seq_i, (sequence, people, n_frames) in enumerate((("downtown_test_00", 2, frames),
                                                         ("flat_test_01", 1, frames - 1))):
        for person in range(people):
            base = _body_poses(rng, 1, _yaws(rng, 1, "y") @ _rot_x(180.0))[0]
            delta = rng.normal(0, 0.02, 72)
            shape = _shapes(rng, 1)[0]
            gender = ("male", "female")[person % 2]
            start = np.array([-0.6 + 1.2 * person, 0.2, 4.0 + person])
            for frame in range(n_frames):
                if seq_i == 1 and frame == 2:
                    continue  # campose_valid == 0: no annotation for this frame
                pose = base + frame * delta
                trans = start + np.array([0.02 * frame, 0.0, 0.0])
                verts, joints = _smpl(smpl, pose[None], shape[None], trans[None], gender)
                coco_img = _project(_coco19(reg_coco, verts * 1000.0)[0, :17], focal, princpt)
                if (sequence, frame) not in image_ids:
                    image_ids[(sequence, frame)] = len(images)
                    images.append({"id": len(images), "file_name": f"image_{frame:05d}.jpg", "sequence": sequence,
                                   "frame_idx": frame, "width": width, "height": height,
                                   "cam_param": {"focal": focal, "princpt": princpt, "R": _tolist(np.eye(3)),
                                                 "t": [0.0, 0.0, 0.0]}})
                this_img = image_ids[(sequence, frame)]
                joint_cam = joints[0] * 1000.0
                anns.append({"id": ann_id, "image_id": this_img, "person_id": person,
                             "bbox": _bbox(_project(joint_cam, focal, princpt)),
                             "smpl_param": {"shape": _tolist(shape), "pose": _tolist(pose), "trans": _tolist(trans),
                                            "gender": gender},
                             "joint_cam": _tolist(joint_cam), "joint_img": _tolist(_project(joint_cam, focal, princpt)),
                             "fitted_joint_cam": _tolist(joints[0]),
                             "openpose_result": _tolist(np.zeros((18, 3)))})
                kps = np.concatenate([coco_img + rng.normal(0, 2.0, coco_img.shape), np.ones((17, 1))], axis=1)
                dets.append({"annotation_id": ann_id, "image_id": this_img, "keypoints": _tolist(kps)})
                per_video[f"{sequence}{person}"] = per_video.get(f"{sequence}{person}", 0) + 1
                ann_id += 1
    _dump(root / f"3DPW_latest_{split}.json", {"images": images, "annotations": anns})
    _dump(root / f"darkpose_3dpw_{split}set_output.json", dets)
    write_regressors(data_dir, smpl)
    return {"count": len(anns), "videos": per_video}


# --------------------------------------------------------------------------------------------
# COCO
# --------------------------------------------------------------------------------------------

def write_coco(data_dir, smpl, seed: int = 2) -> Dict:
    """``COCO/annotations/person_keypoints_train2017.json`` and ``coco_smplify_train.json``.

    Six people on three images: two good fits (one with two invisible keypoints), one whose
    keypoints are 40 px off its fit (fitting error above 3 px in the 64 x 64 crop: invalid), one
    crowd annotation, one without keypoints and one without an SMPL fit (all three skipped).
    Fits are weak-perspective: ``x_img = X_mm / 1000 * s + t``.
    """
    rng = np.random.default_rng(seed)
    root = Path(data_dir) / "COCO" / "annotations"
    reg = smpl.joint_regressor("coco")
    images = [{"id": i + 1, "file_name": f"{i + 1:012d}.jpg", "width": 640, "height": 480} for i in range(3)]
    kinds = ["good", "invisible", "bad_fit", "crowd", "no_keypoints", "no_fit"]
    n = len(kinds)
    pose = _body_poses(rng, n, _yaws(rng, n, "y") @ _rot_x(180.0))
    shape = _shapes(rng, n)
    verts, _ = _smpl(smpl, pose, shape)
    coco = _coco19(reg, verts * 1000.0)[:, :17]
    anns, fits = [], {}
    valid_names = []
    for k, kind in enumerate(kinds):
        aid = 100 + k
        s, t = 180.0 + 20 * k, np.array([160.0 + 60 * k, 240.0])
        kps = np.concatenate([coco[k, :, :2] / 1000.0 * s + t, np.full((17, 1), 2.0)], axis=1)
        if kind == "invisible":
            kps[[3, 4], 2] = 0
        if kind == "bad_fit":
            kps[5:, :2] += 40.0
        if kind == "no_keypoints":
            kps[:, 2] = 0
        anns.append({"id": aid, "image_id": 1 + k % 3, "category_id": 1, "iscrowd": int(kind == "crowd"),
                     "num_keypoints": int((kps[:, 2] > 0).sum()), "keypoints": _tolist(kps.reshape(-1)),
                     "bbox": _bbox(kps[:, :2]), "area": 1000.0})
        if kind != "no_fit":
            fits[str(aid)] = {"smpl_param": {"pose": _tolist(pose[k]), "shape": _tolist(shape[k])},
                              "cam_param": {"s": s, "t": _tolist(t)}}
        if kind in ("good", "invisible", "bad_fit"):
            valid_names.append(kind)
    _dump(root / "person_keypoints_train2017.json",
          {"images": images, "annotations": anns,
           "categories": [{"id": 1, "name": "person", "supercategory": "person"}]})
    _dump(root / "coco_smplify_train.json", fits)
    write_regressors(data_dir, smpl)
    return {"count": 3, "kinds": valid_names, "bad_fit_index": valid_names.index("bad_fit")}


# --------------------------------------------------------------------------------------------
# MuCo-3DHP
# --------------------------------------------------------------------------------------------

def write_muco(data_dir, smpl, seed: int = 3) -> Dict:
    """``MuCo/data/MuCo-3DHP.json`` and ``MuCo/data/smpl_param.json``: four composited images of
    two people each. The loader keeps the person closest to the camera; on image 3 that person's
    fit is NaN and on image 4 it has none (both images skipped); on image 2 the annotated joints
    are 80 mm off the fit (invalid)."""
    from pose2mesh.datasets.muco import MUCO_JOINTS
    from pose2mesh.joints import get_joint_set

    rng = np.random.default_rng(seed)
    root = Path(data_dir) / "MuCo" / "data"
    h36m_names = get_joint_set("human36").names
    reg = smpl.joint_regressor("human36")
    focal, princpt = [1500.0, 1500.0], [1024.0, 1024.0]
    images, anns, params = [], [], {}
    ann_id = 0
    for img in range(4):
        images.append({"id": img, "file_name": f"augmented_set/{img:06d}.jpg", "width": 2048, "height": 2048,
                       "f": focal, "c": princpt})
        pose = _body_poses(rng, 2, _yaws(rng, 2, "y") @ _rot_x(180.0))
        shape = _shapes(rng, 2)
        trans = np.array([[-0.5, 0.1, 3.5], [0.6, 0.1, 5.0]])
        verts, joints = _smpl(smpl, pose, shape, trans)
        h36m = _regress(reg, verts) * 1000.0
        for person in range(2):
            muco = np.zeros((21, 3))
            for j, name in enumerate(MUCO_JOINTS):
                if name in h36m_names:
                    muco[j] = h36m[person, h36m_names.index(name)]
            extra = {"Head_top": h36m[person, 10] + [0, -80, 0], "Thorax": h36m[person, 8], "Spine": h36m[person, 7],
                     "R_Hand": h36m[person, 16], "L_Hand": h36m[person, 13],
                     "R_Toe": joints[person, 11] * 1000.0, "L_Toe": joints[person, 10] * 1000.0}
            for name, value in extra.items():
                muco[MUCO_JOINTS.index(name)] = value
            if img == 1 and person == 0:
                muco[[2, 3, 4, 8, 9, 10]] += 80.0
            p = {"pose": _tolist(pose[person]), "shape": _tolist(shape[person]), "trans": _tolist(trans[person])}
            if img == 2 and person == 0:
                p["pose"][5] = float("nan")
            if not (img == 3 and person == 0):
                params[str(ann_id)] = p
            img_xy = _project(muco, focal, princpt)
            anns.append({"id": ann_id, "image_id": img, "keypoints_cam": _tolist(muco), "keypoints_img": _tolist(img_xy),
                         "bbox": _bbox(img_xy)})
            ann_id += 1
    _dump(root / "MuCo-3DHP.json", {"images": images, "annotations": anns})
    with open(root / "smpl_param.json", "w") as f:
        json.dump(params, f)  # NaN written as the bare token NaN, which Python's json reads back
    write_regressors(data_dir, smpl)
    return {"count": 2, "bad_fit_index": 1}


# --------------------------------------------------------------------------------------------
# AMASS
# --------------------------------------------------------------------------------------------

def write_amass(data_dir, smpl, seed: int = 4, num_frames: int = 121) -> Dict:
    """``AMASS/data/cmu/01/01_01_poses.npz`` (CMU: every 60th frame, four virtual cameras), a BMLrub
    sequence (every 10th frame) that only PoseNet mode reads, and a sub-dataset no mode reads.

    Returns ``count`` (Pose2Mesh mode: CMU) and ``posenet_count`` (PoseNet mode: CMU and BMLrub).
    """
    rng = np.random.default_rng(seed)
    base = Path(data_dir) / "AMASS" / "data"
    for sub, seq, name in (("cmu", "01", "01_01"), ("BMLrub", "rub001", "0001_treadmill"),
                           ("KIT", "3", "walking_poses")):
        folder = base / sub / seq
        folder.mkdir(parents=True, exist_ok=True)
        poses = np.zeros((num_frames, 156))
        poses[:, :72] = _body_poses(rng, 1, _yaws(rng, 1) @ _rot_x(90.0))[0]
        poses[:, 3:72] += np.linspace(0, 1, num_frames)[:, None] * rng.normal(0, 0.1, 69)
        np.savez(folder / f"{name}_poses.npz", poses=poses, trans=np.zeros((num_frames, 3)),
                 betas=rng.normal(0, 0.5, 16), gender=np.array("male"), dmpls=np.zeros((num_frames, 8)),
                 mocap_framerate=np.array(120.0))
    cmu, bml = len(range(0, num_frames, 60)), len(range(0, num_frames, 10))
    return {"count": cmu * 4, "posenet_count": (cmu + bml) * 4}


# --------------------------------------------------------------------------------------------
# SURREAL
# --------------------------------------------------------------------------------------------

def write_surreal(data_dir, smpl, seed: int = 5, per_split: int = 4) -> Dict:
    """``SURREAL/data/{train,val}.json`` and ``hrnet_output_on_{train,val}set.json`` (24 SMPL
    joints detected); SMPL parameters in the camera frame."""
    rng = np.random.default_rng(seed)
    root = Path(data_dir) / "SURREAL" / "data"
    focal, princpt = [600.0, 600.0], [160.0, 120.0]
    for split in ("train", "val"):
        n = per_split
        pose = _body_poses(rng, n, _yaws(rng, n, "y") @ _rot_x(180.0))
        shape = _shapes(rng, n)
        trans = np.concatenate([rng.uniform(-0.2, 0.2, (n, 2)), rng.uniform(5.0, 6.0, (n, 1))], axis=1)
        genders = ["female", "male"] * (n // 2) + ["female"] * (n % 2)
        images, anns, dets = [], [], []
        for k in range(n):
            verts, joints = _smpl(smpl, pose[k:k + 1], shape[k:k + 1], trans[k:k + 1], genders[k])
            joint_img = _project(joints[0] * 1000.0, focal, princpt)
            images.append({"id": k, "file_name": f"run0/{k:03d}/{k:03d}_c0001_frame{k:03d}.jpg", "width": 320,
                           "height": 240, "cam_param": {"focal": focal, "princpt": princpt}})
            anns.append({"id": k, "image_id": k, "bbox": _bbox(joint_img), "joint_cam": _tolist(joints[0] * 1000.0),
                         "smpl_param": {"pose": _tolist(pose[k]), "shape": _tolist(shape[k]),
                                        "trans": _tolist(trans[k]), "gender": genders[k]}})
            kps = np.concatenate([joint_img + rng.normal(0, 1.5, joint_img.shape), np.ones((24, 1))], axis=1)
            dets.append({"image_id": k, "annotation_id": k, "keypoints": _tolist(kps)})
        _dump(root / f"{split}.json", {"images": images, "annotations": anns})
        _dump(root / f"hrnet_output_on_{split}set.json", dets[::-1])  # any order: the loader sorts
    return {"count": per_split}


# --------------------------------------------------------------------------------------------
# FreiHAND
# --------------------------------------------------------------------------------------------

def write_freihand(data_dir, mano, seed: int = 6, per_split: int = 4) -> Dict:
    """``FreiHAND/data/freihand_{train,eval}_{coco,data}.json`` and
    ``hrnet_output_on_{train,test}set.json`` (21 hand joints detected). Evaluation entries carry
    only the camera and scale (the ground truth lives on the FreiHAND server); image ids are
    written out of order so that the prediction file's ordering is tested."""
    rng = np.random.default_rng(seed)
    root = Path(data_dir) / "FreiHAND" / "data"
    focal, princpt = [480.0, 480.0], [112.0, 112.0]
    for split, det_split in (("train", "train"), ("eval", "test")):
        n = per_split
        pose = rng.normal(0, 0.2, (n, 48))
        pose[:, :3] = Rotation.from_euler("xyz", rng.uniform(-40, 40, (n, 3)), degrees=True).as_rotvec()
        shape = rng.normal(0, 0.5, (n, 10))
        trans = np.concatenate([rng.uniform(-0.02, 0.02, (n, 2)), rng.uniform(0.5, 0.7, (n, 1))], axis=1)
        with torch.no_grad():
            verts, joints = mano.layer(torch.as_tensor(pose, dtype=torch.float32),
                                       torch.as_tensor(shape, dtype=torch.float32),
                                       torch.as_tensor(trans, dtype=torch.float32))
        joints = joints.numpy().astype(np.float64)  # mm
        images, anns, data, dets = [], [], {}, []
        ids = list(range(n))[::-1] if split == "eval" else list(range(n))
        for k in range(n):
            joint_img = _project(joints[k], focal, princpt)
            image_id = 1000 + ids[k]
            images.append({"id": image_id, "file_name": f"{'training' if split == 'train' else 'evaluation'}/rgb/{k:08d}.jpg",
                           "width": 224, "height": 224, "db_idx": k})
            anns.append({"id": image_id, "image_id": image_id, "bbox": _bbox(joint_img)})
            cam = {"focal": focal, "princpt": princpt}
            if split == "train":
                cam.update({"R": _tolist(np.eye(3)), "t": _tolist(trans[k])})
                data[str(k)] = {"cam_param": cam, "mano_param": {"pose": _tolist(pose[k]), "shape": _tolist(shape[k])},
                                "joint_3d": _tolist(joints[k] / 1000.0)}
            else:
                data[str(k)] = {"cam_param": cam, "scale": 0.1}
            kps = np.concatenate([joint_img + rng.normal(0, 1.0, joint_img.shape), np.ones((21, 1))], axis=1)
            dets.append({"image_id": image_id, "annotation_id": image_id, "keypoints": _tolist(kps)})
        _dump(root / f"freihand_{split}_coco.json", {"images": images, "annotations": anns})
        _dump(root / f"freihand_{split}_data.json", data)
        _dump(root / f"hrnet_output_on_{det_split}set.json", dets)
    return {"count": per_split}


def write_all(data_dir, smpl=None, mano=None) -> Dict[str, Dict]:
    """Every fixture into ``data_dir``."""
    smpl = smpl or synthetic_smpl()
    mano = mano or synthetic_mano()
    return {"Human36M": write_human36m(data_dir, smpl), "PW3D": write_pw3d(data_dir, smpl),
            "COCO": write_coco(data_dir, smpl), "MuCo": write_muco(data_dir, smpl),
            "AMASS": write_amass(data_dir, smpl), "SURREAL": write_surreal(data_dir, smpl),
            "FreiHAND": write_freihand(data_dir, mano)}


# --------------------------------------------------------------------------------------------
# helpers for the loader tests
# --------------------------------------------------------------------------------------------

def make_cfg(mode: str = "pose2mesh_net", input_set: str = "coco", target_set: str = "human36",
             use_gt_input: bool = True):
    from pose2mesh.config import Config

    cfg = Config()
    cfg.MODEL.name = mode
    cfg.DATASET.input_joint_set = input_set
    cfg.DATASET.target_joint_set = target_set
    cfg.DATASET.use_gt_input = use_gt_input
    return cfg


def check_sample(sample, mode: str, num_joints: int, num_target: Optional[int] = None,
                 num_verts: Optional[int] = None) -> None:
    """The pinned schema: keys, shapes, float32, finite."""
    inputs, targets, meta = sample
    expect = {"pose2d": (num_joints, 2), "lift_pose3d": (num_joints, 3), "lift_pose3d_valid": (num_joints, 1)}
    if mode == "pose2mesh_net":
        expect.update({"mesh": (num_verts, 3), "reg_pose3d": (num_target, 3), "mesh_valid": (num_verts, 1),
                       "reg_pose3d_valid": (num_target, 1)})
    got = {**inputs, **targets, **meta}
    assert set(got) == set(expect), (sorted(got), sorted(expect))
    assert set(inputs) == {"pose2d"}
    for key, shape in expect.items():
        assert got[key].shape == shape, (key, got[key].shape, shape)
        assert got[key].dtype == np.float32, key
        assert np.isfinite(got[key]).all(), key


def perfect_results(dataset) -> Dict[str, np.ndarray]:
    """What the trainer's inference gathers when every prediction equals its target."""
    samples = dataset.__getitems__(list(range(len(dataset))))
    out = {"index": np.arange(len(dataset)),
           "joint_coord": np.stack([s[1]["lift_pose3d"] for s in samples]),
           "joint_coord_target": np.stack([s[1]["lift_pose3d"] for s in samples])}
    if "mesh" in samples[0][1]:
        out["mesh_coord"] = np.stack([s[1]["mesh"] for s in samples]) * 1000.0
        out["mesh_coord_target"] = out["mesh_coord"].copy()
    return out
