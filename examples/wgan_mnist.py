"""WGAN with weight clipping (Arjovsky et al. 2017, Algorithm 1) on MNIST.

The critic f estimates the Wasserstein-1 distance E[f(x)] - E[f(G(z))]; it is kept 1-Lipschitz (roughly) by
clipping every weight to [-0.01, 0.01] after each step. RMSprop(5e-5), 5 critic steps per generator step, and
100 critic steps for the first 25 generator steps (and every 500th) so the critic stays near optimal.
Watch the Wasserstein estimate "W" fall as the samples improve.

    python examples/wgan_mnist.py            # a few minutes on 2 CPU cores
    python examples/wgan_mnist.py --dry-run
"""

from _common import run

if __name__ == "__main__":
    run(__doc__, model="wgan", dataset="mnist5k", steps=300, ngf=32, ndf=32, out="runs/example-wgan-mnist",
        dry_run_overrides={"ngf": 4, "ndf": 4, "batch_size": 8, "n_critic": 1})
