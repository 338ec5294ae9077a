"""WGAN with weight clipping (Arjovsky et al. 2017, Algorithm 1) on MNIST digits, the loop written out by hand.

The critic D no longer says "real or fake": it gives a score, and E[D(x)] - E[D(G(z))] estimates the
Wasserstein-1 distance between real and generated digits, provided D is 1-Lipschitz. The paper keeps it so,
roughly, by clipping every weight of D to [-0.01, 0.01] after each step. The estimate is only as good as D,
so D trains 5 steps per G step, and 100 for the first 25 G steps and every 500th. RMSprop(5e-5): the paper
found momentum-based optimizers unstable here. Watch W fall as the samples improve.

The same run with the Trainer (pictures, checkpoints, exact resume, the watchdog):
``npgan train wgan --ngf 32 --ndf 32 --steps 300`` (or ``Trainer(TrainConfig(model="wgan")).train()``).

    python examples/wgan_mnist.py             # a few minutes on 2 CPU cores
    python examples/wgan_mnist.py --dry-run   # tiny nets, a few steps: checks that everything runs
"""

import argparse
import os

import numpy as np

import npgan
from npgan import optim, viz
from npgan.data import DataLoader, load_dataset
from npgan.gan import DCGANDiscriminator, DCGANGenerator, discriminator_loss, generator_loss


def critic_steps(step, dry_run):
    """Algorithm 1's schedule: a near-optimal critic first (100 steps), then 5 per G step."""
    if dry_run:
        return 1
    return 100 if step <= 25 or step % 500 == 0 else 5


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="generator steps")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", default="runs/example-wgan-mnist")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dry-run", action="store_true", help="tiny nets, 3 steps")
    args = parser.parse_args()
    steps, width, batch_size = (3, 4, 8) if args.dry_run else (args.steps, 32, args.batch_size)
    clip = 0.01
    os.makedirs(args.out, exist_ok=True)

    npgan.manual_seed(args.seed)
    loader = DataLoader(load_dataset("mnist5k"), batch_size, device=args.device, rng=np.random.default_rng(args.seed))
    batches = loader.batches()

    nz = 100
    G = DCGANGenerator(nz=nz, ngf=width, nc=1, image_size=28).to(args.device)
    D = DCGANDiscriminator(ndf=width, nc=1, image_size=28).to(args.device)  # its output is a score: no sigmoid
    opt_d = optim.RMSprop(D.parameters(), lr=5e-5)
    opt_g = optim.RMSprop(G.parameters(), lr=5e-5)
    fixed_noise = npgan.randn(64, nz, device=args.device)

    for step in range(1, steps + 1):
        # (1) The critic's steps: maximise E[D(x)] - E[D(G(z))], then clip its weights.
        for _ in range(critic_steps(step, args.dry_run)):
            real, _ = next(batches)
            with npgan.no_grad():  # the critic's steps do not train G: no graph through G
                fake = G(npgan.randn(real.shape[0], nz, device=args.device))
            loss_d = discriminator_loss("wasserstein", D(real), D(fake))  # E[D(fake)] - E[D(real)]
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
            for p in D.parameters():  # the Lipschitz constraint, crudely: every weight into [-c, c]
                p.data.clip(-clip, clip, out=p.data)

        # (2) G's step: raise the critic's score of fresh fakes, -E[D(G(z))]. D only judges here.
        D.requires_grad_(False)
        loss_g = generator_loss("wasserstein", D(G(npgan.randn(batch_size, nz, device=args.device))))
        D.requires_grad_(True)
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()

        if step % 25 == 0 or step == steps:
            print(f"step {step:4d}  W {-loss_d.item():.4f}  Loss_G {loss_g.item():.4f}")

    G.eval()  # BatchNorm on its running statistics
    with npgan.no_grad():
        samples = G(fixed_noise)
    print(f"samples: {viz.save_grid(samples, os.path.join(args.out, 'samples.png'))}")


if __name__ == "__main__":
    main()
