"""Make the demo's pictures in docs/: a real photo of several people with their meshes, and a strip
of frames from a video with tracked meshes.

    python demo/make_docs_pictures.py --checkpoint experiment/exp_*/checkpoint [--frames 24] [--out docs]

The photos are public-domain pictures shipped with packages (the astronaut Eileen Collins and the
cameraman from scikit-image, Grace Hopper from matplotlib), side by side; the video is a pan over
them. Keypoints come from the built-in detector (the ``detector`` extra); the checkpoint must be
a coco joint-set run.
"""
import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]


def three_people() -> np.ndarray:
    sys.path.insert(0, str(REPO / "bench"))
    from bench_demo import compose, real_people

    image, _ = compose(real_people(), ("astronaut", "cameraman", "hopper"))
    return image


def main() -> int:
    from pose2mesh import demo
    from pose2mesh.vis import read_image, write_image

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--strip", type=int, default=4, help="frames in the strip")
    p.add_argument("--out", type=Path, default=REPO / "docs")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        image = three_people()
        write_image(tmp / "people.png", image)
        code = demo.main(["--gpu", "cpu", "--input_img", str(tmp / "people.png"), "--multi", "--checkpoint",
                          args.checkpoint, "--output_dir", str(tmp / "photo")])
        if code:
            return code
        top = read_image(tmp / "photo" / "demo_pose2d.png")
        bottom = read_image(tmp / "photo" / "demo_mesh.png")
        write_image(args.out / "demo_photo_people.jpg", np.concatenate([top, bottom], 0), max_side=1200)

        h = 384
        wide = cv2.resize(image, (round(image.shape[1] * h / image.shape[0]), h), interpolation=cv2.INTER_AREA)
        frames = tmp / "frames"
        frames.mkdir()
        w = 640
        for t in range(args.frames):
            x = int(round(t * (wide.shape[1] - w) / (args.frames - 1)))
            write_image(frames / f"{t:04d}.png", wide[:, x:x + w])
        code = demo.main(["--gpu", "cpu", "--input_video", str(frames), "--multi", "--checkpoint", args.checkpoint,
                          "--output_dir", str(tmp / "video"), "--fps", "12"])
        if code:
            return code
        cap = cv2.VideoCapture(str(tmp / "video" / "demo_video.mp4"))
        rendered = []
        while True:
            ok, f = cap.read()
            if not ok:
                break
            rendered.append(f[:, :, ::-1])
        picks = np.linspace(0, len(rendered) - 1, args.strip).round().astype(int)
        gap = np.full((h, 6, 3), 255, np.uint8)
        strip = np.concatenate(sum([[rendered[i], gap] for i in picks], [])[:-1], 1)
        write_image(args.out / "demo_video_strip.jpg", strip, max_side=1600)
    print(f"wrote {args.out / 'demo_photo_people.jpg'} and {args.out / 'demo_video_strip.jpg'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
