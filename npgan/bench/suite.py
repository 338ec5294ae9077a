"""``npgan bench``: parse the flags, measure every configuration in its workers, print and write the report."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys

from npgan import runtime
from npgan.bench.flops import step_flops
from npgan.bench.models import CONFIGS, PHASES, default_batch_size, default_steps
from npgan.bench.report import (
    FIELDS,
    REPORT_END,
    REPORT_START,
    _machine,
    _median,
    _versions,
    cpu_gpu_rows,
    report,
    torch_available,
    update_report,
)
from npgan.bench.workers import _spawn, _worker_main, measure_phase


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="npgan bench",
        description="Time GAN training steps in npgan and PyTorch (the configurations of benchmarks/CONFIGS.md). "
                    "Tip: OPENBLAS_CORETYPE pins OpenBLAS's kernel; compare with and without it "
                    "(env -u OPENBLAS_CORETYPE ...).")
    parser.add_argument("--configs", default=",".join(CONFIGS),
                        help=f"comma-separated configurations (default: all of {', '.join(CONFIGS)})")
    parser.add_argument("--backend", dest="backends", default="numpy", metavar="BACKEND[,BACKEND]",
                        help="npgan's array backend, numpy or cupy; PyTorch runs on the matching device (cpu or "
                             "cuda). numpy,cupy runs the suite on both and adds a table of CPU against GPU "
                             "(default numpy)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for both libraries (BLAS via threadpoolctl, torch.set_num_threads); "
                             "default: the CPUs this process may use")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="batch of every configuration (default: 64, and 256 points for the 2-D toys)")
    parser.add_argument("--steps", type=int, default=None,
                        help="timed steps per row (default: 20, and 200 for the 2-D toys)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    parser.add_argument("--rounds", type=int, default=4,
                        help="the timed steps run in this many rounds, alternating between npgan and PyTorch "
                             "(A B B A ...), so a change in the machine's load hits both (default 4)")
    parser.add_argument("--json", metavar="OUT", help="also write the rows as JSON lines to OUT")
    parser.add_argument("--markdown", metavar="FILE",
                        help="also write the report (machine, versions, tables) into FILE, between the markers "
                             f"{REPORT_START} and {REPORT_END} (appended when they are missing)")
    parser.add_argument("--profile", action="store_true",
                        help="also time npgan's steps by op category (im2col, gemm, col2im, batchnorm, "
                             "elementwise, optimizer, other) in extra profiled steps")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch even when it is installed")
    args = parser.parse_args(argv)
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    for c in configs:
        if c not in CONFIGS:
            parser.error(f"unknown configuration {c!r}; choose from {', '.join(CONFIGS)}")
    args.configs = configs
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    for b in backends:
        if b not in DEVICES:
            parser.error(f"--backend: unknown backend {b!r}; choose numpy, cupy or numpy,cupy")
    if not backends or len(set(backends)) != len(backends):
        parser.error(f"--backend: give each of numpy, cupy at most once, got {args.backends!r}")
    args.backends = backends
    for name in ("batch_size", "steps", "rounds"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0:
        parser.error(f"--warmup must be >= 0, got {args.warmup}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    return args


DEVICES = {"numpy": "cpu", "cupy": "cuda"}  # npgan's backend -> the device it and PyTorch run on


def run(args, log=print) -> list[dict]:
    """Run the benchmark described by parsed ``args``; returns one dict per row (``FIELDS``).

    With several backends (``--backend numpy,cupy``) the suite runs once per backend, each with the matmul
    peak of its own device; the rows of the first come first.
    """
    devices = [DEVICES[b] for b in args.backends]
    if "cuda" in devices:  # before anything runs: no half a report
        from npgan import backend  # noqa: PLC0415

        if not backend.cupy_available():
            raise SystemExit("npgan bench: --backend cupy needs CuPy and an NVIDIA GPU, and this machine has "
                             "none usable; install CuPy with pip install 'npgan[cuda]' on a GPU machine")
    threads = args.threads or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    libraries = {}
    for device in devices:
        libraries[device] = ["npgan"]
        if not args.no_torch:
            ok, why = torch_available(device)
            if ok:
                libraries[device].append("torch")
            else:
                log(f"note: {why}")
    try:
        import threadpoolctl  # noqa: F401, PLC0415
    except ImportError:
        log("note: threadpoolctl is not installed (pip install threadpoolctl): the workers' BLAS threads are set "
            "through OPENBLAS_NUM_THREADS / OMP_NUM_THREADS only, and the BLAS kernel is not reported")
    if "cpu" in devices and os.environ.get("OPENBLAS_CORETYPE"):
        log(f"note: OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']} pins OpenBLAS's kernel for npgan's "
            "matmuls; unset it to let OpenBLAS pick the fastest for this CPU")
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    versions = _versions({library for names in libraries.values() for library in names})
    machine = _machine()
    rows = []
    for device in devices:
        rows += _run_device(args, device, libraries[device], threads, dict(versions=versions, machine=machine,
                                                                          date=date), log)
    return rows


def _run_device(args, device, libraries, threads, context, log) -> list[dict]:
    """Every configuration and phase on one device, against the matmul peak measured on that device."""
    peak = _spawn({"peak": True, "threads": threads, "device": device}, threads)
    rows = []
    for config in args.configs:
        for phase in PHASES[config]:
            order = ["torch", "npgan"] if "torch" in libraries else ["npgan"]
            batch = args.batch_size or default_batch_size(config)
            steps = args.steps or default_steps(config)
            results = measure_phase(config, phase, order, args, device, threads, batch, steps)
            torch_median = _median(results["torch"]["times"]) if "torch" in results else None
            for library in order:
                result = results[library]
                times = result["times"]
                median = _median(times)
                gflop = step_flops(config, phase, batch, library) / 1e9
                ratio = median / torch_median if library == "npgan" and torch_median else None
                row = dict(
                    config=config, phase=phase, library=library,
                    backend=("numpy" if device == "cpu" else "cupy") if library == "npgan" else device,
                    device=device, threads=threads, batch_size=batch, steps=steps,
                    warmup=args.warmup, ms_median=1e3 * median, ms_min=1e3 * min(times), ms_max=1e3 * max(times),
                    images_per_s=batch / median, gflop_per_step=gflop, gflop_per_s=gflop / median,
                    matmul_peak_gflop_per_s=peak["matmul_peak"], peak_fraction=gflop / median / peak["matmul_peak"],
                    peak_mem_mb=result["peak_mem_mb"], mem_method=result["mem_method"], ratio_vs_torch=ratio,
                    blas=result["blas"], profile=result["profile"], **context,
                )
                rows.append({field: row[field] for field in FIELDS})  # the order of FIELDS, as before
                log(json.dumps(rows[-1]))
    return rows


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--worker":
        return _worker_main(argv[1:])
    args = parse_args(argv)
    try:  # a bad NPGAN_MALLOC or NPGAN_NUM_THREADS stops here, not in every worker
        runtime.enable()
    except ValueError as err:
        raise SystemExit(f"npgan bench: error: {err}") from None
    rows = run(args)
    combined = cpu_gpu_rows(rows) if len(args.backends) > 1 else []
    for row in combined:
        print(json.dumps(row))
    if rows:
        text = report(rows, args, argv)
        print()
        print(text)
        if args.markdown:
            update_report(args.markdown, text)
    if args.json:
        with open(args.json, "w") as f:
            for row in rows + combined:
                f.write(json.dumps(row) + "\n")
    return 0
