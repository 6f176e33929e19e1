"""Generate the synthetic body and hand (if not cached) and draw docs/synthetic_body.png.

    python scripts/make_synthetic_body.py [--out docs/synthetic_body.png] [--cache DIR]

The picture shows the synthetic body in its T-pose and in three random poses (posed by our
SMPL layer), and the synthetic hand in its mean pose and a random pose (posed by our MANO
layer). These are generated stand-ins, not SMPL or MANO.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib
import numpy as np
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402

from pose2mesh.body_models import MANO, SMPL  # noqa: E402


def random_body_poses(n: int, generator: torch.Generator) -> torch.Tensor:
    """Plausible random poses: arms lowered, moderate joint angles, limited knee and elbow bends."""
    pose = torch.randn(n, 24, 3, generator=generator) * 0.2
    pose[:, 0] = 0.0
    pose[:, 16, 2] += -1.3 + 0.6 * torch.rand(n, generator=generator)   # left shoulder down
    pose[:, 17, 2] += 1.3 - 0.6 * torch.rand(n, generator=generator)    # right shoulder down
    pose[:, 18, 1] = -1.2 * torch.rand(n, generator=generator)          # elbows bend forward
    pose[:, 19, 1] = 1.2 * torch.rand(n, generator=generator)
    pose[:, 4, 0] = 1.2 * torch.rand(n, generator=generator)            # knees bend backwards
    pose[:, 5, 0] = 1.2 * torch.rand(n, generator=generator)
    pose[:, 1, 0] -= 0.6 * torch.rand(n, generator=generator)           # hips flex forward
    pose[:, 2, 0] -= 0.6 * torch.rand(n, generator=generator)
    return pose.reshape(n, 72)


def draw_mesh(ax, verts: np.ndarray, faces: np.ndarray, colormap, title: str, yaw_deg: float = 20.0,
              pitch_deg: float = 8.0) -> None:
    """Flat-shaded orthographic view, y up, camera in front (on +z) turned by ``yaw_deg`` about y
    and ``pitch_deg`` about x; triangles painted back to front."""
    yaw, pitch = np.radians(yaw_deg), np.radians(pitch_deg)
    rot_y = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    rot_x = np.array([[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)], [0, np.sin(pitch), np.cos(pitch)]])
    view = (verts - verts.mean(0)) @ (rot_x @ rot_y).T  # camera looks along -z
    tri = view[faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
    light = np.array([-0.4, 0.5, 0.77])
    shade = 0.25 + 0.75 * np.clip(normals @ light, 0.0, 1.0)
    visible = normals[:, 2] > -0.2
    order = np.argsort(tri[:, :, 2].mean(1)[visible], kind="stable")
    polys = tri[visible][order][:, :, :2]
    ax.add_collection(PolyCollection(polys, facecolors=colormap(0.1 + 0.7 * shade[visible][order]),
                                     edgecolors="none", linewidths=0, antialiased=False))
    lo, hi = view[:, :2].min(0), view[:, :2].max(0)
    half = (hi - lo).max() / 2 * 1.05
    centre = (lo + hi) / 2
    ax.set_xlim(centre[0] - half, centre[0] + half)
    ax.set_ylim(centre[1] - half, centre[1] + half)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title, fontsize=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "docs" / "synthetic_body.png"))
    parser.add_argument("--cache", default=None, help="cache folder (default: paths.cache_dir())")
    args = parser.parse_args()

    smpl = SMPL(synthetic=True, model_dir=args.cache)
    mano = MANO(synthetic=True, model_dir=args.cache)
    g = torch.Generator().manual_seed(7)
    poses = torch.cat([torch.zeros(1, 72), random_body_poses(3, g)])
    shapes = torch.cat([torch.zeros(1, 10), torch.randn(3, 10, generator=g) * 1.0])
    with torch.no_grad():
        body_verts, _ = smpl(poses, shapes)
        hand_pose = torch.zeros(2, 48)
        hand_pose[1, 3:] = torch.randn(45, generator=g) * 0.35
        hand_verts, _ = mano(hand_pose, torch.zeros(2, 10))

    fig = plt.figure(figsize=(18, 3.8))
    titles = ["T-pose, mean shape"] + [f"random pose and shape {k}" for k in (1, 2, 3)]
    for k in range(4):
        ax = fig.add_subplot(1, 6, k + 1)
        draw_mesh(ax, body_verts[k].numpy(), smpl.face, plt.cm.bone, titles[k])
    for k, title in enumerate(("hand, mean pose", "hand, random pose")):
        ax = fig.add_subplot(1, 6, 5 + k)
        draw_mesh(ax, hand_verts[k].numpy(), mano.face, plt.cm.copper, title, yaw_deg=-30, pitch_deg=50)
    fig.suptitle("Synthetic SMPL-format body (6890 vertices) and MANO-format hand (778 vertices): "
                 "generated stand-ins, NOT SMPL or MANO", fontsize=12)
    plt.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.88, wspace=0.02, hspace=0)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=90)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
