"""Runs side by side: do two npgan trainings started at once share the machine, or slow each other down?

    python benchmarks/side_by_side.py                       (2 rounds; JSON lines and a Markdown table)
    python benchmarks/side_by_side.py --rounds 3 --json side_by_side.jsonl

Three measurements, each as a user makes it, with no thread settings in the environment (the script removes
``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` and ``NPGAN_NUM_THREADS`` from the runs'
environment, so npgan's default thread policy is what runs; ``--env NAME=VALUE`` puts one back to compare):

- **two toys**: ``npgan train gan --dataset ring8 --steps 1500`` started twice at once, against one such run
  alone. Ratio = the later of the two finishing times / the solo time. Two cores allow 1.0 (each run on
  its own core) to 2.0 (two runs that each need both cores); the target is 2.2 or less.
- **DCGAN beside a toy**: ``npgan train dcgan --steps 60`` with a toy run going on beside it for the whole
  time (restarted when it ends), against the same DCGAN run alone. Ratio = beside / alone; target 2.5.
- **two DCGANs**: that DCGAN run started twice at once, against one alone (the later finishing time / the
  solo time). Both want both cores for their convolutions: 2.0 is what two cores allow; no target.

Each round runs the solo and side-by-side measurements in alternating order (solo first in even rounds,
side by side first in odd ones), so a change in the machine's load hits both; the ratios use the medians
over the rounds. Times are wall-clock seconds of the whole command (start-up, data, training, samples,
metrics), as a user waits for them. On a machine shared with other work the numbers move with its load:
the report gives the time of day and the load average before and after.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NPGAN_NUM_THREADS")
TARGETS = {"two toys": 2.2, "dcgan beside a toy": 2.5}


def run_environment(extra: list[str]) -> dict:
    """The caller's environment without thread settings, with this checkout's npgan first on the path."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    for item in extra:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"side_by_side.py: error: --env expects NAME=VALUE, got {item!r}")
        env[name] = value
    return env


def train_command(model: str, steps: int, out: str, dataset: str | None = None) -> list[str]:
    command = [sys.executable, "-m", "npgan.cli", "train", model, "--steps", str(steps), "--out", out, "--quiet",
               "--overwrite"]  # every round trains anew into the same directories
    return command + (["--dataset", dataset] if dataset else [])


def start(command, env) -> subprocess.Popen:
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen, started: float) -> float:
    """Wait for ``process``; its wall time in seconds, or SystemExit with its error output."""
    _, err = process.communicate()
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"side_by_side.py: {' '.join(process.args[2:])} failed:\n{err[-2000:]}")
    return seconds


def stop(processes) -> None:
    """End runs that are still going (the script was interrupted or one run failed)."""
    for p in processes:
        if p.poll() is None:
            p.kill()
            p.wait()


def timed(commands, env) -> list[float]:
    """Start ``commands`` at once; each one's wall time."""
    started = time.perf_counter()
    processes = [start(c, env) for c in commands]
    try:
        return [finish(p, started) for p in processes]
    finally:
        stop(processes)


def timed_beside(command, background, env) -> float:
    """``command``'s wall time while ``background`` runs beside it the whole time (restarted when it ends)."""
    started = time.perf_counter()
    main = start(command, env)
    side = start(background, env)
    try:
        while main.poll() is None:
            if side.poll() is not None:
                side = start(background, env)
            time.sleep(0.05)
        return finish(main, started)
    finally:
        stop([main, side])


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "-"


def measure(args, log=print) -> dict:
    env = run_environment(args.env)
    with tempfile.TemporaryDirectory(prefix="npgan-side-by-side-") as tmp:
        def toy(name):
            return train_command("gan", args.toy_steps, os.path.join(tmp, name), dataset="ring8")

        def dcgan_run(name):
            return train_command("dcgan", args.dcgan_steps, os.path.join(tmp, name))

        dcgan = dcgan_run("dcgan")
        times = {"toy alone": [], "two toys": [], "dcgan alone": [], "dcgan beside a toy": [], "two dcgans": []}
        for r in range(args.rounds):
            solo_first = r % 2 == 0
            for solo in (solo_first, not solo_first):
                if solo:
                    times["toy alone"].append(timed([toy("a")], env)[0])
                else:
                    times["two toys"].append(max(timed([toy("a"), toy("b")], env)))
                log(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items() if v))
            for solo in (solo_first, not solo_first):
                if solo:
                    times["dcgan alone"].append(timed([dcgan], env)[0])
                else:
                    times["dcgan beside a toy"].append(timed_beside(dcgan, toy("side"), env))
                log(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items() if v))
            times["two dcgans"].append(max(timed([dcgan, dcgan_run("dcgan-b")], env)))
            log(f"round {r + 1}: two dcgans {times['two dcgans'][-1]:.1f} s")
    medians = {k: statistics.median(v) for k, v in times.items()}
    ratios = {
        "two toys": medians["two toys"] / medians["toy alone"],
        "dcgan beside a toy": medians["dcgan beside a toy"] / medians["dcgan alone"],
        "two dcgans": medians["two dcgans"] / medians["dcgan alone"],
    }
    return {"times": times, "medians": medians, "ratios": ratios}


def markdown(result: dict, meta: dict) -> str:
    t, m, ratios = result["times"], result["medians"], result["ratios"]

    def cell(key):
        return f"{m[key]:.1f} ({', '.join(f'{s:.1f}' for s in t[key])})"

    lines = [
        f"Measured {meta['date']} on {meta['machine']}; load average {meta['load_before']} before, "
        f"{meta['load_after']} after; environment additions: {meta['env'] or 'none'}.",
        "",
        "| measurement | solo, s median (each round) | side by side, s median (each round) | ratio | target |",
        "|---|---|---|---|---|",
        f"| two toy runs ({meta['toy_steps']} steps) | {cell('toy alone')} | {cell('two toys')} | "
        f"{ratios['two toys']:.2f} | {TARGETS['two toys']} |",
        f"| DCGAN run ({meta['dcgan_steps']} steps) beside a toy run | {cell('dcgan alone')} | "
        f"{cell('dcgan beside a toy')} | {ratios['dcgan beside a toy']:.2f} | {TARGETS['dcgan beside a toy']} |",
    ]
    if "two dcgans" in ratios:  # results recorded before this measurement have no such row
        lines.append(f"| two DCGAN runs ({meta['dcgan_steps']} steps) | {cell('dcgan alone')} | {cell('two dcgans')} | "
                     f"{ratios['two dcgans']:.2f} | - (2.0: both want both cores) |")
    return "\n".join(lines)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="repetitions, alternating the order (2)")
    parser.add_argument("--toy-steps", type=int, default=1500, help="steps of each toy run (1500)")
    parser.add_argument("--dcgan-steps", type=int, default=60, help="steps of the DCGAN run (60)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="an environment variable for every run (e.g. NPGAN_NUM_THREADS=2 for the old behaviour)")
    parser.add_argument("--json", metavar="OUT", help="append the result as one JSON line to OUT")
    args = parser.parse_args(argv)
    for name in ("rounds", "toy_steps", "dcgan_steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    return args


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    import platform  # noqa: PLC0415

    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs",
        "load_before": loadavg(), "toy_steps": args.toy_steps, "dcgan_steps": args.dcgan_steps,
        "env": " ".join(args.env),
    }
    result = measure(args, log=lambda s: print(s, file=sys.stderr, flush=True))
    meta["load_after"] = loadavg()
    record = {**meta, **result}
    line = json.dumps(record)
    print(line)
    if args.json:
        with open(args.json, "a") as f:
            f.write(line + "\n")
    print()
    print(markdown(result, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
