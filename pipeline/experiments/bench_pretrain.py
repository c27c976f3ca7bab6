"""`make bench` part: G + D training throughput (images/s) and peak memory, per generator and resolution.

    python -m pipeline.experiments.bench_pretrain [--res 64 128 256] [--generators fastgan stylegan2] [--steps 6]
           [--batch 8] [--threads N] [--params params.yaml] [--d-resize 224]

Each configuration runs in its own process so peak memory (ru_maxrss on CPU, max_memory_allocated on CUDA)
is that configuration's alone. Network sizes come from the ``pretrain`` section of ``--params`` (defaults
when the file is absent), with the resolution overridden. Random images: this measures compute only.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
import time
from pathlib import Path


def _settings(params: str | None, generator: str, res: int, batch: int, d_resize: int | None):
    from pipeline.config import library_settings
    from syndgan.training.settings import PretrainSettings

    if params and Path(params).exists():
        from pipeline.config import load_params

        s = library_settings(load_params(params).pretrain, resolution=res, channels=3)
    else:
        s = PretrainSettings(resolution=res, channels=3)
    return dataclasses.replace(s, generator=generator, batch_size=batch, d_resize=d_resize, device="auto")


def run_one(generator: str, res: int, steps: int, batch: int, params: str | None, d_resize: int | None) -> dict:
    import torch

    from syndgan.losses import AuxClassifierLoss, create_adversarial_losses
    from syndgan.models.snapshots import select_device
    from syndgan.training.common import amp_dtype
    from syndgan.training.pretrain import build_networks, make_optimizers, train_step

    s = _settings(params, generator, res, batch, d_resize)
    torch.manual_seed(0)
    device = select_device(s.device)
    G, D = build_networks(s)
    G, D = G.to(device).train(), D.to(device).train()
    opt_g, opt_d = make_optimizers(G, D, s)
    losses = (*create_adversarial_losses(s.loss), AuxClassifierLoss())
    dtype = amp_dtype(device, s.amp)
    real = torch.rand(batch, s.channels, res, res, device=device) * 2 - 1
    labels = torch.zeros(batch, dtype=torch.long, device=device)

    def step():
        z = torch.randn(batch, s.z_dim, device=device)
        train_step(G, D, opt_g, opt_d, real, labels, z, losses, 0.0, device, dtype)

    step()  # warm-up (allocations, cuDNN/oneDNN kernel selection)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return {
        "generator": generator,
        "resolution": res,
        "batch": batch,
        "d_resize": d_resize,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "images_per_s": steps * batch / dt,
        # per CPU-second of this process: stable when other jobs share the cores (wall time is not)
        "images_per_cpu_s": steps * batch / max(cpu, 1e-9),
        "peak_mib": peak,
        "g_params_m": sum(p.numel() for p in G.parameters()) / 1e6,
        "d_trainable_params_m": sum(p.numel() for p in D.parameters() if p.requires_grad) / 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m pipeline.experiments.bench_pretrain", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--res", type=int, nargs="*", default=[64, 128, 256])
    ap.add_argument("--generators", nargs="*", default=["fastgan", "stylegan2"])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--d-resize", type=int, default=None)
    ap.add_argument("--one", nargs=2, metavar=("GENERATOR", "RES"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.one:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        r = run_one(args.one[0], int(args.one[1]), args.steps, args.batch, args.params, args.d_resize)
        print(json.dumps(r))
        return 0

    print(
        f"{'generator':<10} {'res':>5} {'batch':>5} {'device':>6} {'thr':>3} {'img/s':>8} {'img/cpu-s':>9} {'peak MiB':>9}  G/D params (M)"
    )
    rc = 0
    for res in args.res:
        for gen in args.generators:
            cmd = [sys.executable, "-m", "pipeline.experiments.bench_pretrain", "--one", gen, str(res)]
            cmd += ["--steps", str(args.steps), "--batch", str(args.batch), "--threads", str(args.threads)]
            cmd += ["--params", args.params] + (["--d-resize", str(args.d_resize)] if args.d_resize else [])
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"{gen:<10} {res:>5}  failed: {proc.stderr.strip().splitlines()[-1:]}", flush=True)
                rc = 1
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            print(
                f"{gen:<10} {res:>5} {r['batch']:>5} {r['device']:>6} {r['threads']:>3} {r['images_per_s']:>8.1f} {r['images_per_cpu_s']:>9.1f} "
                f"{r['peak_mib']:>9.0f}  {r['g_params_m']:.2f} / {r['d_trainable_params_m']:.2f}",
                flush=True,
            )
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
