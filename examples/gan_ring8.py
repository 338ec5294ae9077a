"""The original GAN (Goodfellow et al. 2014) on 8 Gaussians in a ring, written out by hand.

This script shows the whole training loop with npgan's building blocks, no Trainer: two MLPs, the
non-saturating loss, Adam, and a scatter plot of where the generator's samples land. Mode collapse is easy to
see here: a collapsed generator covers 1-2 of the 8 modes. Tricks that help: one-sided label smoothing and
instance noise (both below).

    python examples/gan_ring8.py             # a few minutes on 2 CPU cores
    python examples/gan_ring8.py --dry-run   # a few steps, to check that everything runs
"""

import argparse
import os

import numpy as np

import npgan
import npgan.functional as F
from npgan import nn, optim, viz
from npgan.data import ring8
from npgan.gan.metrics import toy_metrics


def mlp(sizes, out_activation=None):
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.LeakyReLU(0.2))
    if out_activation is not None:
        layers.append(out_activation)
    return nn.Sequential(*layers)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--out", default="runs/example-gan-ring8")
    parser.add_argument("--dry-run", action="store_true", help="run 5 steps only")
    args = parser.parse_args()
    steps = 5 if args.dry_run else args.steps
    os.makedirs(args.out, exist_ok=True)

    npgan.manual_seed(0)
    rng = np.random.default_rng(0)
    nz = 16
    G = mlp([nz, 128, 128, 128, 2])  # z -> a point in the plane
    D = mlp([2, 128, 128, 128, 1])  # a point -> a logit: log D(x) / (1 - D(x))
    opt_g = optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real_label = 0.9  # one-sided label smoothing (Salimans et al. 2016)

    for step in range(1, steps + 1):
        real = npgan.tensor(ring8(args.batch_size, rng))
        z = npgan.randn(args.batch_size, nz)
        fake = G(z)
        noise_std = 0.1 * (1 - step / steps)  # instance noise, annealed to 0

        # D step: maximise log D(x) + log(1 - D(G(z))), i.e. minimise the binary cross-entropy.
        d_real = D(real + npgan.randn(*real.shape) * noise_std).reshape(-1)
        d_fake = D(fake.detach() + npgan.randn(*real.shape) * noise_std).reshape(-1)
        loss_d = (F.binary_cross_entropy_with_logits(d_real, npgan.full(d_real.shape, real_label))
                  + F.binary_cross_entropy_with_logits(d_fake, npgan.zeros(*d_fake.shape)))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()

        # G step: the non-saturating loss -log D(G(z)) (the paper's practical choice).
        loss_g = F.binary_cross_entropy_with_logits(D(fake).reshape(-1), npgan.ones(args.batch_size))
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()

        if step % 500 == 0 or step == steps:
            print(f"step {step:5d}  Loss_D {loss_d.item():.3f}  Loss_G {loss_g.item():.3f}")

    with npgan.no_grad():
        samples = G(npgan.randn(2500, nz)).numpy()
    print("quality:", toy_metrics("ring8", samples))
    path = os.path.join(args.out, "ring8.png")
    viz.scatter_2d(ring8(1000, rng), samples, path, title="original GAN on ring8")
    print(f"scatter plot: {path}")


if __name__ == "__main__":
    main()
