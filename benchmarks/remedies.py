"""The remedy table: every remedy npgan has for a failing GAN, one at a time against one baseline, measured.

Why GANs fail (mode collapse, non-convergence, vanishing gradients) and what each remedy does about it, on
the same benchmarks with the same budget:

- **toys** (``ring8``, ``grid25``): the baseline is the original GAN (Goodfellow et al. 2014) with the
  non-saturating loss, the toy MLPs (3 hidden layers of 128 LeakyReLU units, z of size 16), Adam 2e-4
  (betas 0.5, 0.999), batch 256 and ``TOY_STEPS`` generator steps; each other row adds **one** remedy to it.
  Scored from 2,500 samples (``npgan.gan.metrics``): modes captured, % high-quality samples, reverse KL.
- **images** (MNIST-5k, 28x28): the baseline is DCGAN with narrower nets (``ngf = ndf = 32``) for
  ``IMAGE_STEPS`` steps; the remedies that only exist for convolutional nets (virtual batch norm, instance
  norm, upsampling and downsampling choices, the label as an input channel) each replace one part of it.
  Scored by the Fréchet distance of the digit classifier's features, classes covered and its confidence.

Every run is one ``npgan`` training run (``npgan.gan.Trainer``) in ``--out``, checkpointed every
``CHECKPOINT_EVERY`` steps; a finished run's row is appended to ``OUT/results.jsonl``. Started again, the
script skips what is finished and resumes what is not, so an interrupted table loses at most a few minutes.
Runs go ``--jobs`` at a time, each in its own process with one BLAS thread. At the end it writes the table
(mean ± std over seeds) to ``--doc`` with one picture of samples per row (seed 0).

    python benchmarks/remedies.py                          # the whole table, 3 seeds, 2 jobs (long; docs/REMEDIES.md)
    python benchmarks/remedies.py --suite toys --seeds 0   # one seed of the toy rows only
    python benchmarks/remedies.py --remedies baseline unrolled --datasets ring8 --steps 2000   # a look
    python benchmarks/remedies.py --list                   # the remedies and their settings
    python benchmarks/remedies.py --report                 # the table of the runs finished so far
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import multiprocessing
import os
import shlex
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

TOY_STEPS = 10000
IMAGE_STEPS = 600
CHECKPOINT_EVERY = 1000

TOY_BASELINE = dict(model="gan", batch_size=256)
IMAGE_BASELINE = dict(model="dcgan", dataset="mnist5k", ngf=32, ndf=32, batch_size=64)

# name -> (what it fights and how, TrainConfig settings added to the baseline). Each row changes one thing.
TOY_REMEDIES = {
    "baseline": ("the original GAN, non-saturating loss", {}),
    "wgan": ("Wasserstein loss, clipped critic, RMSprop, 5 critic steps (Arjovsky et al. 2017)",
             dict(model="wgan")),
    "wgan-gp": ("Wasserstein loss with a gradient penalty (Gulrajani et al. 2017; toy settings of their code)",
                dict(model="wgan-gp", hidden=128, lr_decay=False, g_ema=0.0)),  # not its toy recipe: one change
    "unrolled": ("G's loss against D unrolled 5 steps, gradient through the steps (Metz et al. 2016)",
                 dict(unroll=5)),
    "unrolled, first order": ("the same 5 unrolled steps, no gradient through them", dict(unroll=5,
                                                                                           unroll_first_order=True)),
    "pacgan": ("D judges 4 samples at once (Lin et al. 2018)", dict(pack=4)),
    "r1": ("R1 penalty on D's gradient at real samples, gamma 10 (Mescheder et al. 2018)", dict(r1_gamma=10.0)),
    "label smoothing": ("one-sided: real label 0.9 (Salimans et al. 2016)", dict(label_smoothing=0.1)),
    "noisy labels": ("real labels drawn from [0.7, 1.2] (ganhacks)", dict(soft_labels=(0.7, 1.2))),
    "label flipping": ("D's labels swapped for 5% of samples (ganhacks)", dict(flip_labels=0.05)),
    "instance noise": ("Gaussian noise of std 0.1 on D's inputs, decaying to 0 (Sønderby et al. 2016)",
                       dict(instance_noise=0.1)),
    "g-layer noise": ("Gaussian noise of std 0.1 in every layer of G, decaying to 0 (ganhacks)",
                      dict(g_layer_noise=0.1)),
    "ttur": ("two time-scales: D's lr 4e-4, G's 1e-4 (Heusel et al. 2017)", dict(lr_d=4e-4, lr_g=1e-4)),
    "n_critic 5": ("5 D steps per G step", dict(n_critic=5)),
    "uniform z": ("z uniform in [-1, 1] instead of Gaussian (ganhacks recommends Gaussian)", dict(noise="uniform")),
    "g dropout": ("dropout 0.5 in G, in training and sampling (Isola et al. 2017, ganhacks)",
                  dict(g_dropout=0.5, g_dropout_sample=True)),
    "ema of g": ("samples from a moving average of G's weights, decay 0.999 (Yazıcı et al. 2019)",
                 dict(g_ema=0.999)),
    "lr decay": ("both learning rates decay linearly to 0", dict(lr_decay=True)),
    "gradient clipping": ("both nets' gradient norms clipped to 1", dict(clip_grad_norm=1.0)),
    "minimax loss": ("the saturating loss of the paper's equation instead of the non-saturating one",
                     dict(loss="minimax")),
}

IMAGE_REMEDIES = {
    "baseline": ("DCGAN, ngf = ndf = 32: ConvTranspose2d up, strided Conv2d down, BatchNorm in G and D", {}),
    "virtual batch norm": ("G normalised with a fixed reference batch's statistics (Salimans et al. 2016)",
                           dict(g_norm="virtual")),
    "instance norm in d": ("InstanceNorm2d in D instead of BatchNorm", dict(critic_norm="instance")),
    "pixelshuffle": ("G upsamples by conv + PixelShuffle (Shi et al. 2016) instead of ConvTranspose2d",
                     dict(g_upsample="pixelshuffle")),
    "nearest + conv": ("G upsamples by nearest-neighbour + conv (Odena et al. 2016)", dict(g_upsample="nearest")),
    "avgpool": ("D downsamples by conv + average pooling instead of strided conv", dict(d_downsample="avgpool")),
    "cgan, embedding": ("conditioned on the label, embedded into G and D (Mirza & Osindero 2014)",
                        dict(model="cgan")),
    "cgan, label channels": ("conditioned on the label, one-hot maps as extra input channels of D",
                             dict(model="cgan", cond="channel")),
}

SUITES = {"toys": (TOY_REMEDIES, ("ring8", "grid25")), "images": (IMAGE_REMEDIES, ("mnist5k",))}
TOY_KEYS = ("modes_captured", "high_quality_pct", "reverse_kl")
IMAGE_KEYS = ("frechet_distance", "classes_covered", "classifier_confidence")


def run_name(remedy: str, dataset: str, seed: int) -> str:
    slug = "".join(ch if ch.isalnum() else "-" for ch in remedy.lower()).strip("-")
    while "--" in slug:
        slug = slug.replace("--", "-")
    return f"{slug}-{dataset}-seed{seed}"


def job_config(job: dict) -> dict:
    """The TrainConfig settings of one run of the table."""
    suite, remedies = job["suite"], SUITES[job["suite"]][0]
    settings = dict(TOY_BASELINE if suite == "toys" else IMAGE_BASELINE)
    settings.update(remedies[job["remedy"]][1])
    settings.update(dataset=job["dataset"], steps=job["steps"], seed=job["seed"],
                    out=os.path.join(job["out"], run_name(job["remedy"], job["dataset"], job["seed"])),
                    checkpoint_every=min(job["steps"], CHECKPOINT_EVERY), sample_every=max(1, job["steps"] // 5),
                    log_every=max(1, min(100, job["steps"] // 10)))
    if suite == "toys":
        settings["batch_size"] = job.get("batch_size") or settings["batch_size"]
    return settings


def _comparable(config: dict) -> dict:
    """A config as stored in a checkpoint (tuples become lists), without what may change on resume."""
    config = json.loads(json.dumps(config))
    for key in ("steps", "out", "checkpoint_every", "sample_every", "log_every", "device"):
        config.pop(key, None)
    return config


def run_one(job: dict) -> dict:
    """Train one run of the table (resuming it from its checkpoint if there is one) and return its row."""
    from npgan.gan import TrainConfig, Trainer  # noqa: PLC0415

    settings = job_config(job)
    checkpoint = os.path.join(settings["out"], "checkpoint.npz")
    wanted = TrainConfig(**settings)
    if os.path.exists(checkpoint):
        trainer = Trainer.from_checkpoint(checkpoint, progress=False, steps=job["steps"])
        stored = _comparable(dataclasses.asdict(trainer.config))
        asked = _comparable(dataclasses.asdict(wanted.resolved()))  # checkpoints store the defaults filled in
        differ = sorted(k for k in set(stored) | set(asked) if stored.get(k) != asked.get(k))
        if differ:
            raise SystemExit(f"remedies.py: {checkpoint} holds another run (settings differ: {', '.join(differ)}); "
                             "delete that directory or choose another --out")
        print(f"resuming {os.path.basename(settings['out'])} from step {trainer.step}", flush=True)
    else:
        trainer = Trainer(wanted, progress=False)
    summary = trainer.train()
    row = {"suite": job["suite"], "remedy": job["remedy"], "dataset": job["dataset"], "steps": job["steps"],
           "seed": job["seed"], "seconds": round(summary["total_seconds"], 1), "picture": summary["final"],
           **{k: v for k, v in summary.get("metrics", {}).items() if k != "class_histogram"}}
    print(json.dumps(row), flush=True)
    return row


def _key(row) -> tuple:
    return row["suite"], row["remedy"], row["dataset"], row["steps"], row["seed"]


def read_results(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def mean_std(values):
    values = [float(v) for v in values]
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5


def summarise(rows: list[dict]) -> list[dict]:
    """One entry per (suite, remedy, dataset, steps): mean and sample std over its seeds, in table order."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(_key(row)[:4], []).append(row)
    order = {(suite, name): i for suite, (remedies, _) in SUITES.items() for i, name in enumerate(remedies)}
    entries = []
    for (suite, remedy, dataset, steps), group in groups.items():
        keys = TOY_KEYS if suite == "toys" else IMAGE_KEYS
        entry = {"suite": suite, "remedy": remedy, "dataset": dataset, "steps": steps,
                 "seeds": sorted(r["seed"] for r in group), "modes": group[0].get("modes")}
        for key in keys + ("seconds",):
            present = [r[key] for r in group if r.get(key) is not None]
            entry[key], entry[key + "_std"] = mean_std(present) if present else (None, None)
        first = min(group, key=lambda r: r["seed"])
        entry["picture"] = first["picture"]
        entries.append(entry)
    datasets = {(suite, d): i for suite, (_, names) in SUITES.items() for i, d in enumerate(names)}
    entries.sort(key=lambda e: (list(SUITES).index(e["suite"]), datasets.get((e["suite"], e["dataset"]), 99),
                                order.get((e["suite"], e["remedy"]), 99)))
    return entries


