"""GPU readiness: one command that checks and times every CUDA path of the project.

    python bench/gpu_check.py                         # on the GPU machine: every section, < 8 minutes on one GPU
    python bench/gpu_check.py --only model,bf16       # some sections (a second run finishes what a first left)
    python bench/gpu_check.py --skip synthetic
    python bench/gpu_check.py --device cpu --smoke    # every row at tiny sizes on CPU (tests/test_gpu_check.py)

Sections, in order (names for ``--only`` / ``--skip``):

- ``env``: the card, driver, torch, CUDA and cuDNN versions.
- ``tests``: the test suite's ``cuda``-marked tests on the device (``pytest -m cuda --device ...``).
- ``model``: the full-size Pose2Mesh (PoseNet 4096 wide, the original MeshNet channel plan) on the
  6,890-vertex synthetic body: a training step (forward + backward) at batch 64 against the
  original release's formulation (``original_formulation.py``, same modules and weights: outputs
  and gradients equal within tolerance), samples/s and peak memory of both; evaluation latency at
  batch 1 and throughput at batch 64 (frames per second, against the paper's 37 FPS given a 2D
  pose), with and without the padding skip; COO against CSR Laplacians
  (``MeshNet.set_sparse_layout``).
- ``bf16``: a training step under ``torch.autocast(dtype=torch.bfloat16)`` against float32 from the
  same weights: loss within 1e-2 (relative), gradients within 1e-1 relative L2 over all
  parameters and cosine similarity >= 0.99 (the worst module named), and its speed.
- ``e2e``: ``main/train.py --gpu 0`` for two short epochs of a synthetic config, then
  ``main/test.py`` on its checkpoint (subprocesses, through their command lines).
- ``dataparallel``: ``main/train.py --gpu 0,1,...`` over every visible GPU when there are two or
  more (one ``--gpu`` id runs without DataParallel); always ``nn.DataParallel`` (and on a GPU the
  replicas it makes, which it skips for one device: ``torch.nn.parallel.replicate`` +
  ``parallel_apply``) on the model with its non-persistent buffers (Laplacian parts, padding-skip
  indices), against the plain model.
- ``torchrun``: ``torchrun --nproc_per_node=<GPUs>`` (nccl; gloo with 2 processes on CPU) for a few
  steps against one process from the same config; with one GPU, DDP with SyncBatchNorm in one
  nccl process against the plain model instead (nccl does not put two ranks on one GPU).
- ``synthetic``: the full-size model trained for a fixed time (``--train_seconds``, 180 on a GPU)
  on the synthetic data (pinned-memory loader): samples/s, then ``main/test.py --baselines``:
  MPVPE against the mean-mesh and nearest-neighbour baselines.

Every check is guarded: a failure is a row ``FAIL: <one line>`` and the script goes on; the exit
code is 1 if any row failed. The rows are printed as they come, then as one Markdown table, and
written to ``<out>/gpu_check.json`` after every row (so a run cut short still reports what it
measured). ``--smoke`` runs every row at tiny sizes with CPU-scaled time budgets: it catches
breakage, it times nothing.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Callable, Dict, List, Optional

from bench_common import body_graphs, machine, table  # noqa: I001 (first: sets OMP_WAIT_POLICY before torch)

import numpy as np
import torch
import yaml

from original_formulation import OriginalFormulation

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ("env", "tests", "model", "bf16", "e2e", "dataparallel", "torchrun", "synthetic")
DDP_ATOL, DDP_RTOL = 1e-4, 3e-3  # weights after DDP vs one process (RTOL: of each tensor's largest entry)
PAPER_FPS = 37.0  # Pose2Mesh's speed given a 2D pose (Choi et al. 2020)
# bf16 keeps 8 significant bits; through ~30 layers of train-mode batch-norm backward (which
# subtracts means: cancellation) the gradient error grows with depth. Measured on CPU at reduced
# sizes: 4.7-8.4 % relative L2 over all parameters, cosine >= 0.996 (the deepest, fc, 16-20 %).
BF16_LOSS_RTOL, BF16_GRAD_RTOL, BF16_GRAD_COSINE = 1e-2, 1e-1, 0.99


class CheckFailed(AssertionError):
    """A check ran and its result is wrong (the row says why)."""


def one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    where = ""
    tb = traceback.extract_tb(err.__traceback__)
    if tb and not isinstance(err, CheckFailed):
        frame = tb[-1]
        where = f" ({Path(frame.filename).name}:{frame.lineno})"
    return f"{type(err).__name__}: {text[:300]}{where}"


class Report:
    """The rows: printed as they come, rewritten to the JSON file after each one."""

    def __init__(self, json_path: Path, header: Dict[str, object]):
        self.json_path = json_path
        self.header = header
        self.rows: List[Dict[str, object]] = []
        json_path.parent.mkdir(parents=True, exist_ok=True)
        self._write()

    def add(self, section: str, check: str, result: str, ok: bool = True, status: Optional[str] = None,
            **figures) -> None:
        status = status or ("ok" if ok else "FAIL")
        if status == "FAIL" and not result.startswith("FAIL"):
            result = f"FAIL: {result}"
        row = {"section": section, "check": check, "result": result, "status": status,
               "figures": {k: _jsonable(v) for k, v in figures.items()}}
        self.rows.append(row)
        self._write()
        print(f"[{section}] {check}: {result}", flush=True)

    @contextlib.contextmanager
    def guard(self, section: str, check: str):
        """Turn an exception in the block into a FAIL row, and go on."""
        try:
            yield
        except Exception as err:  # every failure becomes a row; the run goes on
            self.add(section, check, f"FAIL: {one_line(err)}", ok=False)
            if os.environ.get("GPU_CHECK_DEBUG"):
                traceback.print_exc()

    @property
    def failed(self) -> bool:
        return any(r["status"] == "FAIL" for r in self.rows)

    def _write(self) -> None:
        tmp = self.json_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({**self.header, "rows": self.rows}, indent=1))
        os.replace(tmp, self.json_path)

    def markdown(self) -> str:
        return table(["section", "check", "result"], [[r["section"], r["check"], r["result"]] for r in self.rows])


def _jsonable(v):
    if isinstance(v, (np.floating, np.integer)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


# ----------------------------------------------------------------------------- context
class Context:
    """Sizes, the device and shared objects of one run."""

    def __init__(self, args):
        self.args = args
        self.device = torch.device(args.device)
        self.cuda = self.device.type == "cuda"
        self.smoke = args.smoke
        self.gpu_arg = str(self.device.index or 0) if self.cuda else "cpu"
        self.n_gpu = torch.cuda.device_count() if self.cuda else 0
        if self.smoke:
            self.hid, self.div, self.batch, self.repeat = 64, 16, 4, 1
        else:
            self.hid, self.div, self.batch, self.repeat = 4096, 1, 64, args.repeat
        self.train_seconds = args.train_seconds if args.train_seconds is not None else (3.0 if self.smoke else 180.0)
        self.out = Path(args.out)
        self._graphs = None
        self.single_run: Optional[tuple] = None  # (config, run folder, seconds) of _single_process_run

    @property
    def graphs(self):
        """(joint set, synthetic SMPL, build_coarse_graphs output), built (or read from the cache) once."""
        if self._graphs is None:
            self._graphs = body_graphs("human36")
        return self._graphs

    def real_vertices(self) -> np.ndarray:
        js, smpl, (_, _, _, perm_reverse) = self.graphs
        return np.asarray(perm_reverse)[: smpl.vertex_num]

    def build_model(self, p_dropout: float = 0.5, seed: int = 0):
        from pose2mesh.models import pose2mesh_net

        js, _, (_, graph_L, _, _) = self.graphs
        torch.manual_seed(seed)
        model = pose2mesh_net.get_model(js.num_joints, graph_L, hid_dim=self.hid, channel_divisor=self.div,
                                        p_dropout=p_dropout)
        return model.to(self.device)

    def pose_batch(self, batch: int, seed: int = 1) -> torch.Tensor:
        js = self.graphs[0]
        return torch.randn(batch, js.num_joints, 2, generator=torch.Generator().manual_seed(seed)).to(self.device)

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def time(self, fn: Callable[[], object], repeat: Optional[int] = None, warmup: int = 1) -> float:
        """Median seconds of ``fn`` (device-synchronized)."""
        for _ in range(0 if self.smoke else warmup):
            fn()
        self.sync()
        times = []
        for _ in range(max(1, repeat or self.repeat)):
            t0 = time.perf_counter()
            fn()
            self.sync()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    def peak_mib(self, fn: Callable[[], object]) -> Optional[float]:
        """Peak device memory of one call of ``fn`` (MiB); None on CPU."""
        if not self.cuda:
            fn()
            return None
        self.sync()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(self.device)
        fn()
        self.sync()
        return torch.cuda.max_memory_allocated(self.device) / 2 ** 20


def mib(v: Optional[float]) -> str:
    return "-" if v is None else f"{v:,.0f} MiB"


def run_cmd(cmd: List[str], timeout: float, env: Optional[Dict[str, str]] = None) -> tuple:
    """(return code, stdout, stderr, seconds) of a subprocess in the repository root."""
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                           env=dict(os.environ, **(env or {})))
        return p.returncode, p.stdout, p.stderr, time.perf_counter() - t0
    except subprocess.TimeoutExpired as err:
        out = err.stdout.decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
        errs = err.stderr.decode() if isinstance(err.stderr, bytes) else (err.stderr or "")
        return 124, out, errs + f"\ntimed out after {timeout:.0f} s", time.perf_counter() - t0


def require_ok(rc: int, out: str, err: str, what: str) -> None:
    if rc != 0:
        tail = [line for line in (err or out).strip().splitlines() if line.strip()]
        raise CheckFailed(f"{what} exited {rc}: {tail[-1] if tail else 'no output'}")


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def synthetic_config(path: Path, *, hid: int, div: int, batch: int, epochs: int, iters: int, train_size: int,
                     test_size: int, workers: int, optimizer: str = "rmsprop", shuffle: bool = True,
                     test_every_epoch: bool = True, posenet_dropout: float = 0.5) -> Path:
    """A synthetic-data config (the keys of asset/yaml/*_synthetic.yml)."""
    data = {
        "DATASET": {"train_list": ["Synthetic"], "test_list": ["Synthetic"], "input_joint_set": "human36",
                    "target_joint_set": "human36", "workers": workers, "use_gt_input": True,
                    "body_model": "synthetic", "synthetic_train_size": train_size,
                    "synthetic_test_size": test_size},
        "MODEL": {"name": "pose2mesh_net", "posenet_hid_dim": hid, "meshnet_channel_divisor": div,
                  "posenet_pretrained": False, "posenet_dropout": posenet_dropout},
        "TRAIN": {"batch_size": batch, "shuffle": shuffle, "end_epoch": epochs, "edge_loss_start": 1,
                  "max_iters_per_epoch": iters, "lr": 1e-3, "lr_step": [epochs + 1], "print_freq": 10,
                  "optimizer": optimizer, "test_every_epoch": test_every_epoch},
        "TEST": {"batch_size": batch},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def only_run(folder: Path) -> Path:
    runs = sorted(folder.glob("exp_*"))
    if len(runs) != 1:
        raise CheckFailed(f"expected one run folder under {folder}, found {len(runs)}")
    return runs[0]


def result_metrics(run: Path) -> Dict[str, float]:
    """The metrics of a test run's result JSON (``metrics_mm``)."""
    for f in sorted((run / "result").glob("*.json")):
        data = json.loads(f.read_text())
        if isinstance(data, dict) and "metrics_mm" in data:
            return data["metrics_mm"]
    raise CheckFailed(f"no result JSON with metrics in {run / 'result'}")


def final_weights(run: Path) -> Dict[str, torch.Tensor]:
    from pose2mesh.checkpoint import load_checkpoint

    return load_checkpoint(run / "checkpoint" / "final.pth.tar")["model_state_dict"]


def max_weight_diff(a: Dict[str, torch.Tensor], b: Dict[str, torch.Tensor]) -> float:
    if a.keys() != b.keys():
        raise CheckFailed("the two runs' checkpoints have different keys")
    return max((float((a[k].double() - b[k].double()).abs().max()) for k in a
                if a[k].is_floating_point() and a[k].numel()), default=0.0)


def worst_weight_diff(a: Dict[str, torch.Tensor], b: Dict[str, torch.Tensor]) -> tuple:
    """(name, score, max |a - b|) of the tensor where two state dicts differ most against the
    tolerance ``DDP_ATOL + DDP_RTOL * max |b|`` (score 1 = at the tolerance)."""
    if a.keys() != b.keys():
        raise CheckFailed("the two runs' checkpoints have different keys")
    rows = {}
    for k in a:
        if a[k].is_floating_point() and a[k].numel():
            diff = float((a[k].double() - b[k].double()).abs().max())
            rows[k] = (diff / (DDP_ATOL + DDP_RTOL * float(b[k].double().abs().max())), diff)
    name = max(rows, key=lambda k: rows[k][0])
    return name, rows[name][0], rows[name][1]


def flat_grads(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.detach().float().reshape(-1) for p in model.parameters() if p.grad is not None])


def probe_step(model, net, x: torch.Tensor) -> Callable[[], None]:
    """A training step of ``net`` (forward + backward of a fixed scalar probe)."""
    def run():
        model.zero_grad(set_to_none=True)
        mesh, pose3d = net(x)
        (mesh.abs().mean() + pose3d.abs().mean()).backward()
    return run


# ----------------------------------------------------------------------------- sections
def section_env(ctx: Context, rep: Report) -> None:
    S = "env"
    rep.add(S, "torch", f"torch {torch.__version__}, CUDA {torch.version.cuda or '-'}, cuDNN "
            f"{torch.backends.cudnn.version() if ctx.cuda else '-'}, Python {platform.python_version()}, "
            f"numpy {np.__version__}", torch=torch.__version__, cuda=torch.version.cuda)
    if not ctx.cuda:
        rep.add(S, "device", f"CPU: {machine()}")
        return
    props = torch.cuda.get_device_properties(ctx.device)
    driver = "-"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        q = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                           capture_output=True, text=True, timeout=30)
        driver = q.stdout.strip().splitlines()[0] if q.returncode == 0 and q.stdout.strip() else "-"
    rep.add(S, "device", f"{props.name}, {props.total_memory / 2 ** 30:.0f} GiB, compute capability "
            f"{props.major}.{props.minor}, driver {driver}, {ctx.n_gpu} GPU(s) visible",
            name=props.name, driver=driver, gpus=ctx.n_gpu, memory_gib=props.total_memory / 2 ** 30)


def section_tests(ctx: Context, rep: Report) -> None:
    S = "tests"
    with rep.guard(S, "pytest -m cuda"):
        cmd = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider",
               "--device", str(ctx.device)]
        if ctx.smoke:  # one fast file: the whole marked set takes a minute on CPU
            cmd += ["tests/test_losses_metrics.py"]
        rc, out, err, secs = run_cmd(cmd, timeout=420)
        summary = last_line(out)
        counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|error|errors)", summary)}
        if not counts.get("passed"):
            raise CheckFailed(f"pytest exited {rc}: {summary or last_line(err)}")
        rep.add(S, f"pytest -m cuda --device {ctx.device}" + (" (smoke: one file)" if ctx.smoke else ""),
                f"{summary.strip('= ')}" if rc == 0 else f"FAIL: {summary.strip('= ')}", ok=rc == 0,
                seconds=secs, **counts)


def section_model(ctx: Context, rep: Report) -> None:
    S = "model"
    B = ctx.batch
    model = ctx.build_model()
    baseline = OriginalFormulation(model)
    mesh = model.pose2mesh
    real = ctx.real_vertices()
    x = ctx.pose_batch(B)
    state = {k: v.clone() for k, v in model.state_dict().items()}

    with rep.guard(S, f"train step batch {B}: ours vs original"):
        model.train()
        outs, grads = {}, {}
        for name, net in (("ours", model), ("original", baseline)):
            model.load_state_dict(state)
            model.zero_grad(set_to_none=True)
            torch.manual_seed(2)  # the same dropout masks
            out_mesh, pose3d = net(x)
            (out_mesh.abs().mean() + pose3d.abs().mean()).backward()
            outs[name], grads[name] = out_mesh.detach(), flat_grads(model)
        scale = float(outs["original"].abs().max())
        diff = float((outs["ours"] - outs["original"]).abs().max())
        gdiff = float((grads["ours"] - grads["original"]).norm() / grads["original"].norm())
        ok = diff <= 1e-3 * scale and gdiff <= 1e-3
        rep.add(S, f"train step batch {B}: ours = original formulation",
                f"max |ours - original| {diff:.1e} (output scale {scale:.3f}, tolerance 1e-3 of it); "
                f"gradients {gdiff:.1e} relative (tolerance 1e-3)", ok=ok, max_abs_diff=diff, scale=scale,
                grad_rel_diff=gdiff)
    model.load_state_dict(state)

    with rep.guard(S, f"train step batch {B}: speed and memory"):
        model.train()
        figs = {}
        for name, net in (("original", baseline), ("ours", model)):
            step = probe_step(model, net, x)
            peak = ctx.peak_mib(step)
            t = ctx.time(step)
            figs[name] = (t, peak)
        (t_o, m_o), (t_b, m_b) = figs["ours"], figs["original"]
        rep.add(S, f"train step batch {B} (forward + backward)",
                f"ours {B / t_o:,.0f} samples/s ({1e3 * t_o:.1f} ms), peak {mib(m_o)}; original formulation "
                f"{B / t_b:,.0f} samples/s, peak {mib(m_b)}; {t_b / t_o:.2f}x faster",
                samples_per_s=B / t_o, ms=1e3 * t_o, peak_mib=m_o, original_samples_per_s=B / t_b,
                original_peak_mib=m_b)
    model.load_state_dict(state)
    model.zero_grad(set_to_none=True)

    model.eval()
    for batch in (1, B):
        with rep.guard(S, f"eval batch {batch}"), torch.no_grad():
            xe = ctx.pose_batch(batch, seed=3)
            full = model(xe)[0]
            base = baseline(xe)[0]
            scale = float(base.abs().max())
            diff = float((full - base).abs().max())
            mesh.set_padding_skip(real)
            try:
                fast = model(xe)[0]
                skip_diff = float((fast[:, real] - full[:, real]).abs().max())
                t_skip = ctx.time(lambda: model(xe), repeat=ctx.repeat * (5 if batch == 1 else 1))
            finally:
                mesh.set_padding_skip(None)
            t_full = ctx.time(lambda: model(xe), repeat=ctx.repeat * (5 if batch == 1 else 1))
            t_base = ctx.time(lambda: baseline(xe), repeat=ctx.repeat)
            ok = diff <= 1e-4 * max(scale, 1.0) and skip_diff <= 1e-4 * max(scale, 1.0)
            fps = batch / t_skip
            what = "latency" if batch == 1 else "throughput"
            rep.add(S, f"eval batch {batch} ({what}, given a 2D pose)",
                    f"{1e3 * t_skip:.2f} ms = {fps:,.0f} FPS with the padding skip ({fps / PAPER_FPS:.1f}x the "
                    f"paper's 37 FPS); full graph {1e3 * t_full:.2f} ms, original formulation "
                    f"{1e3 * t_base:.2f} ms; |ours - original| {diff:.1e}, |skip - full| {skip_diff:.1e} "
                    f"(tolerance 1e-4)", ok=ok, ms=1e3 * t_skip, fps=fps, full_ms=1e3 * t_full,
                    original_ms=1e3 * t_base, max_abs_diff=diff, skip_diff=skip_diff)

    with rep.guard(S, f"COO vs CSR batch {B}"):
        times, outs = {}, {}
        for layout in ("coo", "csr"):
            mesh.set_sparse_layout(layout)
            model.load_state_dict(state)
            model.eval()
            mesh.set_padding_skip(real)
            try:
                with torch.no_grad():
                    outs[layout] = model(x)[0]
                    t_eval = ctx.time(lambda: model(x))
            finally:
                mesh.set_padding_skip(None)
            model.train()
            t_train = ctx.time(probe_step(model, model, x))
            times[layout] = (t_eval, t_train)
        mesh.set_sparse_layout("coo")
        model.load_state_dict(state)
        diff = float((outs["csr"] - outs["coo"]).abs().max())
        scale = float(outs["coo"].abs().max())
        (e_coo, t_coo), (e_csr, t_csr) = times["coo"], times["csr"]
        rep.add(S, f"COO vs CSR Laplacians, batch {B}",
                f"eval {1e3 * e_coo:.2f} ms COO, {1e3 * e_csr:.2f} ms CSR; train step {1e3 * t_coo:.1f} ms COO, "
                f"{1e3 * t_csr:.1f} ms CSR; |CSR - COO| {diff:.1e}", ok=diff <= 1e-4 * max(scale, 1.0),
                eval_ms_coo=1e3 * e_coo, eval_ms_csr=1e3 * e_csr, train_ms_coo=1e3 * t_coo,
                train_ms_csr=1e3 * t_csr, max_abs_diff=diff)
    del model, baseline
    if ctx.cuda:
        torch.cuda.empty_cache()


def section_bf16(ctx: Context, rep: Report) -> None:
    S = "bf16"
    B = ctx.batch
    model = ctx.build_model(p_dropout=0.0).train()  # no dropout: both steps see the same network
    x = ctx.pose_batch(B)
    gen = torch.Generator().manual_seed(4)
    with torch.no_grad():
        out_mesh, out_pose = model(x)
    target_mesh = (0.1 * torch.randn(out_mesh.shape, generator=gen)).to(ctx.device)
    target_pose = (200 * torch.randn(out_pose.shape, generator=gen)).to(ctx.device)
    state = {k: v.clone() for k, v in model.state_dict().items()}

    def loss_fn() -> torch.Tensor:
        m, p = model(x)
        return (m.float() - target_mesh).abs().mean() + 1e-3 * (p.float() - target_pose).abs().mean()

    def step(bf16: bool) -> Callable[[], torch.Tensor]:
        def run():
            model.zero_grad(set_to_none=True)
            with torch.autocast(ctx.device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = loss_fn()
            loss.backward()
            return loss
        return run

    with rep.guard(S, f"bf16 autocast train step batch {B}"):
        results = {}
        for bf16 in (False, True):
            model.load_state_dict(state)
            loss = step(bf16)()
            results[bf16] = (float(loss.detach()), {n: p.grad.detach().float().clone()
                                                    for n, p in model.named_parameters() if p.grad is not None})
        (l32, g32), (l16, g16) = results[False], results[True]
        if g16.keys() != g32.keys():
            raise CheckFailed(f"bf16 step produced gradients for {len(g16)} parameters, float32 for {len(g32)}")
        modules: Dict[str, List[float]] = {}  # "pose2mesh.fc" -> [squared error, squared norm]
        for n in g32:
            acc = modules.setdefault(".".join(n.split(".")[:2]), [0.0, 0.0])
            acc[0] += float((g16[n] - g32[n]).norm() ** 2)
            acc[1] += float(g32[n].norm() ** 2)
        worst, (err2, norm2) = max(modules.items(), key=lambda kv: kv[1][0] / max(kv[1][1], 1e-30))
        a, b = torch.cat([g16[n].reshape(-1) for n in g32]), torch.cat([g32[n].reshape(-1) for n in g32])
        rel_loss = abs(l16 - l32) / abs(l32)
        rel_grad = float((a - b).norm() / b.norm())
        cos = float(torch.nn.functional.cosine_similarity(a, b, dim=0))
        t32 = ctx.time(step(False))
        t16 = ctx.time(step(True))
        model.load_state_dict(state)
        ok = (rel_loss <= BF16_LOSS_RTOL and rel_grad <= BF16_GRAD_RTOL and cos >= BF16_GRAD_COSINE
              and math.isfinite(l16))
        rep.add(S, f"bf16 autocast train step batch {B} vs float32",
                f"loss {l16:.5f} vs {l32:.5f} ({rel_loss:.1e} relative, tolerance {BF16_LOSS_RTOL:g}); gradients "
                f"{rel_grad:.1e} relative L2 (tolerance {BF16_GRAD_RTOL:g}), cosine {cos:.4f} (>= "
                f"{BF16_GRAD_COSINE:g}), worst {worst} {math.sqrt(err2 / max(norm2, 1e-30)):.1e}; "
                f"{B / t16:,.0f} samples/s bf16, {B / t32:,.0f} float32 ({t32 / t16:.2f}x)", ok=ok,
                loss_rel_diff=rel_loss, grad_rel_diff=rel_grad, grad_cosine=cos, worst_module=worst,
                worst_module_rel_diff=math.sqrt(err2 / max(norm2, 1e-30)), bf16_samples_per_s=B / t16,
                fp32_samples_per_s=B / t32)
    del model
    if ctx.cuda:
        torch.cuda.empty_cache()


def _small_config(ctx: Context, folder: Path, **kw) -> Path:
    """The two-epoch config of the end-to-end checks (the quick config's reduced model on a GPU).

    SGD, no shuffling and no dropout, so that a torchrun run of it is comparable with one process:
    adaptive optimizers turn float-noise gradients into full-size steps (see tests/test_engine.py),
    and dropout masks come from each rank's own random stream."""
    ranks = max(ctx.n_gpu, 2)
    sizes = dict(hid=64, div=16, batch=4, iters=2, train_size=32, test_size=8, workers=0) if ctx.smoke else \
        dict(hid=1024, div=4, batch=32 if 32 % ranks == 0 else 8 * ranks, iters=10, train_size=4096,
             test_size=128, workers=4)
    sizes.update(optimizer="sgd", shuffle=False, posenet_dropout=0.0)
    sizes.update(kw)
    return synthetic_config(folder / "config.yml", epochs=2, **sizes)


def _single_process_run(ctx: Context) -> tuple:
    """``main/train.py --gpu <device>`` on the small config, once per gpu_check run (e2e and
    torchrun share it): (config, run folder, seconds)."""
    if ctx.single_run is None:
        folder = ctx.out / "e2e"
        cfg = _small_config(ctx, folder)
        rc, out, err, secs = run_cmd([sys.executable, "main/train.py", "--gpu", ctx.gpu_arg, "--cfg", str(cfg),
                                      "--output_dir", str(folder / "train")], timeout=300)
        require_ok(rc, out, err, "train.py")
        if ctx.cuda and "CUDA is not available" in out + err:
            raise CheckFailed("train.py fell back to CPU")
        run = only_run(folder / "train")
        if not (run / "checkpoint" / "final.pth.tar").is_file():
            raise CheckFailed(f"no final.pth.tar in {run / 'checkpoint'}")
        ctx.single_run = (cfg, run, secs)
    return ctx.single_run


def section_e2e(ctx: Context, rep: Report) -> None:
    S = "e2e"
    run = None
    with rep.guard(S, f"main/train.py --gpu {ctx.gpu_arg}"):
        cfg, run, secs = _single_process_run(ctx)
        rep.add(S, f"main/train.py --gpu {ctx.gpu_arg}, 2 short epochs", f"exit 0 in {secs:.0f} s, "
                f"final checkpoint written", seconds=secs)
    if run is None:
        rep.add(S, "main/test.py", "not run: no checkpoint from train.py", status="n/a")
        return
    with rep.guard(S, f"main/test.py --gpu {ctx.gpu_arg}"):
        folder = ctx.out / "e2e"
        rc, out, err, secs = run_cmd([sys.executable, "main/test.py", "--gpu", ctx.gpu_arg, "--cfg", str(cfg),
                                      "--weights", str(run / "checkpoint"), "--output_dir", str(folder / "test")],
                                     timeout=300)
        require_ok(rc, out, err, "test.py")
        metrics = result_metrics(only_run(folder / "test"))
        rep.add(S, f"main/test.py --gpu {ctx.gpu_arg}", f"exit 0 in {secs:.0f} s; MPJPE {metrics['MPJPE']:.1f}, "
                f"MPVPE {metrics['MPVPE']:.1f} mm (2 short epochs)", seconds=secs, **metrics)


def section_dataparallel(ctx: Context, rep: Report) -> None:
    S = "dataparallel"
    if ctx.cuda and ctx.n_gpu >= 2:
        ids = ",".join(str(i) for i in range(ctx.n_gpu))
        with rep.guard(S, f"main/train.py --gpu {ids}"):
            folder = ctx.out / "dataparallel"
            cfg = _small_config(ctx, folder, iters=5)
            rc, out, err, secs = run_cmd([sys.executable, "main/train.py", "--gpu", ids, "--cfg", str(cfg),
                                          "--output_dir", str(folder / "train")], timeout=300)
            require_ok(rc, out, err, "train.py")
            rep.add(S, f"main/train.py --gpu {ids} (DataParallel)", f"exit 0 in {secs:.0f} s", seconds=secs)
    else:
        rep.add(S, "main/train.py --gpu 0,1", f"not run: {ctx.n_gpu} GPU visible (one --gpu id runs without "
                "DataParallel); DataParallel exercised on the model below", status="n/a")

    model = ctx.build_model(p_dropout=0.0)
    real = ctx.real_vertices()
    x = ctx.pose_batch(2 * max(ctx.n_gpu, 1) * (1 if ctx.smoke else 4))
    with rep.guard(S, "nn.DataParallel on the model"):
        ids = list(range(ctx.n_gpu)) if ctx.cuda else None
        dp = torch.nn.DataParallel(model, device_ids=ids)
        model.train()
        probe_step(model, dp, x)()
        missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None
                   and not n.startswith("pose_lifter")]  # PoseNet gets no gradient from the mesh
        if missing:
            raise CheckFailed(f"no gradient for {missing[0]} (and {len(missing) - 1} more)")
        model.eval()
        model.pose2mesh.set_padding_skip(real)
        try:
            with torch.no_grad():
                ref = model(x)[0]
                out = dp(x)[0]
        finally:
            model.pose2mesh.set_padding_skip(None)
        diff = float((out - ref).abs().max())
        scale = float(ref.abs().max())
        rep.add(S, f"nn.DataParallel over {ctx.n_gpu or 'no'} GPU(s): train step, eval with padding skip",
                f"gradients for every MeshNet parameter; eval |DataParallel - model| {diff:.1e}",
                ok=diff <= 1e-4 * max(scale, 1.0), max_abs_diff=diff)
    if ctx.cuda:
        with rep.guard(S, "replicas (what DataParallel makes on several GPUs)"):
            model.eval()
            model.pose2mesh.set_padding_skip(real)
            try:
                with torch.no_grad():
                    ref = model(x)[0]
                    replicas = torch.nn.parallel.replicate(model, [ctx.device.index or 0])
                    outs = torch.nn.parallel.parallel_apply(replicas, [(x,)])
                    out = outs[0][0]
            finally:
                model.pose2mesh.set_padding_skip(None)
            diff = float((out - ref).abs().max())
            rep.add(S, "replicate + parallel_apply (non-persistent buffers, padding skip)",
                    f"|replica - model| {diff:.1e}", ok=diff <= 1e-5 * max(float(ref.abs().max()), 1.0),
                    max_abs_diff=diff)
    del model
    if ctx.cuda:
        torch.cuda.empty_cache()


def _ddp_in_process(ctx: Context, rep: Report, S: str) -> None:
    """DDP (with the project's batch-norm conversion) in one process of the nccl (gloo) backend
    against the plain model: the same weights after a few SGD steps."""
    import torch.distributed as dist

    from pose2mesh.engine.sync_bn import convert_batchnorm

    backend = "nccl" if ctx.cuda else "gloo"
    store = ctx.out / "torchrun" / "store"
    store.parent.mkdir(parents=True, exist_ok=True)
    store.unlink(missing_ok=True)
    plain = ctx.build_model(p_dropout=0.0, seed=5).train()
    wrapped = ctx.build_model(p_dropout=0.0, seed=5).train()
    xs = [ctx.pose_batch(ctx.batch, seed=10 + i) for i in range(3)]
    dist.init_process_group(backend, init_method=f"file://{store}", rank=0, world_size=1)
    try:
        ddp = torch.nn.parallel.DistributedDataParallel(convert_batchnorm(wrapped, use_cuda=ctx.cuda),
                                                        device_ids=[ctx.device.index or 0] if ctx.cuda else None)
        for net, params in ((plain, plain.parameters()), (ddp, ddp.parameters())):
            opt = torch.optim.SGD(params, lr=1e-3)
            for x in xs:
                opt.zero_grad(set_to_none=True)
                mesh, pose3d = net(x)
                (mesh.abs().mean() + pose3d.abs().mean()).backward()
                opt.step()
        ctx.sync()
    finally:
        dist.destroy_process_group()
    a, b = plain.state_dict(), wrapped.state_dict()
    diff = max_weight_diff({k: v.cpu() for k, v in a.items()}, {k: v.cpu() for k, v in b.items()})
    rep.add(S, f"DDP in one {backend} process, 3 SGD steps vs the plain model",
            f"max |DDP - plain| weights {diff:.1e} (tolerance 1e-5); SyncBatchNorm conversion"
            f"{' (nccl)' if ctx.cuda else ' (gloo: the project batch norm)'}", ok=diff <= 1e-5, max_abs_diff=diff)
    del plain, wrapped


def section_torchrun(ctx: Context, rep: Report) -> None:
    S = "torchrun"
    nproc = ctx.n_gpu if ctx.cuda else 2
    if ctx.cuda and nproc < 2:
        rep.add(S, f"torchrun --nproc_per_node=2", f"not run: {nproc} GPU visible (nccl puts one rank on a GPU)",
                status="n/a")
        with rep.guard(S, "DDP in one nccl process"):
            _ddp_in_process(ctx, rep, S)
        return
    backend = "nccl" if ctx.cuda else "gloo"
    folder = ctx.out / "torchrun"
    with rep.guard(S, f"torchrun --nproc_per_node={nproc} ({backend})"):
        cfg, single, secs1 = _single_process_run(ctx)  # the config's batch divides by nproc
        rc, out, err, secs = run_cmd([sys.executable, "-m", "torch.distributed.run", "--standalone",
                                      f"--nproc_per_node={nproc}", "main/train.py", "--gpu", ctx.gpu_arg,
                                      "--cfg", str(cfg), "--output_dir", str(folder / "ddp")],
                                     timeout=300, env={"OMP_NUM_THREADS": "1"})
        require_ok(rc, out, err, "torchrun train.py")
        if f"all {nproc} processes end with identical parameters" not in out:
            raise CheckFailed("the ranks did not report identical parameters")
        deprecated = [line for line in err.splitlines() if "FutureWarning" in line and "torch.distributed.nn" in line]
        # float32 sums split over ranks round differently from one sum, and train-mode batch norm
        # amplifies that in the layers before it (in float64 the two agree to 1e-15:
        # tests/test_sync_bn.py): each tensor within DDP_ATOL + DDP_RTOL x its largest entry
        name, score, diff = worst_weight_diff(final_weights(only_run(folder / "ddp")), final_weights(single))
        rep.add(S, f"torchrun --nproc_per_node={nproc} ({backend}) vs one process, 2 short epochs",
                f"weights differ by at most {score:.2f} of the tolerance ({DDP_ATOL:g} + {DDP_RTOL:g} x scale; "
                f"worst {name}, {diff:.1e}); {secs:.0f} s vs {secs1:.0f} s; {len(deprecated)} deprecation "
                f"warnings from torch.distributed.nn", ok=score <= 1.0 and not deprecated, tolerance_used=score,
                worst=name, max_abs_diff_worst=diff, seconds=secs, single_seconds=secs1)


def _mesh_loss(face, regressor: torch.Tensor):
    """Pose2Mesh's loss terms before the edge loss starts: vertex L1, 0.1 x surface normal,
    1e-3 x joint L1 (joints regressed from the mesh, mm) and 1e-3 x lifted-joint L1."""
    from pose2mesh.losses import CoordLoss, NormalVectorLoss

    coord, normal = CoordLoss(), NormalVectorLoss(face).to(regressor.device)

    def loss(mesh, lifted, targets, meta):
        regressed = torch.einsum("jv,bvc->bjc", regressor, mesh * 1000)
        return (coord(mesh, targets["mesh"], meta["mesh_valid"]) + 0.1 * normal(mesh, targets["mesh"])
                + 1e-3 * coord(regressed, targets["reg_pose3d"], meta["reg_pose3d_valid"])
                + 1e-3 * coord(lifted, targets["lift_pose3d"], meta["lift_pose3d_valid"]))
    return loss


def section_synthetic(ctx: Context, rep: Report) -> None:
    S = "synthetic"
    from torch.utils.data import DataLoader

    from pose2mesh.checkpoint import save_checkpoint
    from pose2mesh.config import load_config
    from pose2mesh.datasets import build_dataset
    from pose2mesh.device import move_to

    folder = ctx.out / "synthetic"
    workers = 0 if ctx.smoke else max(1, min(8, (os.cpu_count() or 2) - 2))
    cfg_path = synthetic_config(folder / "config.yml", hid=ctx.hid, div=ctx.div, batch=ctx.batch, epochs=1,
                                iters=0, train_size=64 if ctx.smoke else 1_000_000,
                                test_size=16 if ctx.smoke else 500, workers=workers, test_every_epoch=False)
    ckpt = folder / "checkpoint" / "final.pth.tar"
    size = "tiny" if ctx.smoke else "full-size"
    with rep.guard(S, f"{size} model, {ctx.train_seconds:.0f} s of training"):
        cfg = load_config(str(cfg_path))
        js, smpl, (_, _, _, perm_reverse) = ctx.graphs
        train_set = build_dataset("Synthetic", "train", cfg, mesh_model=smpl)
        loader = DataLoader(train_set, batch_size=ctx.batch, shuffle=True, num_workers=workers, drop_last=True,
                            pin_memory=ctx.cuda, persistent_workers=workers > 0,
                            generator=torch.Generator().manual_seed(0))
        model = ctx.build_model().train()
        unpermute = torch.as_tensor(np.asarray(perm_reverse)[: smpl.vertex_num], device=ctx.device)
        regressor = torch.as_tensor(smpl.joint_regressor("human36"), dtype=torch.float32, device=ctx.device)
        loss_fn = _mesh_loss(smpl.face, regressor)
        opt = torch.optim.RMSprop(model.parameters(), lr=1e-3)
        steps, samples, losses = 0, 0, []
        start = time.perf_counter()
        deadline = start + ctx.train_seconds
        while time.perf_counter() < deadline:
            for inputs, targets, meta in loader:
                inputs, targets, meta = move_to((inputs, targets, meta), ctx.device)
                mesh_padded, lifted = model(inputs["pose2d"].float())
                loss = loss_fn(mesh_padded[:, unpermute], lifted, targets, meta)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                steps += 1
                samples += ctx.batch
                if steps % 50 == 1:
                    losses.append(float(loss.detach()))
                    if not math.isfinite(losses[-1]):
                        raise CheckFailed(f"non-finite loss at step {steps}")
                if time.perf_counter() >= deadline:
                    break
        ctx.sync()
        secs = time.perf_counter() - start
        del loader  # its workers
        losses.append(float(loss.detach()))
        save_checkpoint(ckpt, {"epoch": 1, "model_state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
                               "optim_state_dict": opt.state_dict(), "scheduler_state_dict": {},
                               "train_log": [losses[-1]], "test_log": {}})
        rep.add(S, f"training, {size} model, batch {ctx.batch}, {ctx.train_seconds:.0f} s",
                f"{samples / secs:,.0f} samples/s with the loader ({workers} workers, pinned memory "
                f"{'on' if ctx.cuda else 'off'}); {steps} steps; loss {losses[0]:.3f} -> {losses[-1]:.3f}",
                samples_per_s=samples / secs, steps=steps, first_loss=losses[0], last_loss=losses[-1])
        del model, opt
        if ctx.cuda:
            torch.cuda.empty_cache()
    if not ckpt.is_file():
        rep.add(S, "main/test.py --baselines", "not run: no checkpoint", status="n/a")
        return
    with rep.guard(S, "main/test.py --baselines"):
        rc, out, err, secs = run_cmd([sys.executable, "main/test.py", "--gpu", ctx.gpu_arg, "--cfg", str(cfg_path),
                                      "--weights", str(ckpt), "--baselines", "--output_dir", str(folder / "test")],
                                     timeout=300)
        require_ok(rc, out, err, "test.py --baselines")
        run = only_run(folder / "test")
        rows = json.loads((run / "result" / "baselines.json").read_text())["rows"]
        ours = rows.pop("Pose2Mesh (this model)")
        base = "; ".join(f"{name} {r['MPVPE']:.1f}" for name, r in rows.items())
        rep.add(S, f"MPVPE after {ctx.train_seconds:.0f} s of training (synthetic test split)",
                f"Pose2Mesh {ours['MPVPE']:.1f} mm (MPJPE {ours['MPJPE']:.1f}); baselines: {base} mm",
                mpvpe=ours["MPVPE"], mpjpe=ours["MPJPE"],
                **{f"baseline_{i}_mpvpe": r["MPVPE"] for i, r in enumerate(rows.values())})


SECTION_FUNCS = {"env": section_env, "tests": section_tests, "model": section_model, "bf16": section_bf16,
                 "e2e": section_e2e, "dataparallel": section_dataparallel, "torchrun": section_torchrun,
                 "synthetic": section_synthetic}


def _names(text: Optional[str]) -> List[str]:
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    bad = [n for n in names if n not in SECTIONS]
    if bad:
        raise SystemExit(f"gpu_check: unknown section {bad[0]!r}; sections: {', '.join(SECTIONS)}")
    return names


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="sections: " + ", ".join(SECTIONS))
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, CPU-scaled time budgets: for breakage")
    p.add_argument("--only", default=None, help="comma-separated sections to run")
    p.add_argument("--skip", default=None, help="comma-separated sections to leave out")
    p.add_argument("--out", default=str(REPO / "experiment" / "gpu_check"),
                   help="folder for gpu_check.json and the runs' files (default experiment/gpu_check)")
    p.add_argument("--train_seconds", type=float, default=None,
                   help="training time of the synthetic section (default 180; 3 with --smoke)")
    p.add_argument("--repeat", type=int, default=5, help="timed runs per case (median)")
    args = p.parse_args(argv)
    only, skip = _names(args.only), _names(args.skip)
    sections = [s for s in SECTIONS if (not only or s in only) and s not in skip]
    try:
        dev = torch.device(args.device)
    except RuntimeError:
        raise SystemExit(f"gpu_check: --device {args.device!r}: expected cuda, cuda:N or cpu") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_check: CUDA is not available to this torch "
                         f"({torch.__version__}); use --device cpu --smoke for a CPU run")
    if dev.type not in ("cuda", "cpu"):
        raise SystemExit(f"gpu_check: --device {args.device!r}: expected cuda, cuda:N or cpu")
    if dev.type == "cuda":
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(dev)
        args.device = str(dev)
    ctx = Context(args)
    ctx.out.mkdir(parents=True, exist_ok=True)
    rep = Report(ctx.out / "gpu_check.json", {"command": "python bench/gpu_check.py " + " ".join(
        sys.argv[1:] if argv is None else argv), "device": str(ctx.device), "smoke": ctx.smoke,
        "sections": sections})
    print(f"# gpu_check: {machine()}", flush=True)
    t0 = time.perf_counter()
    for name in sections:
        ts = time.perf_counter()
        with rep.guard(name, "section"):
            SECTION_FUNCS[name](ctx, rep)
        print(f"# {name}: {time.perf_counter() - ts:.0f} s", flush=True)
    print(f"# total {time.perf_counter() - t0:.0f} s; figures in {rep.json_path}")
    print(rep.markdown())
    return 1 if rep.failed else 0


if __name__ == "__main__":
    sys.exit(main())
