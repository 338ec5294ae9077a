"""Worker processes: one (configuration, phase, library) each, driven over a line protocol.

A fresh process per phase and library: the peak memory of one never hides in memory another left resident,
and the two libraries' thread pools never share a process. The timed steps run in rounds that alternate
between the libraries (A B B A ...), so a change in a shared machine's load hits both alike.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from npgan import runtime
from npgan.bench.measure import PeakMemory, _sync_for, matmul_peak, time_steps
from npgan.bench.profile import _profile
from npgan.bench.steps import npgan_steps, torch_steps
from npgan.runtime import threads as blas_threads


def _limit_threads(threads: int):
    try:
        import threadpoolctl  # noqa: PLC0415
    except ImportError:
        return None  # the worker's environment (OPENBLAS_NUM_THREADS...) already sets the thread count
    return threadpoolctl.threadpool_limits(limits=threads)


PROTOCOL = "@bench "  # prefix of the worker's answers; anything else it prints is ignored


def run_worker(spec: dict, commands=None, answer=None) -> None:
    """Serve one phase of ``spec['config']`` in ``spec['library']``, in its own process.

    Answers ``ready`` once the models are built, then reads commands (one per line):
      ``run K``   K timed steps (the first ``run`` does the warm-up steps first) -> {"times": [...]}
      ``finish``  the peak memory over all timed steps, the profile (npgan, with ``--profile``) -> and exits.
    A fresh process per phase and library: the peak memory of one never hides in memory another left
    resident, and the two libraries' thread pools never share a process.
    """
    commands = commands if commands is not None else sys.stdin
    answer = answer if answer is not None else (lambda d: print(PROTOCOL + json.dumps(d), flush=True))
    library, config, device, phase = spec["library"], spec["config"], spec["device"], spec["phase"]
    threads, batch, steps, warmup = spec["threads"], spec["batch_size"], spec["steps"], spec["warmup"]
    limiter = _limit_threads(threads)  # noqa: F841 - keeps the limit for the worker's lifetime
    if library == "torch":
        import torch  # noqa: PLC0415

        torch.set_num_threads(threads)
        step = torch_steps(config, batch, "cuda" if device == "cuda" else "cpu")[phase]
    else:
        step = npgan_steps(config, batch, device)[phase]
    sync = _sync_for(library, device)
    memory = PeakMemory(library, device)
    warmed_up = False
    answer({"ready": True})
    for line in commands:
        command = line.split()
        if command and command[0] == "run":
            if not warmed_up:  # the peak covers the warm-up too: optimizer moments, first allocations
                memory.reset()
                for _ in range(warmup):
                    step()
                warmed_up = True
            if library == "npgan" and device != "cuda":  # the load as it is now that the other round is over
                blas_threads.refresh_load()
            answer({"times": time_steps(step, int(command[1]), sync)})
        elif command == ["finish"]:
            peak_mb = memory.read() if warmed_up else 0.0
            profile = None
            if spec.get("profile") and library == "npgan":
                profile = _profile(config, phase, batch, device, steps, warmup, sync)
            answer(dict(peak_mem_mb=peak_mb, mem_method=memory.method, profile=profile,
                        blas=blas_threads.blas_libraries()))
            return


def _worker_main(argv) -> int:
    spec = json.loads(argv[0])
    if spec.get("library") != "torch":  # npgan as its users run it; PyTorch with its process left as it is
        runtime.enable()
    if spec.get("peak"):
        _limit_threads(spec["threads"])
        answer = {"matmul_peak": matmul_peak(spec["threads"], spec["device"]), "blas": blas_threads.blas_libraries()}
        print(PROTOCOL + json.dumps(answer), flush=True)
        return 0
    run_worker(spec)
    return 0


class Worker:
    """A worker process (``python -m npgan.bench --worker SPEC``) and its line protocol."""

    def __init__(self, spec: dict, threads: int):
        import npgan  # noqa: PLC0415

        env = dict(os.environ)
        root = os.path.dirname(os.path.dirname(os.path.abspath(npgan.__file__)))
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(threads)
        self.spec = spec
        self.stderr = tempfile.TemporaryFile(mode="w+")  # a file, not a pipe: a chatty worker never blocks
        self.proc = subprocess.Popen([sys.executable, "-m", "npgan.bench", "--worker", json.dumps(spec)], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True)

    def receive(self) -> dict:
        for line in self.proc.stdout:
            if line.startswith(PROTOCOL):
                return json.loads(line[len(PROTOCOL):])
        self.proc.wait()
        self.stderr.seek(0)
        raise RuntimeError(f"benchmark worker {self.spec} failed:\n{self.stderr.read().strip()}")

    def request(self, command: str) -> dict:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.receive()

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.stderr.close()


def _spawn(spec: dict, threads: int) -> dict:
    """Run a one-shot worker (the matmul peak) and return its answer."""
    worker = Worker(spec, threads)
    try:
        return worker.receive()
    finally:
        worker.close()


def _rounds(steps: int, rounds: int) -> list[int]:
    """Split ``steps`` timed steps into ``rounds`` nearly equal rounds."""
    rounds = max(1, min(rounds, steps))
    return [steps // rounds + (1 if i < steps % rounds else 0) for i in range(rounds)]


def measure_phase(config, phase, libraries, args, device, threads, batch_size, steps) -> dict:
    """Time one phase in every library, the rounds alternating between them; {library: result}."""
    workers = {}
    try:
        for library in libraries:
            workers[library] = Worker(dict(library=library, config=config, phase=phase, device=device,
                                           threads=threads, batch_size=batch_size, steps=steps,
                                           warmup=args.warmup, profile=args.profile), threads)
        for worker in workers.values():
            worker.receive()  # ready: models built
        times = {library: [] for library in libraries}
        for i, count in enumerate(_rounds(steps, args.rounds)):
            for library in (libraries if i % 2 == 0 else libraries[::-1]):  # A B, B A, ...
                time.sleep(HANDOFF_PAUSE)
                times[library] += workers[library].request(f"run {count}")["times"]
        return {library: dict(times=times[library], **workers[library].request("finish"))
                for library in libraries}
    finally:
        for worker in workers.values():
            worker.close()


# An idle OpenBLAS thread keeps spinning for a while after its last GEMM (OpenMP threads too): each library
# waits this long before its round, so the other one's idle threads do not share its cores.
HANDOFF_PAUSE = 0.3