def _pm(mean, std, digits, suffix=""):
    if mean is None:
        return "-"
    text = f"{mean:.{digits}f}{suffix}"
    return text + (f" ± {std:.{digits}f}" if std is not None and math.isfinite(std) else "")


def markdown(entries: list[dict], images_dir: str, doc_dir: str) -> str:
    """The tables of docs/REMEDIES.md; copies each row's picture (seed 0) into ``images_dir``."""
    lines = []
    for suite in SUITES:
        for dataset in dict.fromkeys(e["dataset"] for e in entries if e["suite"] == suite):
            group = [e for e in entries if e["suite"] == suite and e["dataset"] == dataset]
            seeds = sorted({len(e["seeds"]) for e in group})
            lines += [f"### {dataset}, {group[0]['steps']:,} generator steps, "
                      f"{' or '.join(map(str, seeds))} seed{'s' if seeds != [1] else ''} per row", ""]
            remedies = SUITES[suite][0]
            if suite == "toys":
                lines += ["| remedy | what it changes | modes captured | high-quality samples | reverse KL | time (s) "
                          "| samples (seed 0) |", "|---|---|---|---|---|---|---|"]
            else:
                lines += ["| remedy | what it changes | Fréchet distance | classes | confidence | time (s) "
                          "| samples (seed 0) |", "|---|---|---|---|---|---|---|"]
            for e in group:
                picture = "-"
                target = os.path.join(images_dir, run_name(e["remedy"], dataset, e["seeds"][0]) + ".png")
                if e["picture"] and os.path.exists(e["picture"]):
                    os.makedirs(images_dir, exist_ok=True)
                    shutil.copyfile(e["picture"], target)
                if os.path.exists(target):  # copied now, or earlier from a run directory since removed
                    picture = f"![{e['remedy']}]({os.path.relpath(target, doc_dir)})"
                what = remedies.get(e["remedy"], ("", {}))[0]
                if suite == "toys":
                    cells = [_pm(e["modes_captured"], e["modes_captured_std"], 1, f"/{e['modes']}"),
                             _pm(e["high_quality_pct"], e["high_quality_pct_std"], 1, "%"),
                             _pm(e["reverse_kl"], e["reverse_kl_std"], 3)]
                else:
                    cells = [_pm(e["frechet_distance"], e["frechet_distance_std"], 2),
                             _pm(e["classes_covered"], e["classes_covered_std"], 1),
                             _pm(e["classifier_confidence"], e["classifier_confidence_std"], 3)]
                lines.append(f"| {e['remedy']} | {what} | " + " | ".join(cells)
                             + f" | {_pm(e['seconds'], e['seconds_std'], 0)} | {picture} |")
            lines.append("")
    return "\n".join(lines)


