"""DCGAN (Radford et al. 2015) on MNIST digits, 28x28.

G: ConvTranspose2d + BatchNorm + ReLU blocks from z (100x1x1) up to 1x28x28, Tanh.
D: strided Conv2d + BatchNorm + LeakyReLU(0.2) blocks down to one logit. Weights N(0, 0.02).
Adam(2e-4, beta1 0.5), the non-saturating loss: pytorch/examples' recipe.

    python examples/dcgan_mnist.py            # a few minutes on 2 CPU cores
    python examples/dcgan_mnist.py --dry-run
"""

from _common import run

if __name__ == "__main__":
    run(__doc__, model="dcgan", dataset="mnist5k", steps=1500, ngf=32, ndf=32, out="runs/example-dcgan-mnist",
        dry_run_overrides={"ngf": 4, "ndf": 4, "batch_size": 8})
