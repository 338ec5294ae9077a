"""Mode coverage on the 2-D toys (the VEEGAN / PacGAN protocol), by one command.

Trains the original GAN (non-saturating, with tricks: PacGAN packing, one-sided label smoothing, an R1 penalty
on D's gradient at real samples, linearly decaying learning rates) and WGAN-GP (the settings of Gulrajani et
al.'s own toy code: lambda 0.1, Adam betas (0.5, 0.9), a ReLU generator) on ``ring8`` and ``grid25``, both
sampling from an exponential moving average of G's weights (decay 0.999), then reports, from 2,500 samples,
the modes captured, the share of high-quality samples (within 3 std of a mode) and the reverse KL over modes,
for the average and for G itself. Scatter plots go to ``--out``.
Published numbers for comparison (PacGAN, Lin et al. 2018, Table 2, grid25): vanilla GAN 17.3/25 modes,
PacGAN4 24.8/25 modes with 93.6% high-quality samples.

    python benchmarks/toys.py --jobs 2          # the four runs, two at a time (long: docs/RESULTS.md has the times)
    python benchmarks/toys.py --steps 2000      # shorter, for a look
    python benchmarks/toys.py --seed 0 1 2      # several seeds: one row each, then their mean and spread
    python benchmarks/toys.py --resume          # after an interruption: each run continues from its checkpoint
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

from npgan.gan import TrainConfig, Trainer

RECIPES = {
    # R1 (Mescheder et al. 2018) with gamma 10: without it D left a column of the grid unclaimed (20/25 modes).
    "gan + tricks": dict(model="gan", pack=4, label_smoothing=0.1, r1_gamma=10.0, hidden=256, lr_decay=True,
                         g_ema=0.999),
    # Gulrajani et al.'s toy settings (their gan_toy.py; npgan's defaults for wgan-gp on the toys): lambda 0.1,
    # Adam betas (0.5, 0.9), ReLU in G.
    "wgan-gp": dict(model="wgan-gp", hidden=256, lr_decay=True, gp_lambda=0.1, beta1=0.5, g_activation="relu",
                    g_ema=0.999),
}
# Generator steps per (recipe, dataset): the grid needs many more than the ring.
STEPS = {("gan + tricks", "ring8"): 200000, ("gan + tricks", "grid25"): 200000,
         ("wgan-gp", "ring8"): 30000, ("wgan-gp", "grid25"): 100000}
CHECKPOINT_EVERY = 2000  # steps; a run interrupted loses at most this much (see --resume)


def run_one(job: dict) -> dict:
    """Train one recipe on one toy and return its row of the table."""
    name, dataset, steps, seed, args = job["recipe"], job["dataset"], job["steps"], job["seed"], job["args"]
    out = os.path.join(args["out"], f"{name.replace(' + ', '-')}-{dataset}-seed{seed}")
    checkpoint = os.path.join(out, "checkpoint.npz")
    if args["resume"] and os.path.exists(checkpoint):
        trainer = Trainer.from_checkpoint(checkpoint, progress=False, steps=steps)
        if (trainer.config.model, trainer.config.dataset, trainer.config.seed) != (RECIPES[name]["model"], dataset,
                                                                                  seed):
            raise SystemExit(f"toys.py: --resume: {checkpoint} holds another run ({trainer.config.model} on "
                             f"{trainer.config.dataset}, seed {trainer.config.seed})")
    else:
        config = TrainConfig(dataset=dataset, steps=steps, batch_size=args["batch_size"], seed=seed, out=out,
                             sample_every=max(1, steps // 10), checkpoint_every=min(steps, CHECKPOINT_EVERY),
                             log_every=100, **RECIPES[name])
        trainer = Trainer(config, progress=False)
    summary = trainer.train()
    row = {"recipe": name, "dataset": dataset, "steps": steps, "seed": seed,
           "seconds": round(summary["total_seconds"]), **summary["metrics"], "picture": summary["final"]}
    if "metrics_without_ema" in summary:
        row["without_ema"] = summary["metrics_without_ema"]
    print(json.dumps(row), flush=True)
    return row


def over_seeds(rows: list[dict]) -> list[dict]:
    """One summary per (recipe, dataset) run with several seeds: the mean and sample std of each metric.

    The published toy numbers are such means (PacGAN averages 10 trials); a single GAN run lands a few points
    either side of it.
    """
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["recipe"], row["dataset"], row["steps"]), []).append(row)
    summaries = []
    for (recipe, dataset, steps), group in groups.items():
        if len(group) < 2:
            continue
        summary = {"recipe": recipe, "dataset": dataset, "steps": steps, "seeds": [r["seed"] for r in group],
                   "modes": group[0]["modes"]}
        for key in ("modes_captured", "high_quality_pct", "reverse_kl"):
            values = [float(r[key]) for r in group]
            mean = sum(values) / len(values)
            summary[key] = mean
            summary[key + "_std"] = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
        summaries.append(summary)
    return summaries


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, help="generator steps for every run (default: STEPS in this file)")
    parser.add_argument("--datasets", nargs="+", default=["ring8", "grid25"], choices=["ring8", "grid25"])
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, nargs="+", default=[0], help="one run per seed")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs at once, each in its own process with one BLAS thread (2 on a 2-core machine)")
    parser.add_argument("--out", default="runs/toys")
    parser.add_argument("--resume", action="store_true",
                        help="continue each run from OUT/<run>/checkpoint.npz where there is one (a finished run "
                             "is only scored again)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    shared = {"out": args.out, "batch_size": args.batch_size, "resume": args.resume}
    jobs = [{"recipe": name, "dataset": dataset, "steps": args.steps or STEPS[name, dataset], "seed": seed,
             "args": shared} for dataset in args.datasets for name in args.recipes for seed in args.seed]
    if args.jobs == 1:
        rows = [run_one(job) for job in jobs]
    else:
        # Small MLPs: one BLAS thread per run, so the runs do not fight over the cores (read at process start).
        for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[variable] = "1"
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=context) as pool:
            rows = list(pool.map(run_one, jobs))
    summaries = over_seeds(rows)
    for m in summaries:
        print(json.dumps({"over_seeds": m}), flush=True)
    print("\n| model | dataset | steps | seed | modes captured | high-quality samples | reverse KL "
          "| G itself (no EMA): modes, high quality | time (s) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        raw = r.get("without_ema")
        raw = f"{raw['modes_captured']}/{raw['modes']}, {raw['high_quality_pct']:.1f}%" if raw else "-"
        print(f"| {r['recipe']} | {r['dataset']} | {r['steps']} | {r['seed']} | {r['modes_captured']}/{r['modes']} | "
              f"{r['high_quality_pct']:.1f}% | {r['reverse_kl']:.3f} | {raw} | {r['seconds']} |")
    for m in summaries:
        print(f"| {m['recipe']} | {m['dataset']} | {m['steps']} | mean ± std of {len(m['seeds'])} | "
              f"{m['modes_captured']:.1f}/{m['modes']} ± {m['modes_captured_std']:.1f} | "
              f"{m['high_quality_pct']:.1f} ± {m['high_quality_pct_std']:.1f}% | "
              f"{m['reverse_kl']:.3f} ± {m['reverse_kl_std']:.3f} | | |")
    return rows


if __name__ == "__main__":
    main()
