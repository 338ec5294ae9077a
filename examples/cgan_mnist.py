"""A conditional GAN (Mirza & Osindero 2014) on MNIST with DCGAN nets: ask for a digit, get that digit.

The label is embedded and joined to z in G, and to the image as an extra channel in D, so D judges whether an
image is a real example *of that class*. The sample grid has one column per class.

    python examples/cgan_mnist.py            # a few minutes on 2 CPU cores
    python examples/cgan_mnist.py --dry-run
"""

from _common import run

if __name__ == "__main__":
    run(__doc__, model="cgan", dataset="mnist5k", steps=1500, ngf=32, ndf=32, out="runs/example-cgan-mnist",
        num_samples=100, dry_run_overrides={"ngf": 4, "ndf": 4, "batch_size": 8, "num_samples": 20})
