"""Device operations (kernel launches) per training step, counted on the CuPy stand-in, against FLOPs.

No GPU is available here, so this does not time a GPU. It runs each ``npgan bench`` configuration's step on
the CPU stand-in for CuPy (``tests/fakecupy``), which counts every call that writes device memory (an
estimate of kernel launches: views such as reshape or transpose are free, a GEMM counts as one) and every
host-device copy. It then prints what a GPU step should cost on paper:

    compute bound  = FLOP per step / the device's FP32 peak
    launch bound   = launches per step * the cost of one launch from Python (CuPy's per-call overhead)

whichever is larger bounds the step from below. The peak and the launch cost are assumptions, given as
flags (defaults: an A100's 19.5 TFLOP/s FP32 without tensor cores; 10 us per CuPy call, a typical host-side
cost of launching one elementwise kernel from Python). Run from the repository root:

    python benchmarks/launches.py [--batch-size 64] [--peak-tflops 19.5] [--launch-us 10] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), os.path.join(os.path.dirname(HERE), "tests")]


def count(config: str, batch_size: int) -> list[dict]:
    """One row per phase of ``config``: launches and copies of one step (after one warm-up step)."""
    import fakecupy  # noqa: PLC0415

    from npgan import bench  # noqa: PLC0415

    rows = []
    for phase, step in bench.npgan_steps(config, batch_size, "cuda").items():
        step()
        fakecupy.COUNTS.reset()
        step()
        counts = fakecupy.COUNTS.snapshot()
        rows.append({"config": config, "phase": phase, **counts,
                     "gflop": bench.step_flops(config, phase, batch_size) / 1e9})
    return rows


def install_stand_in() -> None:
    import fakecupy  # noqa: PLC0415

    from npgan import backend  # noqa: PLC0415

    cupy, cupyx = fakecupy.build_modules()
    sys.modules.update(fakecupy.submodules(cupy, cupyx))
    backend._cupy = None


def table(rows, peak_tflops: float, launch_us: float) -> str:
    lines = [f"| config | phase | launches | copies in / out | GFLOP | compute bound (ms, {peak_tflops:g} TFLOP/s) "
             f"| launch bound (ms, {launch_us:g} us each) | bound by |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        compute_ms = r["gflop"] / peak_tflops  # GFLOP / (TFLOP/s) = ms
        launch_ms = r["launches"] * launch_us / 1000.0
        bound = "launches" if launch_ms > compute_ms else "FLOPs"
        ratio = max(launch_ms, compute_ms) / min(launch_ms, compute_ms)
        lines.append(f"| {r['config']} | {r['phase']} | {r['launches']} | {r['to_device']} / {r['to_host']} | "
                     f"{r['gflop']:.2f} | {compute_ms:.3f} | {launch_ms:.2f} | {bound} ({ratio:.0f}x) |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="gan-mlp,dcgan-32,wgan-gp-32,wgan-32,dcgan-64")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--peak-tflops", type=float, default=19.5, help="the GPU's FP32 peak (A100: 19.5)")
    parser.add_argument("--launch-us", type=float, default=10.0, help="host cost of one CuPy kernel launch")
    args = parser.parse_args(argv)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    install_stand_in()
    rows = [row for config in args.configs.split(",") for row in count(config.strip(), args.batch_size)]
    print(table(rows, args.peak_tflops, args.launch_us))
    return 0


if __name__ == "__main__":
    sys.exit(main())
