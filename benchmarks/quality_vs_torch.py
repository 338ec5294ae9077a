"""Sample quality of npgan's DCGAN against PyTorch's with the same network, steps and batch size.

Trains the 28x28 DCGAN of ``npgan train dcgan`` (npgan.gan.models) in npgan and the identical network in
PyTorch on MNIST-5k (same init scheme N(0, 0.02), Adam(2e-4, (0.5, 0.999)), non-saturating loss, batch 64),
then scores 1,000 samples of each (G in eval mode) with npgan's digit metrics: Fréchet distance on the digit
classifier's features (lower is better; the real-vs-real floor is printed too), classifier confidence and
class coverage. Prints a Markdown table and a JSON line per run. With several seeds (``--seed 0 1 2``: one
run per library and seed) it adds each library's mean ± std: a single GAN run's Fréchet distance moves by a
few units from seed to seed, more than the libraries differ.

    python benchmarks/quality_vs_torch.py --steps 1500        # needs PyTorch and npgan[data]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from npgan import runtime
from npgan.data import load_dataset
from npgan.gan import TrainConfig, Trainer
from npgan.gan.metrics import image_metrics


def torch_dcgan(steps, batch_size, ngf, ndf, nz, seed, threads):
    import torch  # noqa: PLC0415
    from torch import nn  # noqa: PLC0415

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    G = nn.Sequential(  # the 28x28 generator of npgan.gan.models: 1-3-7-14-28
        nn.ConvTranspose2d(nz, ngf * 4, 3, 1, 0, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(),
        nn.ConvTranspose2d(ngf * 4, ngf * 2, 3, 2, 0, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(),
        nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(),
        nn.ConvTranspose2d(ngf, 1, 4, 2, 1, bias=False), nn.Tanh())
    D = nn.Sequential(  # 28-14-7-3-1
        nn.Conv2d(1, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),
        nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2),
        nn.Conv2d(ndf * 2, ndf * 4, 3, 2, 0, bias=False), nn.BatchNorm2d(ndf * 4), nn.LeakyReLU(0.2),
        nn.Conv2d(ndf * 4, 1, 3, 1, 0, bias=False))
    for m in list(G.modules()) + list(D.modules()):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    opt_g = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    images = torch.from_numpy(load_dataset("mnist5k", image_size=28, seed=seed).images)
    ones, zeros = torch.ones(batch_size), torch.zeros(batch_size)
    order, position = torch.randperm(len(images)), 0
    start = time.perf_counter()
    for _ in range(steps):
        if position + batch_size > len(images):
            order, position = torch.randperm(len(images)), 0
        real = images[order[position:position + batch_size]]
        position += batch_size
        fake = G(torch.randn(batch_size, nz, 1, 1))
        loss_d = bce(D(real).view(-1), ones) + bce(D(fake.detach()).view(-1), zeros)
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        loss_g = bce(D(fake).view(-1), ones)
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
    seconds = time.perf_counter() - start
    G.eval()
    with torch.no_grad():
        samples = G(torch.randn(1000, nz, 1, 1)).numpy()
    return samples, seconds


def npgan_dcgan(steps, batch_size, ngf, ndf, nz, seed):
    config = TrainConfig(model="dcgan", dataset="mnist5k", steps=steps, batch_size=batch_size, ngf=ngf, ndf=ndf,
                         nz=nz, seed=seed, out="runs/quality-vs-torch", metrics=False, sample_every=steps)
    trainer = Trainer(config, progress=False)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    return np.asarray(trainer.generate(1000).numpy()), seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--ndf", type=int, default=64)
    parser.add_argument("--nz", type=int, default=100)
    parser.add_argument("--seed", type=int, nargs="+", default=[0], help="one run per library and seed")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    runtime.enable()  # before either library runs: both train under npgan's malloc policy, as npgan train does
    rows, with_torch = [], True
    for seed in args.seed:
        samples, seconds = npgan_dcgan(args.steps, args.batch_size, args.ngf, args.ndf, args.nz, seed)
        rows.append({"library": "npgan", "seed": seed, "seconds": round(seconds, 1), **image_metrics(samples)})
        if not with_torch:
            continue
        try:
            samples, seconds = torch_dcgan(args.steps, args.batch_size, args.ngf, args.ndf, args.nz, seed,
                                           args.threads)
        except ImportError:
            print("PyTorch is not installed: npgan's rows only")
            with_torch = False
            continue
        rows.append({"library": "PyTorch", "seed": seed, "seconds": round(seconds, 1), **image_metrics(samples)})
    print(f"\nDCGAN 28x28 on MNIST-5k, {args.steps} steps, batch {args.batch_size}, ngf={args.ngf}, ndf={args.ndf}\n")
    print("| library | seed | Fréchet distance | real-vs-real floor | confidence | classes | train time (s) |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['library']} | {row['seed']} | {row['frechet_distance']:.2f} | "
              f"{row['frechet_distance_real_floor']:.2f} | {row['classifier_confidence']:.3f} | "
              f"{row['classes_covered']}/10 | {row['seconds']:.0f} |")
    summaries = over_seeds(rows)
    for row in summaries:
        print(f"| {row['library']}, mean ± std | {', '.join(map(str, row['seeds']))} | "
              f"{row['frechet_distance']:.2f} ± {row['frechet_distance_std']:.2f} | "
              f"{row['frechet_distance_real_floor']:.2f} | "
              f"{row['classifier_confidence']:.3f} ± {row['classifier_confidence_std']:.3f} | "
              f"{row['classes_covered']:.1f}/10 | |")
    for row in rows + summaries:
        print(json.dumps({k: v for k, v in row.items() if k != "class_histogram"}))
    return rows, summaries


def over_seeds(rows: list[dict]) -> list[dict]:
    """Per library run with several seeds: the mean and sample std of the Fréchet distance and the
    confidence, the mean class coverage and the (seed-independent) real-vs-real floor."""
    summaries = []
    for library in dict.fromkeys(row["library"] for row in rows):
        group = [row for row in rows if row["library"] == library]
        if len(group) < 2:
            continue
        summary = {"library": library, "seeds": [row["seed"] for row in group],
                   "frechet_distance_real_floor": group[0]["frechet_distance_real_floor"],
                   "classes_covered": sum(row["classes_covered"] for row in group) / len(group)}
        for key in ("frechet_distance", "classifier_confidence"):
            values = [float(row[key]) for row in group]
            mean = sum(values) / len(values)
            summary[key] = mean
            summary[key + "_std"] = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
        summaries.append(summary)
    return summaries


if __name__ == "__main__":
    main()
