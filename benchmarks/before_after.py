"""Two versions of npgan timed in one run: did a change make a training step slower or faster?

    python benchmarks/before_after.py --before main~3                    (a git revision, or a checkout's path)
    python benchmarks/before_after.py --before ../old --after . --configs toy-mlp,dcgan-32 --rounds 6

Each round times every configuration once with each version (``npgan bench --no-torch`` in a fresh process,
the version's source tree first on ``PYTHONPATH``), the order alternating between rounds (A B, B A, ...) so a
change in the machine's load hits both. The report gives, per configuration and phase, the median over the
rounds of each version's median ms/step and their ratio after/before, as JSON lines (``--json``) and a table.
A revision is checked out into a temporary git worktree that is removed afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@contextlib.contextmanager
def source_tree(spec: str):
    """A directory holding npgan's sources: ``spec`` itself when it is a directory, else a git revision of
    this repository checked out into a temporary worktree for the duration."""
    if os.path.isdir(os.path.join(spec, "npgan")):
        yield os.path.abspath(spec)
        return
    where = tempfile.mkdtemp(prefix="npgan-rev-")
    subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", "-q", where, spec], check=True)
    try:
        yield where
    finally:
        subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", where], check=False)


def time_once(tree: str, configs: str, args) -> list[dict]:
    """One ``npgan bench --no-torch`` of ``configs`` with the sources in ``tree``: its JSON rows."""
    with tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False) as out:
        path = out.name
    command = [sys.executable, "-m", "npgan.cli", "bench", "--no-torch", "--configs", configs, "--rounds", "1",
               "--warmup", str(args.warmup), "--json", path]
    if args.threads:
        command += ["--threads", str(args.threads)]
    if args.steps:
        command += ["--steps", str(args.steps)]
    env = dict(os.environ, PYTHONPATH=tree)
    try:
        subprocess.run(command, cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL)
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    finally:
        os.unlink(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="a git revision or a directory holding npgan's sources")
    parser.add_argument("--after", default=ROOT, help="the same, for the new version (default: this checkout)")
    parser.add_argument("--configs", default="toy-mlp,toy-wgan-gp,gan-mlp,dcgan-32,wgan-gp-32,wgan-32,dcgan-64")
    parser.add_argument("--rounds", type=int, default=4, help="rounds, alternating the order (default 4)")
    parser.add_argument("--threads", type=int, default=None, help="passed to npgan bench")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per row, passed to npgan bench")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--json", default=None, help="also write the result rows as JSON lines here")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")

    times: dict[tuple, dict[str, list[float]]] = {}
    machine = ""
    with source_tree(args.before) as before, source_tree(args.after) as after:
        versions = {"before": before, "after": after}
        for r in range(args.rounds):
            order = ("before", "after") if r % 2 == 0 else ("after", "before")
            for name in order:
                for row in time_once(versions[name], args.configs, args):
                    key = (row["config"], row["phase"])
                    times.setdefault(key, {"before": [], "after": []})[name].append(row["ms_median"])
                    machine = row.get("machine", "")
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)

    rows = []
    for (config, phase), by_version in times.items():
        b, a = statistics.median(by_version["before"]), statistics.median(by_version["after"])
        rows.append(dict(config=config, phase=phase, before_ms=b, after_ms=a, ratio=a / b,
                         before_rounds=by_version["before"], after_rounds=by_version["after"],
                         before=args.before, after=args.after, machine=machine))
    if args.json:
        with open(args.json, "a") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
    print(f"{machine}; {args.rounds} rounds; before = {args.before}, after = {args.after}")
    print("| config | phase | before ms/step | after ms/step | after/before |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['config']} | {row['phase']} | {row['before_ms']:.1f} | {row['after_ms']:.1f} "
              f"| **{row['ratio']:.3f}** |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
