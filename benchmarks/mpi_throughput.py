"""Images per second of data-parallel training over MPI against one process, on one machine.

    python benchmarks/mpi_throughput.py                              # gan-mlp, dcgan-32, wgan-gp-32's critic
    python benchmarks/mpi_throughput.py --configs dcgan-32 --ranks 2 --steps 20 --rounds 3 --json out.jsonl

For each configuration of ``npgan/bench/`` (the same models, optimizers and step functions, imported), it
times the training step of the global batch (``--batch-size``, 64) run as:
    one process       npgan with ``--ranks`` BLAS threads (all the cores); with ``--one-thread`` also one
    ranks x 1 thread  ``mpiexec -n RANKS``: each rank steps on batch / RANKS samples with one BLAS thread
                      (npgan.runtime.distributed's default on this machine), gradients averaged by one Allreduce
                      per network before each optimizer step (``DistributedOptimizer``)
    ... sync BN       the same, BatchNorm statistics over the global batch (configurations with BatchNorm)
    PyTorch           one process with ``--ranks`` threads (when PyTorch is installed)
and with ``--one-thread`` also
    1 process, 1 thread      the work of one core
    ranks independent ...    RANKS processes without MPI started together, each stepping on batch / RANKS
                             samples with one BLAS thread and never waiting for the others: what RANKS ranks
                             could reach on this machine with a free, instant Allreduce (its step time is the
                             slower process's median); the ceiling the MPI row is measured against
Every variant runs in fresh processes, ``--rounds`` times, the variants taking turns (A B C A B C ...), so
a change in the load of a shared machine hits all alike; a row gives the median over all timed steps. An MPI
step's time is rank 0's, whose Allreduce waits for the slower rank; the Allreduce's own time is reported, and
so is the CPU time per step of the (rank 0) process, all its threads together: on a loaded machine the wall
time of a step grows with the load, its CPU time much less.

Prints one JSON line per measurement and a Markdown table (docs/DISTRIBUTED.md holds the measured one).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from npgan import bench  # noqa: E402

CONFIGS = {"gan-mlp": "step", "dcgan-32": "step", "wgan-gp-32": "critic"}
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")


# -- in the measuring process (one process, or each rank) -----------------------------------------------------


def worker(args) -> None:
    """Time ``args.steps`` steps of one variant and print one JSON line (rank 0 under MPI)."""
    import threadpoolctl  # noqa: PLC0415

    from npgan import runtime  # noqa: PLC0415
    from npgan.runtime import distributed  # noqa: PLC0415
    from npgan.runtime.threads import blas_libraries  # noqa: PLC0415

    comm = distributed.world()  # under mpiexec: also sets (cores / ranks) BLAS threads
    if comm.size == 1:
        threadpoolctl.threadpool_limits(limits=args.threads)
    if args.library != "torch":  # npgan as npgan train runs it (after the thread cap, which the policy starts from)
        runtime.enable()
    local_batch = args.batch_size // comm.size
    sync = {"seconds": 0.0, "calls": 0}
    allreduce_sum_ = comm.allreduce_sum_

    def counted_allreduce(buffer):  # every Allreduce of the step: the gradients', and sync BN's statistics
        sync["calls"] += 1
        return allreduce_sum_(buffer)

    comm.allreduce_sum_ = counted_allreduce
    if args.library == "torch":
        import torch  # noqa: PLC0415

        torch.set_num_threads(args.threads)
        step = bench.torch_steps(args.config, local_batch, "cpu")[args.phase]
    else:
        if args.sync_bn:  # bench's models with every BatchNorm synchronised over the ranks
            build = bench.build_models

            def build_models(config, device="cpu"):
                G, D, nz = build(config, device)
                return distributed.convert_sync_batchnorm(G, comm), distributed.convert_sync_batchnorm(D, comm), nz

            bench.steps.build_models = build_models  # where npgan_steps looks the builder up
        wrapped = {}

        def averaged_step(optimizer_step):
            """bench's hook around each ``optimizer.step``: average the gradients first (timed)."""
            optimizer = optimizer_step.__self__
            if id(optimizer) not in wrapped:
                wrapped[id(optimizer)] = distributed.DistributedOptimizer(optimizer, comm)
            start = time.perf_counter()
            wrapped[id(optimizer)].allreduce_grads()
            sync["seconds"] += time.perf_counter() - start
            wrapped[id(optimizer)].step()  # the optimizer's step on the averaged gradients (not averaged again)

        hook = averaged_step if comm.size > 1 else None
        step = bench.npgan_steps(args.config, local_batch, "cpu", timers=hook)[args.phase]
    for _ in range(args.warmup):
        step()
    comm.barrier()
    sync["seconds"], sync["calls"] = 0.0, 0
    cpu_start = time.process_time()  # CPU seconds of this process, all its threads (spinning included)
    times = bench.time_steps(step, args.steps, lambda: None)
    cpu_ms = 1000 * (time.process_time() - cpu_start) / args.steps
    pools = blas_libraries()
    threads = [pool["num_threads"] for pool in pools]
    kernels = sorted({pool["architecture"] for pool in pools if pool["internal_api"] == "openblas"})
    if comm.is_main:
        answer = {"ms": [round(1000 * t, 2) for t in times], "allreduce_ms": 1000 * sync["seconds"] / args.steps,
                  "allreduces_per_step": sync["calls"] / args.steps,
                  "cpu_ms": cpu_ms, "ranks": comm.size, "blas_threads": threads, "openblas_kernel": kernels,
                  "local_batch": local_batch,
                  "load_average": os.getloadavg()[0]}
        print(json.dumps(answer), flush=True)


