"""WGAN-GP (Gulrajani et al. 2017) on the 25-Gaussian grid: no mode left behind.

Instead of clipping weights, the critic's gradient norm is pushed towards 1 at random points between real and
fake samples: lambda * E[(||grad f(x_hat)|| - 1)^2]. That needs the gradient of a gradient, which npgan's
autograd provides (``npgan.grad(..., create_graph=True)``; see npgan/gan/losses.py). 5 critic steps per generator
step, Adam(1e-4, betas (0.5, 0.9)) and lambda = 0.1, the settings of the paper's own 2-D toy code (lambda = 10,
the image setting, holds a toy critic too flat to pull samples onto modes this narrow), learning rates decaying
to 0. Prints modes captured and the share of high-quality samples; benchmarks/toys.py runs it for longer.

    python examples/wgan_gp_toys.py                  # grid25, a few minutes on 2 CPU cores
    python examples/wgan_gp_toys.py --dry-run
"""

from _common import run

if __name__ == "__main__":
    run(__doc__, model="wgan-gp", dataset="grid25", steps=4000, batch_size=256, out="runs/example-wgan-gp-grid25",
        gp_lambda=0.1, beta1=0.5, hidden=256, lr_decay=True, sample_every=500,
        dry_run_overrides={"hidden": 16, "batch_size": 16})
