#!/usr/bin/env bash
# The main job on the synthetic default, on a fresh machine: set up, train briefly, test
# (with the mean-mesh and nearest-neighbour baselines), and render the demo.
# Everything runs on the generated synthetic body: the figures are NOT paper numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}

CFG=asset/yaml/pose2mesh_human36J_quick_synthetic.yml
OUT=experiment/quickstart
mkdir -p "$OUT"
echo "[quickstart] 1/3 training $CFG (synthetic body, reduced channel plan, CPU)"
python main/train.py --gpu cpu --cfg "$CFG" --output_dir "$OUT"
RUN=$(ls -td "$OUT"/exp_* | head -n 1)

echo "[quickstart] 2/3 testing $RUN with the baselines"
python main/test.py --gpu cpu --cfg "$CFG" --weights "$RUN/checkpoint" --output_dir "$OUT" --baselines

echo "[quickstart] 3/3 demo: a mesh from the shipped 2D pose, and the SMPL body fitted to it, rendered"
python demo/run.py --gpu cpu --checkpoint "$RUN/checkpoint/final.pth.tar" --body_model synthetic \
  --input_pose demo/synthetic_pose_human36.npy --joint_set human36 --show both --output_dir demo/result
echo "[quickstart] done: run folder $RUN, demo images in demo/result/"
