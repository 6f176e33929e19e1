"""Regenerate the demo's shipped inputs from the synthetic body (not from SMPL, nor from people).

    python demo/make_demo_inputs.py [--out DIR] [--preview DIR]

Writes, under ``demo/`` (or ``--out``; tests/test_demo_inputs.py checks that the committed files
are what this script writes):

- ``synthetic_pose_human36.npy``: one posed synthetic body, its 17 Human3.6M joints projected
  into a 640 x 480 image (float pixels, ``17 x 2``);
- ``synthetic_people_coco.json``: a COCO-format keypoint list (``image_id``, ``category_id``,
  ``keypoints`` as 17 x (x, y, confidence), ``score``) for three posed bodies at different depths
  in one 640 x 480 image, plus a duplicate detection and a low-confidence false detection that
  the multi-person filters remove. Confidences are made up (lower for the ears and ankles).
- ``synthetic_pose_mano.npy``: one posed synthetic right hand (not MANO), its 21 ``mano`` joints
  projected into a 640 x 480 image (``21 x 2``), for ``--joint_set mano``.

``--preview DIR`` also renders the posed bodies there, to look at them.
"""
import argparse
import json
from pathlib import Path

import numpy as np
import torch

from pose2mesh.body_models import MANO, SMPL
from pose2mesh.render import Intrinsics, MeshRenderer, RenderMesh

WIDTH, HEIGHT, FOCAL = 640, 480, 900.0
DEMO_DIR = Path(__file__).resolve().parent

# (SMPL joint, axis-angle) pairs on top of the rest pose
POSES = {
    "wave": {16: (0, 0, -0.3), 17: (0, 0, 1.2), 18: (0, -1.6, 0), 19: (0, 0.3, 0.2), 1: (-0.25, 0, 0.08),
             4: (0.4, 0, 0), 2: (0.1, 0, -0.08), 12: (0.1, 0, 0)},
    "walk": {16: (0.4, 0, -1.2), 17: (-0.4, 0, 1.2), 18: (0, -0.4, 0), 19: (0, 0.4, 0), 1: (-0.5, 0, 0.05),
             2: (0.35, 0, -0.05), 4: (0.3, 0, 0), 5: (0.9, 0, 0)},
    "reach": {16: (0, 0.3, 0.6), 17: (0, -0.3, -0.5), 18: (0, -0.5, 0), 19: (0, 0.5, 0), 1: (0, 0, 0.25),
              2: (0, 0, -0.25), 3: (0.2, 0, 0)},
}


def posed_body(smpl: SMPL, pose_name: str, yaw: float, trans) -> np.ndarray:
    """Vertices (6890 x 3, camera frame: x right, y down, z forward) of a posed synthetic body."""
    pose = np.zeros(72)
    for joint, aa in POSES[pose_name].items():
        pose[3 * joint:3 * joint + 3] = aa
    # face the camera (SMPL's y is up and it faces +z: turn by pi about x), then turn by yaw
    from scipy.spatial.transform import Rotation

    orient = Rotation.from_rotvec([0, yaw, 0]) * Rotation.from_rotvec([np.pi, 0, 0])
    pose[:3] = orient.as_rotvec()
    verts, _ = smpl(torch.tensor(pose[None], dtype=torch.float32), torch.zeros(1, 10))
    return verts[0].double().numpy() + np.asarray(trans)


# a relaxed, slightly curled right hand: (MANO joint, axis-angle) on top of the mean pose
HAND_POSE = {1: (0, 0, 0.25), 4: (0, 0, 0.3), 7: (0, 0, 0.2), 10: (0, 0, 0.35), 13: (0.2, 0.3, 0)}


def posed_hand(mano: MANO, trans) -> np.ndarray:
    """Vertices (778 x 3, camera frame, metres) of a posed synthetic right hand, palm to the camera."""
    from scipy.spatial.transform import Rotation

    pose = np.zeros(48)
    for joint, aa in HAND_POSE.items():
        pose[3 * joint:3 * joint + 3] = aa
    pose[:3] = (Rotation.from_rotvec([0, np.pi / 2, 0]) * Rotation.from_rotvec([0, 0, -np.pi / 2])
                * Rotation.from_rotvec([np.pi, 0, 0])).as_rotvec()
    verts, _ = mano(torch.tensor(pose[None], dtype=torch.float32), torch.zeros(1, 10))
    return verts[0].double().numpy() + np.asarray(trans)


def project(points: np.ndarray) -> np.ndarray:
    return FOCAL * points[:, :2] / points[:, 2:] + [(WIDTH - 1) / 2, (HEIGHT - 1) / 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEMO_DIR, help="where the inputs go (default demo/)")
    parser.add_argument("--preview", type=Path, default=None, help="also render the bodies into this folder")
    args = parser.parse_args()
    smpl = SMPL(synthetic=True)
    h36m, coco = smpl.joint_regressor("human36"), smpl.joint_regressor("coco")[:17]
    rng = np.random.default_rng(7)

    single = posed_body(smpl, "wave", 0.3, (0.05, 0.1, 4.0))
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "synthetic_pose_human36.npy", np.round(project(h36m @ single), 2).astype(np.float32))

    people = [posed_body(smpl, "walk", -0.4, (-0.75, 0.25, 6.0)),
              posed_body(smpl, "reach", 0.2, (0.35, 0.15, 4.5)),
              posed_body(smpl, "wave", 0.6, (1.2, 0.3, 7.5))]
    entries = []
    for verts in people:
        kp = project(coco @ verts)
        conf = np.clip(rng.normal(0.85, 0.08, 17), 0.3, 0.99)
        conf[[3, 4, 15, 16]] *= 0.6
        entries.append(np.concatenate([kp, conf[:, None]], 1))
    duplicate = entries[1].copy()
    duplicate[:, :2] += rng.normal(0, 3.0, (17, 2))
    duplicate[:, 2] *= 0.7
    false_detection = np.concatenate([rng.uniform([0, 0], [WIDTH, HEIGHT], (17, 2)), np.full((17, 1), 0.05)], 1)
    entries += [duplicate, false_detection]
    records = [{"image_id": 1, "category_id": 1,
                "keypoints": [round(float(v), 2) for v in kp.reshape(-1)],
                "score": round(float(kp[:, 2].mean()), 3)} for kp in entries]
    with open(out / "synthetic_people_coco.json", "w", encoding="utf-8") as f:
        json.dump(records, f, indent=None)
        f.write("\n")

    mano = MANO(synthetic=True)
    hand = posed_hand(mano, (-0.04, 0.07, 0.45))
    np.save(out / "synthetic_pose_mano.npy",
            np.round(project(mano.joint_regressor("mano") @ hand), 2).astype(np.float32))

    if args.preview is not None:
        from pose2mesh.vis import write_image

        args.preview.mkdir(parents=True, exist_ok=True)
        intr = Intrinsics(FOCAL, FOCAL, (WIDTH - 1) / 2, (HEIGHT - 1) / 2)
        r = MeshRenderer(WIDTH, HEIGHT)
        write_image(args.preview / "single.png", r.render([RenderMesh(single, smpl.face)], intr,
                                                          size=(WIDTH, HEIGHT)).image)
        write_image(args.preview / "people.png", r.render([RenderMesh(v, smpl.face) for v in people], intr,
                                                          size=(WIDTH, HEIGHT)).image)
        write_image(args.preview / "hand.png", r.render([RenderMesh(hand, mano.face)], intr,
                                                        size=(WIDTH, HEIGHT)).image)


if __name__ == "__main__":
    main()
