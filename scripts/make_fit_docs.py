"""Make the fitting pictures and example exports of the documentation.

    python scripts/make_fit_docs.py [--out docs]

- ``fit_motion.bvh`` / ``fit_motion.glb``: a 30-frame synthetic motion (the synthetic body
  interpolating three random poses while walking sideways), fitted frame by frame (each frame
  started from the previous frame's fit) and exported;
- ``glb_frame.png``: the .glb read back and posed at frame 15 by its own skin (plain linear blend
  skinning from the file), beside the fitted mesh of that frame;
- ``fit_vs_raw.png``: a body mesh with 20 mm Gaussian noise per coordinate, its fit, and the
  clean mesh, with the mean vertex errors.
Everything is the synthetic body (not SMPL).
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from pose2mesh.body_models import SMPL  # noqa: E402
from pose2mesh.export import pose_glb, write_bvh, write_glb  # noqa: E402
from pose2mesh.fitting import fit_smpl  # noqa: E402
from pose2mesh.render import Intrinsics, MeshRenderer, RenderMesh  # noqa: E402
from pose2mesh.vis import write_image  # noqa: E402

SIZE = 360


def tiles(renderer: MeshRenderer, meshes, faces, labels, colors) -> np.ndarray:
    """Each (V, 3) y-up mesh in its own tile, one camera for all (framed on the last mesh)."""
    ref = meshes[-1] * [1, -1, -1]
    extent = float(max(np.ptp(ref[:, 0]), np.ptp(ref[:, 1])))
    depth = 3.0
    focal = 0.75 * SIZE * depth / extent
    intr = Intrinsics(focal, focal, SIZE / 2, SIZE / 2)
    centre = ref.mean(axis=0)
    out = []
    for verts, label, color in zip(meshes, labels, colors):
        cam = verts * [1, -1, -1] - centre + [0, 0, depth]
        image = renderer.render([RenderMesh(cam, faces, color)], intr,
                                background=np.full((SIZE, SIZE, 3), 255, np.uint8)).image.copy()
        for i, line in enumerate(label.split("\n")):
            cv2.putText(image, line, (8, 22 + 20 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (20, 20, 20), 1, cv2.LINE_AA)
        out.append(image)
    return np.concatenate(out, axis=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="docs")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    smpl = SMPL(synthetic=True)
    gen = torch.Generator().manual_seed(2020)

    # a motion: three random key poses (0.4 rad per joint), smoothly interpolated
    keys = torch.randn(3, 72, generator=gen) * 0.4
    keys[:, :3] = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.6, 0.0], [0.0, -0.4, 0.1]])
    t = torch.linspace(0, 2, 30)[:, None]
    ease = lambda x: 0.5 - 0.5 * torch.cos(np.pi * x)  # noqa: E731
    pose = torch.where(t < 1, keys[0] + ease(t) * (keys[1] - keys[0]), keys[1] + ease(t - 1) * (keys[2] - keys[1]))
    shape = (torch.rand(1, 10, generator=gen) * 2 - 1).expand(30, -1)
    trans = torch.stack([t[:, 0] * 0.4, torch.zeros(30), torch.zeros(30)], 1)
    with torch.no_grad():
        verts, _ = smpl(pose, shape, trans)
    fits = [fit_smpl(verts[:1], smpl)]
    for frame in range(1, 30):
        fits.append(fit_smpl(verts[frame:frame + 1], smpl, init=fits[-1]))
    from pose2mesh.fitting import FitResult

    seq = FitResult(*(torch.cat([getattr(f, n) for f in fits]) for n in
                      ("pose", "shape", "trans", "vertices", "joints", "error")), kind="smpl")
    err = seq.error.mean(1) * 1000
    print(f"motion: 30 frames fitted, mean vertex error {err.mean():.3f} mm (max frame {err.max():.3f})")
    bvh = write_bvh(out / "fit_motion.bvh", seq, smpl, fps=30)
    glb = write_glb(out / "fit_motion.glb", seq, smpl, fps=30)
    for path in (bvh, glb):
        print(f"{path}: {path.stat().st_size / 1024:.0f} KiB")

    frame = 15
    posed, faces = pose_glb(glb, frame)
    dev = np.linalg.norm(posed - seq.vertices[frame].numpy(), axis=1) * 1000
    with MeshRenderer(SIZE, SIZE) as renderer:
        print(f"renderer: {renderer.describe()}")
        image = tiles(renderer, [posed, seq.vertices[frame].numpy()], smpl.face,
                      [f"fit_motion.glb, frame {frame}\nposed by its own skin (LBS)",
                       f"fitted mesh, frame {frame}\nglb vs fit: mean {dev.mean():.1f} mm"],
                      [(0.95, 0.75, 0.45), (0.55, 0.7, 0.95)])
        write_image(out / "glb_frame.png", image)

        # a noisy mesh beside its fit and the clean mesh
        noisy_pose = torch.randn(1, 72, generator=gen) * 0.35
        noisy_pose[:, :3] = torch.tensor([[0.0, 0.5, 0.0]])
        with torch.no_grad():
            clean, _ = smpl(noisy_pose, torch.rand(1, 10, generator=gen) * 2 - 1)
        noisy = clean + torch.randn(clean.shape, generator=gen) * 0.020
        fit = fit_smpl(noisy, smpl)
        raw_mm = float((noisy - clean).norm(dim=-1).mean()) * 1000
        fit_mm = float((fit.vertices - clean).norm(dim=-1).mean()) * 1000
        print(f"noisy input {raw_mm:.1f} mm from the clean mesh, its fit {fit_mm:.1f} mm")
        image = tiles(renderer, [noisy[0].numpy(), fit.vertices[0].numpy(), clean[0].numpy()], smpl.face,
                      [f"input: 20 mm noise per coordinate\n{raw_mm:.1f} mm from the clean mesh",
                       f"fit (pose, shape, trans)\n{fit_mm:.1f} mm from the clean mesh", "clean mesh"],
                      [(0.9, 0.6, 0.6), (0.55, 0.7, 0.95), (0.7, 0.85, 0.6)])
        write_image(out / "fit_vs_raw.png", image)
    print(f"wrote {out / 'glb_frame.png'}, {out / 'fit_vs_raw.png'}")


if __name__ == "__main__":
    main()