def write_doc(path: str, entries: list[dict], command: str, wall_seconds: float | None) -> None:
    doc_dir = os.path.dirname(os.path.abspath(path))
    images = os.path.join(doc_dir, "images", "remedies")
    header = open(path).read().split("<!-- table -->")[0] if os.path.exists(path) else "# Remedies, measured\n\n"
    took = f" Its last invocation trained for {wall_seconds / 60:.0f} min of wall time." if wall_seconds else ""
    body = (f"<!-- table -->\nRegenerate with `{command}` (resumable: run it again after an interruption).{took}\n\n"
            + markdown(entries, images, doc_dir) + "<!-- end of table -->\n")
    tail = open(path).read().split("<!-- end of table -->\n", 1)[1] if os.path.exists(path) and \
        "<!-- end of table -->" in open(path).read() else ""
    with open(path, "w") as f:
        f.write(header + body + tail)


def _one_blas_thread():
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = "1"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", nargs="+", default=list(SUITES), choices=list(SUITES))
    parser.add_argument("--remedies", nargs="+", help="only these rows (names as in --list)")
    parser.add_argument("--datasets", nargs="+", help="only these datasets (ring8, grid25, mnist5k)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, help=f"steps of every run (default: toys {TOY_STEPS}, images "
                                                  f"{IMAGE_STEPS})")
    parser.add_argument("--batch-size", type=int, help="toy batch size (default 256)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at once, one BLAS thread each")
    parser.add_argument("--out", default="runs/remedies")
    parser.add_argument("--results", help="the JSON-lines file of finished runs (default OUT/results.jsonl); "
                                          "benchmarks/remedies_results.jsonl holds the measured ones")
    parser.add_argument("--doc", default=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                      "docs", "REMEDIES.md"),
                        help="the Markdown file whose table is (re)written (default docs/REMEDIES.md)")
    parser.add_argument("--no-doc", action="store_true", help="print the table, leave --doc alone")
    parser.add_argument("--list", action="store_true", help="list the remedies and their settings, then exit")
    parser.add_argument("--report", action="store_true",
                        help="train nothing: write the table of the runs finished so far (e.g. while the rest runs)")
    args = parser.parse_args(argv)
    if args.list:
        for suite, (remedies, datasets) in SUITES.items():
            print(f"{suite} ({', '.join(datasets)}):")
            for name, (what, settings) in remedies.items():
                print(f"  {name:24s} {settings}  -- {what}")
        return []
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    known = {name for suite in args.suite for name in SUITES[suite][0]}
    unknown = sorted(set(args.remedies or ()) - known)
    if unknown:
        parser.error(f"unknown remedies {unknown}; choose from {sorted(known)} (see --list)")
    jobs = []  # seed by seed: an interrupted table has every row of its first seeds
    for seed in args.seeds:
        for suite in args.suite:
            remedies, datasets = SUITES[suite]
            for dataset in datasets:
                if args.datasets and dataset not in args.datasets:
                    continue
                for remedy in remedies:
                    if args.remedies and remedy not in args.remedies:
                        continue
                    steps = args.steps or (TOY_STEPS if suite == "toys" else IMAGE_STEPS)
                    jobs.append({"suite": suite, "remedy": remedy, "dataset": dataset, "seed": seed,
                                 "steps": steps, "out": args.out, "batch_size": args.batch_size})
    os.makedirs(args.out, exist_ok=True)
    results_path = args.results or os.path.join(args.out, "results.jsonl")
    done = {_key(r) for r in read_results(results_path)}
    todo = [j for j in jobs if (j["suite"], j["remedy"], j["dataset"], j["steps"], j["seed"]) not in done]
    print(f"{len(jobs)} runs in the table, {len(jobs) - len(todo)} already done, "
          f"{len(todo)} {'not run (--report)' if args.report else 'to run'}", flush=True)
    if args.report:
        todo = []
    start = time.perf_counter()

    finished = []

    def record(row):
        with open(results_path, "a") as f:
            f.write(json.dumps(row) + "\n")
        finished.append(row)
        elapsed = time.perf_counter() - start
        print(f"# {len(finished)} of {len(todo)} runs done ({row['remedy']}, {row['dataset']}, seed {row['seed']}) "
              f"after {elapsed / 60:.0f} min", flush=True)

    if args.jobs == 1 or len(todo) <= 1:
        for job in todo:
            record(run_one(job))
    else:
        _one_blas_thread()  # read by each worker process at start; small nets gain nothing from a second thread
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=context) as pool:
            for future in as_completed([pool.submit(run_one, job) for job in todo]):
                record(future.result())  # as each finishes: a long run does not hold back the rows after it
    wall = time.perf_counter() - start
    wanted = {(j["suite"], j["remedy"], j["dataset"], j["steps"], j["seed"]) for j in jobs}
    rows = [r for r in read_results(results_path) if _key(r) in wanted]
    entries = summarise(rows)
    doc_dir = os.path.dirname(os.path.abspath(args.doc))
    print(markdown(entries, os.path.join(args.out, "pictures"), doc_dir))
    if not args.no_doc:
        given = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--report"]
        command = shlex.join(["python", "benchmarks/remedies.py"] + given)
        write_doc(args.doc, entries, command, wall if todo else None)
    return rows


if __name__ == "__main__":
    main()