# -- the driver --------------------------------------------------------------------------------------------------


def variants(config, ranks, torch_available, one_thread=False):
    """(name, library, ranks, sync_bn, BLAS threads of a one-process run) of what one row compares."""
    rows = [("1 process", "npgan", 1, False, ranks), (f"{ranks} ranks", "npgan", ranks, False, 1)]
    if config != "gan-mlp" and config != "wgan-gp-32":  # the nets with BatchNorm
        rows.append((f"{ranks} ranks, sync BN", "npgan", ranks, True, 1))
    if one_thread:
        rows.append(("1 process, 1 thread", "npgan", 1, False, 1))
        rows.append((f"{ranks} independent processes, 1 thread each", INDEPENDENT, ranks, False, 1))
    if torch_available:
        rows.append(("PyTorch", "torch", 1, False, ranks))
    return rows


INDEPENDENT = "npgan, no MPI"  # the library field of the independent processes' row


def run_independent(args, config, ranks, steps) -> dict:
    """``ranks`` one-thread processes at once, each on batch / ranks samples, no MPI between them."""
    local = argparse.Namespace(**{**vars(args), "batch_size": args.batch_size // ranks})
    commands = [worker_command(local, config, "npgan", 1, False, steps) for _ in range(ranks)]
    env = worker_environment()
    started = [subprocess.Popen(c, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for c in commands]
    answers = []
    for process, command in zip(started, commands):
        out, err = process.communicate(timeout=1800)
        if process.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{err[-3000:]}")
        answers.append(json.loads(out.strip().splitlines()[-1]))
    slowest = max(answers, key=lambda a: statistics.median(a["ms"]))
    return dict(slowest, ranks=ranks)


def worker_environment() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}  # threads are set in the worker
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def worker_command(args, config, library, threads, sync_bn, steps) -> list:
    return [sys.executable, os.path.abspath(__file__), "--worker", "--config", config, "--phase", CONFIGS[config],
            "--library", library, "--threads", str(threads), "--batch-size", str(args.batch_size),
            "--steps", str(steps), "--warmup", str(args.warmup)] + (["--sync-bn"] if sync_bn else [])


def run_variant(args, config, library, ranks, sync_bn, threads, steps) -> dict:
    if library == INDEPENDENT:
        return run_independent(args, config, ranks, steps)
    env = worker_environment()
    command = worker_command(args, config, library, threads, sync_bn, steps)
    if ranks > 1:
        command = [shutil.which("mpiexec") or "mpiexec", "-n", str(ranks)] + command
    result = subprocess.run(command, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated subset of {', '.join(CONFIGS)}")
    parser.add_argument("--ranks", type=int, default=2, help="MPI ranks, and the threads of one process (2)")
    parser.add_argument("--batch-size", type=int, default=64, help="the global batch (64)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per variant, over all rounds (20)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each variant, taking turns (2)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps at the start of each run (2)")
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    parser.add_argument("--one-thread", action="store_true",
                        help="add one process with one BLAS thread (the work of one core, without waits between "
                             "threads: less sensitive to a loaded machine)")
    parser.add_argument("--json", help="also append the rows as JSON lines to this file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--library", default="npgan", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--sync-bn", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    configs = [c for c in args.configs.split(",") if c]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        parser.error(f"--configs: unknown {unknown}; choose from {', '.join(CONFIGS)}")
    if args.batch_size % args.ranks:
        parser.error(f"--batch-size {args.batch_size} does not divide by --ranks {args.ranks}")
    if shutil.which("mpiexec") is None:
        parser.error('mpiexec not found: pip install "npgan[mpi]"')
    torch_available = not args.no_torch and bench.torch_available("cpu")[0]
    per_round = [args.steps // args.rounds + (1 if i < args.steps % args.rounds else 0) for i in range(args.rounds)]
    rows = []
    for config in configs:
        todo = variants(config, args.ranks, torch_available, args.one_thread)
        results = {name: {"ms": [], "allreduce_ms": [], "load": [], "cpu_ms": [], "calls": []} for name, *_ in todo}
        for steps in per_round:
            for name, library, ranks, sync_bn, threads in todo:
                answer = run_variant(args, config, library, ranks, sync_bn, threads, steps)
                results[name]["ms"] += answer["ms"]
                results[name]["allreduce_ms"].append(answer["allreduce_ms"])
                results[name]["load"].append(answer["load_average"])
                results[name]["cpu_ms"].append(answer["cpu_ms"])
                results[name]["calls"].append(answer["allreduces_per_step"])
                results[name]["blas_threads"] = answer["blas_threads"]
                results[name]["kernel"] = answer.get("openblas_kernel", [])  # PyTorch's worker: NumPy's OpenBLAS
                print(f"# {config} {name}: median {statistics.median(answer['ms']):.1f} ms/step", file=sys.stderr)
        single = statistics.median(results["1 process"]["ms"])
        for name, library, ranks, *_ in todo:
            ms = statistics.median(results[name]["ms"])
            row = {"config": config, "phase": CONFIGS[config], "variant": name, "library": library, "ranks": ranks,
                   "threads_per_process": results[name]["blas_threads"], "openblas_kernel": results[name]["kernel"],
                   "batch_size": args.batch_size,
                   "ms_median": round(ms, 1), "images_per_s": round(args.batch_size / ms * 1000, 1),
                   "speedup_vs_1_process": round(single / ms, 2),
                   "allreduce_ms": round(statistics.median(results[name]["allreduce_ms"]), 2),
                   "allreduces_per_step": max(results[name]["calls"]),
                   "cpu_ms_per_process": round(statistics.median(results[name]["cpu_ms"]), 1),
                   "steps": len(results[name]["ms"]), "rounds": args.rounds,
                   "load_average_1min": round(max(results[name]["load"]), 2),  # the machine's, highest seen
                   "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "a") as f:
            f.writelines(json.dumps(row) + "\n" for row in rows)
    print()
    print(markdown_table(rows))
    return 0


def markdown_table(rows) -> str:
    lines = ["| configuration | variant | ms / step (median) | images/s | vs 1 process | of which Allreduce ms "
             "| load average |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        allreduce = f"{r['allreduce_ms']:.2f}" if r["ranks"] > 1 and r["library"] != INDEPENDENT else ""
        lines.append(f"| {r['config']} ({r['phase']}) | {r['variant']} | {r['ms_median']:.1f} "
                     f"| {r['images_per_s']:.0f} | {r['speedup_vs_1_process']:.2f}x | {allreduce} "
                     f"| {r['load_average_1min']:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
