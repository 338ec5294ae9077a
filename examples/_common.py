"""Shared command line of the Trainer-based examples (a helper, not an example)."""

import argparse

from npgan.gan import TrainConfig, Trainer


def run(description, dry_run_overrides=None, **config):
    """Parse --steps/--out/--device/--dry-run, train with ``config`` and print where the results are."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=config.pop("steps", 1000))
    parser.add_argument("--out", default=config.pop("out"))
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--dry-run", action="store_true", help="a few tiny steps, to check that everything runs")
    args = parser.parse_args()
    config.update(steps=args.steps, out=args.out, device=args.device)
    if args.dry_run:  # tiny nets, a few steps, no metrics: seconds, not minutes
        config.update(steps=3, log_every=1, sample_every=2, checkpoint_every=3, metrics=False, num_samples=16)
        config.update(dry_run_overrides or {})
    trainer = Trainer(TrainConfig(**config))
    summary = trainer.train()
    print(f"{summary['steps']} steps in {summary['seconds']:.0f} s; samples: {summary['final']}, "
          f"GIF: {summary['gif']}, losses: {summary['losses']}, checkpoint: {summary['checkpoint']}")
    if summary.get("metrics"):
        print("quality:", summary["metrics"])
    return trainer, summary
