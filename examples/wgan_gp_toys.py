"""WGAN-GP (Gulrajani et al. 2017) on the 2-D toys, the training loop written out by hand.

A Wasserstein critic D scores points (higher: more real) and G moves its samples up that score. For the
score to measure a distance between the two distributions, D must be 1-Lipschitz; instead of clipping its
weights (WGAN), the gradient penalty pushes the norm of D's gradient towards 1 at random points between real
and fake samples:  lambda * E[(||grad_x D(x_hat)|| - 1)^2].  Training D on that penalty differentiates a
gradient, which npgan's autograd does (``npgan.gan.losses.gradient_penalty`` takes it with
``npgan.grad(..., create_graph=True)``).

The settings are those of the paper's own 2-D toy code: 5 critic steps per G step, Adam(1e-4, betas (0.5,
0.9)), lambda = 0.1 (the image setting, 10, holds a toy critic too flat to pull samples onto modes this
narrow), ReLU in G; plus learning rates decaying to 0 and samples drawn from a moving average of G's weights.
On 8 Gaussians in a ring, 5,000 steps capture every mode. 25 Gaussians in a grid take far longer: at 4,000
steps the samples still fill the square evenly, and the recipe's 100,000 steps put them on all 25 modes
(docs/RESULTS.md).

The same run with the Trainer (pictures, checkpoints, exact resume, the watchdog):
``npgan train wgan-gp --dataset ring8 --steps 5000`` (or, in Python,
``Trainer(TrainConfig(model="wgan-gp", dataset="ring8", steps=5000)).train()``); benchmarks/toys.py runs both
toys for longer.

    python examples/wgan_gp_toys.py                                  # ring8, minutes on 2 CPU cores
    python examples/wgan_gp_toys.py --dataset grid25 --steps 100000  # the grid: hours
    python examples/wgan_gp_toys.py --dry-run                        # tiny nets, a few steps
"""

import argparse
import os

import numpy as np

import npgan
from npgan import optim, viz
from npgan.data import ToySampler, toy_modes, toy_scale
from npgan.gan import MLPDiscriminator, MLPGenerator, discriminator_loss, generator_loss, gradient_penalty
from npgan.gan.metrics import toy_metrics


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ring8", choices=("ring8", "grid25"))
    parser.add_argument("--steps", type=int, default=5000, help="generator steps (5 critic steps each)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--out", default="runs/example-wgan-gp-toys")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dry-run", action="store_true", help="tiny nets, 3 steps")
    args = parser.parse_args()
    steps, width, batch_size = (3, 16, 16) if args.dry_run else (args.steps, 256, args.batch_size)
    n_critic, gp_lambda, lr = 5, 0.1, 1e-4
    os.makedirs(args.out, exist_ok=True)

    npgan.manual_seed(args.seed)
    data = ToySampler(args.dataset, batch_size, rng=np.random.default_rng(args.seed))  # fresh points every call

    # Three hidden layers each; no Tanh at G's end (the points are not in [-1, 1]). The nets work in units of
    # the toy's extent (G scales its output up, D its input down), so the kinks of their ReLUs, placed near 0
    # at initialisation, already reach the outer modes.
    nz, scale = 16, toy_scale(args.dataset)
    G = MLPGenerator(nz, (width,) * 3, (2,), out_activation=None, activation="relu", out_scale=scale)
    D = MLPDiscriminator((2,), (width,) * 3, in_scale=scale)  # no BatchNorm: the penalty is per sample
    opt_d = optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.9))
    opt_g = optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.9))
    G_average = optim.EMA(G, decay=0.999)  # a moving average of G's weights: smooths the game's oscillation

    for step in range(1, steps + 1):
        # Learning rates fall linearly to 0: late steps make small moves, and samples settle on the modes.
        for opt in (opt_d, opt_g):
            for group in opt.param_groups:
                group["lr"] = lr * (1 - (step - 1) / steps)

        # (1) The critic's steps. The Wasserstein estimate is only as good as D, so D trains 5 times as often.
        for _ in range(n_critic):
            real, _ = data.sample()
            with npgan.no_grad():  # D's steps do not train G: no graph through G at all
                fake = G(npgan.randn(batch_size, nz))
            loss_d = discriminator_loss("wasserstein", D(real), D(fake))  # E[D(fake)] - E[D(real)]
            penalty = gradient_penalty(D, real, fake)  # a graph of D's input gradient, differentiable again
            opt_d.zero_grad()
            (loss_d + gp_lambda * penalty).backward()  # second derivatives through every layer of D
            opt_d.step()

        # (2) G's step: raise D's score of fresh fakes, -E[D(G(z))]. D only judges: no weight gradients for it.
        D.requires_grad_(False)
        loss_g = generator_loss("wasserstein", D(G(npgan.randn(batch_size, nz))))
        D.requires_grad_(True)
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        G_average.update()  # after every G step

        if step % 500 == 0 or step == steps:
            # W: D's estimate of the Wasserstein distance between the real and fake distributions.
            print(f"step {step:5d}  W {-loss_d.item():.4f}  GP {penalty.item():.4f}  Loss_G {loss_g.item():.4f}")

    # Judge the averaged G: how many modes it covers, and how many samples lie near one (within 3 std).
    with npgan.no_grad():
        samples = G_average.module(npgan.randn(2500, nz)).numpy()
    print("quality:", toy_metrics(args.dataset, samples))
    real, _ = data.sample(1000)
    path = viz.scatter_2d(real.numpy(), samples, os.path.join(args.out, f"{args.dataset}.png"),
                          modes=toy_modes(args.dataset), title=f"WGAN-GP on {args.dataset}")
    print(f"scatter plot: {path}")


if __name__ == "__main__":
    main()
