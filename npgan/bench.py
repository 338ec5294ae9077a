"""Throughput benchmarks: npgan against PyTorch on the configurations of ``BENCHMARKS.md``.

``npgan bench`` (or ``python benchmarks/throughput.py``) times a GAN training step of each configuration in
npgan and, when PyTorch is installed, the identical model in PyTorch, with the same shapes, batch size,
float32 and thread count. Each (configuration, phase, library) runs in its own worker process, so the peak
memory of one cannot hide in the other's and the two libraries' thread pools never share a process. The
two workers of a phase take turns: the timed steps run in rounds, A B B A ..., so a change in a shared
machine's load hits both libraries alike.

A training step (``BENCHMARKS.md``), written as ``npgan.gan.Trainer.train_step`` runs it:
    sample z, G forward, D update on a real and a fake batch, then G update (D frozen: no weight gradients
    for D in the G step). WGAN and WGAN-GP time the critic step and the generator step separately.

Every row reports ms per step (median, min, max over ``--steps`` timed steps after ``--warmup``), images/s,
GFLOP per step counted from the layer shapes (see ``step_flops``), the achieved GFLOP/s, the fraction of the
float32 matmul peak measured in the same run, the peak memory and the ratio npgan/PyTorch.

Peak memory (CPU): each worker resets the kernel's resident-set high-water mark (``/proc/self/clear_refs``)
right before its warm-up steps and reports ``VmHWM - VmRSS at reset``: the most extra resident memory the
steps (activations, gradients, optimizer moments, allocator slack) ever held, the same for NumPy and PyTorch.
Where ``clear_refs`` is missing it falls back to ``ru_maxrss`` (a high-water mark since process start).
GPU: what CuPy's memory pool holds after the steps (it keeps freed blocks) and PyTorch's
``torch.cuda.max_memory_allocated``, both minus the bytes in use before the first step.

``--profile`` adds npgan's time per step by op category (``OpProfiler``), from extra steps after the timed ones.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

CONFIGS = ("gan-mlp", "dcgan-32", "wgan-gp-32", "wgan-32", "dcgan-64")
PHASES = {  # what one row times; WGANs time the critic and the generator step separately
    "gan-mlp": ("step",),
    "dcgan-32": ("step",),
    "wgan-gp-32": ("critic", "generator"),
    "wgan-32": ("critic", "generator"),
    "dcgan-64": ("step",),
}
PROFILE_CATEGORIES = ("im2col", "gemm", "col2im", "batchnorm", "elementwise", "optimizer", "other")
FIELDS = (
    "config", "phase", "library", "backend", "device", "threads", "batch_size", "steps", "warmup",
    "ms_median", "ms_min", "ms_max", "images_per_s", "gflop_per_step", "gflop_per_s", "matmul_peak_gflop_per_s",
    "peak_fraction", "peak_mem_mb", "mem_method", "ratio_vs_torch", "blas", "versions", "machine", "date",
    "profile",
)


# -- the models ---------------------------------------------------------------------------------------------


def build_models(config: str, device: str = "cpu"):
    """npgan's G and D of a configuration (``npgan.gan.models``), and G's latent size."""
    from npgan.gan.models import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator  # noqa: PLC0415

    if config == "gan-mlp":
        G = MLPGenerator(100, (256, 512, 1024), (1, 28, 28))
        D = MLPDiscriminator((1, 28, 28), (512, 256))
    elif config in ("dcgan-32", "wgan-32", "wgan-gp-32"):
        G = DCGANGenerator(nz=100, ngf=64, nc=1, image_size=32)
        D = DCGANDiscriminator(ndf=64, nc=1, image_size=32, norm=None if config == "wgan-gp-32" else "batch")
    elif config == "dcgan-64":
        G = DCGANGenerator(nz=100, ngf=64, nc=3, image_size=64)
        D = DCGANDiscriminator(ndf=64, nc=3, image_size=64, norm="batch")
    else:
        raise ValueError(f"unknown benchmark configuration {config!r}; choose from {', '.join(CONFIGS)}")
    return G.to(device), D.to(device), 100


def image_shape(config: str) -> tuple:
    return {"gan-mlp": (1, 28, 28), "dcgan-64": (3, 64, 64)}.get(config, (1, 32, 32))


# -- FLOP counting ------------------------------------------------------------------------------------------


def layer_table(model, input_shape) -> list[dict]:
    """The Linear / Conv2d / ConvTranspose2d layers of ``model.main`` with their input and output shapes.

    ``macs`` is the number of multiply-adds of the layer's forward pass:
        Linear           N * in_features * out_features
        Conv2d           N * O * OH * OW * C * KH * KW        (one C*KH*KW dot product per output value)
        ConvTranspose2d  N * C * H * W * O * KH * KW          (each input value spreads over O*KH*KW outputs)
    Other layers (BatchNorm, activations) keep the shape and are not counted.
    """
    from npgan import nn  # noqa: PLC0415

    shape = tuple(input_shape)
    layers = []
    for module in model.main:
        if isinstance(module, nn.Linear):
            n = 1
            for s in shape[:-1]:
                n *= s
            if len(shape) > 2:  # the MLP discriminator flattens the image first
                n, shape = shape[0], (shape[0], module.in_features)
            out = (n, module.out_features)
            macs = n * module.in_features * module.out_features
            layers.append(dict(kind="linear", in_shape=shape, out_shape=out, macs=macs))
        elif isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            N, C, H, W = shape
            (KH, KW), (SH, SW), (PH, PW) = module.kernel_size, module.stride, module.padding
            O = module.out_channels
            if isinstance(module, nn.Conv2d):
                OH, OW = (H + 2 * PH - KH) // SH + 1, (W + 2 * PW - KW) // SW + 1
                macs = N * O * OH * OW * C * KH * KW
                kind = "conv"
            else:
                OPH, OPW = module.output_padding
                OH, OW = (H - 1) * SH - 2 * PH + KH + OPH, (W - 1) * SW - 2 * PW + KW + OPW
                macs = N * C * H * W * O * KH * KW
                kind = "convT"
            out = (N, O, OH, OW)
            layers.append(dict(kind=kind, in_shape=shape, out_shape=out, macs=macs,
                               kernel=(KH, KW), stride=(SH, SW), padding=(PH, PW)))
        else:
            continue
        shape = out
    return layers


def step_flops(config: str, phase: str, batch_size: int = 64, library: str = "npgan",
               d_weight_grads_in_g_step: bool = False) -> float:
    """FLOP of one training step, counted from the layer shapes (a FLOP is a multiply or an add).

    Only Linear, Conv2d and ConvTranspose2d layers are counted. Per layer, with F = 2 * MACs its forward:
        forward F;  backward: input gradient F + weight gradient F   (each is one GEMM of the same size).
    Work an engine skips is not counted: the input gradient of a net's first layer when its input needs no
    gradient (real images, a detached fake, z), and D's weight gradients in the G step (D is frozen there,
    as ``Trainer.train_step`` does; ``d_weight_grads_in_g_step=True`` counts them, as pytorch/examples
    computes and discards them: that gives BENCHMARKS.md's 26.2 GFLOP for dcgan-32).

    With F_G, F_D the forward FLOP of G and D and F_G1, F_D1 (F_DL) of their first (last) layer:
        GAN step:     G fwd, D fwd real + fake, D bwd real + fake, D fwd fake, D input-grad bwd, G bwd
                      = 3 F_G - F_G1 + 8 F_D - 2 F_D1          (+ F_D with D's weight gradients)
        critic step:  G fwd (no graph), D fwd real + fake, D bwd real + fake = F_G + 6 F_D - 2 F_D1
        generator step (WGAN): G fwd, D fwd, D input-grad bwd, G bwd = 3 F_G - F_G1 + 2 F_D
        gradient penalty adds: D fwd at x_hat (F_D), its input gradient (F_D; only input gradients are
            asked for), and the second backward: each layer's input-gradient op gx = convT(gy, W) is
            differentiated with respect to W (F per layer) and to gy (F per layer, but not for the last
            layer, whose gy is the constant 1 of scores.sum()) = 4 F_D - F_DL in all.
            PyTorch also sends a zero gradient back through x_hat's forward graph (the derivative of
            LeakyReLU's backward with respect to its input is zeros_like, still propagated), a full
            weight + input backward of D: + 2 F_D. npgan's LeakyReLU gradient holds a constant mask, so
            its graph never reaches that forward pass. This is BENCHMARKS.md's 28.3 GFLOP (PyTorch) vs
            24.0 GFLOP (npgan) per wgan-gp-32 critic step.
    """
    G, D, _ = build_models(config)
    shape = (batch_size,) + image_shape(config)
    g_in = (batch_size, 100) if config == "gan-mlp" else (batch_size, 100, 1, 1)
    g_layers, d_layers = layer_table(G, g_in), layer_table(D, shape)
    F_G = sum(2 * layer["macs"] for layer in g_layers)
    F_D = sum(2 * layer["macs"] for layer in d_layers)
    F_G1, F_D1, F_DL = 2 * g_layers[0]["macs"], 2 * d_layers[0]["macs"], 2 * d_layers[-1]["macs"]
    if phase == "step":
        flops = 3 * F_G - F_G1 + 8 * F_D - 2 * F_D1
        if d_weight_grads_in_g_step:
            flops += F_D
    elif phase == "critic":
        flops = F_G + 6 * F_D - 2 * F_D1
        if config == "wgan-gp-32":
            flops += 4 * F_D - F_DL
            if library == "torch":
                flops += 2 * F_D
    elif phase == "generator":
        flops = 3 * F_G - F_G1 + 2 * F_D
    else:
        raise ValueError(f"unknown phase {phase!r} for {config}")
    return float(flops)


# -- the training steps -------------------------------------------------------------------------------------

_OPTIMIZERS = {  # (optimizer, keyword arguments) per configuration, from BENCHMARKS.md
    "gan-mlp": ("adam", dict(lr=2e-4, betas=(0.5, 0.999))),
    "dcgan-32": ("adam", dict(lr=2e-4, betas=(0.5, 0.999))),
    "dcgan-64": ("adam", dict(lr=2e-4, betas=(0.5, 0.999))),
    "wgan-gp-32": ("adam", dict(lr=1e-4, betas=(0.0, 0.9))),
    "wgan-32": ("rmsprop", dict(lr=5e-5)),
}
GP_LAMBDA, CLIP = 10.0, 0.01


def npgan_steps(config: str, batch_size: int, device: str, timers=None) -> dict:
    """``{phase: step function}`` for npgan; ``timers`` (if given) is called with each ``optimizer.step``."""
    import npgan  # noqa: PLC0415
    from npgan import backend, optim  # noqa: PLC0415
    from npgan.gan import losses  # noqa: PLC0415

    npgan.manual_seed(0)
    G, D, nz = build_models(config, device)
    kind, kwargs = _OPTIMIZERS[config]
    make = optim.Adam if kind == "adam" else optim.RMSprop
    opt_g, opt_d = make(G.parameters(), **kwargs), make(D.parameters(), **kwargs)
    real = npgan.rand(batch_size, *image_shape(config), device=device) * 2.0 - 1.0
    z_shape = (batch_size, nz)

    def opt_step(opt):
        if timers is None:
            opt.step()
        else:
            timers(opt.step)

    def gan_step():
        fake = G(npgan.randn(*z_shape, device=device))
        loss_d = losses.discriminator_loss("non-saturating", D(real), D(fake.detach()))
        opt_d.zero_grad()
        loss_d.backward()
        opt_step(opt_d)
        D.requires_grad_(False)
        loss_g = losses.generator_loss("non-saturating", D(fake))
        D.requires_grad_(True)
        opt_g.zero_grad()
        loss_g.backward()
        opt_step(opt_g)

    def critic_step():
        with npgan.no_grad():
            fake = G(npgan.randn(*z_shape, device=device))
        loss_d = losses.discriminator_loss("wasserstein", D(real), D(fake))
        if config == "wgan-gp-32":
            loss_d = loss_d + losses.gradient_penalty(D, real, fake) * GP_LAMBDA
        opt_d.zero_grad()
        loss_d.backward()
        opt_step(opt_d)
        if config == "wgan-32":
            for p in D.parameters():
                backend.get_array_module(p.data).clip(p.data, -CLIP, CLIP, out=p.data)

    def generator_step():
        fake = G(npgan.randn(*z_shape, device=device))
        D.requires_grad_(False)
        loss_g = losses.generator_loss("wasserstein", D(fake))
        D.requires_grad_(True)
        opt_g.zero_grad()
        loss_g.backward()
        opt_step(opt_g)

    if PHASES[config] == ("step",):
        return {"step": gan_step}
    return {"critic": critic_step, "generator": generator_step}


def torch_models(config: str, device: str):
    """PyTorch copies of npgan's G and D: the same layers, built from npgan's models, with their weights.

    Loading npgan's state dict with ``strict=True`` fails unless every name and shape matches.
    """
    import torch  # noqa: PLC0415
    from torch import nn as tnn  # noqa: PLC0415

    from npgan import nn  # noqa: PLC0415

    def translate(module):
        if isinstance(module, nn.Linear):
            return tnn.Linear(module.in_features, module.out_features, bias=module.bias is not None)
        if isinstance(module, nn.Conv2d):
            return tnn.Conv2d(module.in_channels, module.out_channels, module.kernel_size, module.stride,
                              module.padding, bias=module.bias is not None)
        if isinstance(module, nn.ConvTranspose2d):
            return tnn.ConvTranspose2d(module.in_channels, module.out_channels, module.kernel_size, module.stride,
                                       module.padding, module.output_padding, bias=module.bias is not None)
        if isinstance(module, nn.BatchNorm2d):
            return tnn.BatchNorm2d(module.num_features, eps=module.eps, momentum=module.momentum)
        if isinstance(module, nn.LeakyReLU):
            return tnn.LeakyReLU(module.negative_slope)
        if isinstance(module, nn.ReLU):
            return tnn.ReLU()
        if isinstance(module, nn.Tanh):
            return tnn.Tanh()
        raise TypeError(f"no PyTorch counterpart for {type(module).__name__}")

    class Net(tnn.Module):
        def __init__(self, npgan_model, in_shape, out_shape):
            super().__init__()
            self.main = tnn.Sequential(*[translate(m) for m in npgan_model.main])
            self.in_shape, self.out_shape = in_shape, out_shape
            state = {k: torch.from_numpy(v.copy()) for k, v in npgan_model.state_dict().items()}
            self.load_state_dict(state, strict=True)

        def forward(self, x):
            return self.main(x.reshape(self.in_shape)).reshape(self.out_shape)

    G, D, nz = build_models(config)
    batch_image = (-1,) + image_shape(config)
    if config == "gan-mlp":
        tG, tD = Net(G, (-1, nz), batch_image), Net(D, (-1, 784), (-1,))
    else:
        tG, tD = Net(G, (-1, nz, 1, 1), batch_image), Net(D, batch_image, (-1,))
    return tG.to(device), tD.to(device), nz


def torch_steps(config: str, batch_size: int, device: str) -> dict:
    """The same steps as ``npgan_steps`` in PyTorch."""
    import torch  # noqa: PLC0415
    import torch.nn.functional as tF  # noqa: PLC0415

    torch.manual_seed(0)
    G, D, nz = torch_models(config, device)
    kind, kwargs = _OPTIMIZERS[config]
    make = torch.optim.Adam if kind == "adam" else torch.optim.RMSprop
    opt_g, opt_d = make(G.parameters(), **kwargs), make(D.parameters(), **kwargs)
    real = torch.rand(batch_size, *image_shape(config), device=device) * 2.0 - 1.0

    def z():
        return torch.randn(batch_size, nz, device=device)

    def freeze(net, frozen):
        for p in net.parameters():
            p.requires_grad_(not frozen)

    def gan_step():
        fake = G(z())
        d_real, d_fake = D(real), D(fake.detach())
        loss_d = (tF.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                  + tF.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        freeze(D, True)
        loss_g = tF.softplus(-D(fake)).mean()  # non-saturating: -log sigmoid(D(G(z)))
        freeze(D, False)
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()

    def gradient_penalty(fake):
        eps = torch.rand(batch_size, 1, 1, 1, device=device)
        x_hat = (eps * real + (1.0 - eps) * fake).requires_grad_(True)
        (grad_x,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
        norm = (grad_x.reshape(batch_size, -1).pow(2).sum(1) + 1e-12).sqrt()
        return (norm - 1.0).pow(2).mean()

    def critic_step():
        with torch.no_grad():
            fake = G(z())
        loss_d = D(fake).mean() - D(real).mean()
        if config == "wgan-gp-32":
            loss_d = loss_d + gradient_penalty(fake) * GP_LAMBDA
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        if config == "wgan-32":
            with torch.no_grad():
                for p in D.parameters():
                    p.clamp_(-CLIP, CLIP)

    def generator_step():
        fake = G(z())
        freeze(D, True)
        loss_g = -D(fake).mean()
        freeze(D, False)
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()

    if PHASES[config] == ("step",):
        return {"step": gan_step}
    return {"critic": critic_step, "generator": generator_step}


# -- measuring ----------------------------------------------------------------------------------------------


class PeakMemory:
    """Peak extra memory between ``reset()`` and ``read()`` in MB (see the module docstring)."""

    def __init__(self, library: str, device: str):
        self.library, self.device = library, device
        self.method = None

    def reset(self):
        if self.device == "cuda":
            if self.library == "torch":
                import torch  # noqa: PLC0415

                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                self.base = torch.cuda.memory_allocated()
                self.method = "torch.cuda.max_memory_allocated - allocated before the first step"
            else:
                import cupy  # noqa: PLC0415

                pool = cupy.get_default_memory_pool()
                pool.free_all_blocks()  # the pool keeps freed blocks: what it holds after the steps is the peak
                self.base = pool.used_bytes()
                self.method = "CuPy memory pool total_bytes after the steps - used_bytes before them"
            return
        self.base = _rss_kb()
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # reset the peak resident set size (VmHWM) to the current one
            self.method = "VmHWM - VmRSS (clear_refs reset before the first step)"
        except OSError:
            self.method = "ru_maxrss - RSS before the first step (peak since process start)"

    def read(self) -> float:
        if self.device == "cuda":
            if self.library == "torch":
                import torch  # noqa: PLC0415

                return (torch.cuda.max_memory_allocated() - self.base) / 2**20
            import cupy  # noqa: PLC0415

            return (cupy.get_default_memory_pool().total_bytes() - self.base) / 2**20
        if self.method.startswith("VmHWM"):
            peak = _proc_status_kb("VmHWM")
        else:
            import resource  # noqa: PLC0415

            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            peak = peak / 1024 if sys.platform == "darwin" else peak
        return max(0.0, (peak - self.base) / 1024)


def _proc_status_kb(key):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _rss_kb():
    rss = _proc_status_kb("VmRSS")
    if rss is not None:
        return rss
    import resource  # noqa: PLC0415

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _sync_for(library: str, device: str):
    if device != "cuda":
        return lambda: None
    if library == "torch":
        import torch  # noqa: PLC0415

        return torch.cuda.synchronize
    from npgan import backend  # noqa: PLC0415

    return lambda: backend.synchronize("cuda")


def time_steps(step, steps: int, sync) -> list[float]:
    """Seconds per call of ``step``; the device is synchronized before each clock reading."""
    sync()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    return times


def matmul_peak(threads: int, device: str = "cpu", size: int = 2048, repeats: int = 10) -> float:
    """The best float32 GFLOP/s of a ``size`` x ``size`` matmul with this process's threads (the peak)."""
    from npgan import backend  # noqa: PLC0415

    xp = backend.array_module_for(device)
    a = xp.asarray(backend.random_uniform((size, size), device=device))
    b = xp.asarray(backend.random_uniform((size, size), device=device))
    out = xp.empty((size, size), dtype=a.dtype)
    best = float("inf")
    for i in range(repeats + 1):
        backend.synchronize(device)
        start = time.perf_counter()
        xp.matmul(a, b, out=out)
        backend.synchronize(device)
        if i:  # the first call warms up
            best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best / 1e9


# -- per-op profile -----------------------------------------------------------------------------------------


class OpProfiler:
    """Exclusive wall time by op category while installed (npgan only; for ``--profile``).

    It wraps, temporarily, ``forward`` and ``backward`` of every ``Function`` subclass and the conv helpers
    ``npgan.ops.conv.pad_input / im2col / col2im / gemm``: nested calls are subtracted from their caller, so
    each second is counted once. Categories: im2col (padding and window copies), gemm (conv GEMMs, Linear
    and MatMul), col2im, batchnorm (the BatchNorm op, forward and backward), elementwise (every other op's
    forward, and the glue of every backward: allocating outputs, reshapes, gradient sums), optimizer
    (``optimizer.step``) and other (the rest of the step: the graph walk, Python, freeing memory).
    On the GPU the device is synchronized at every boundary, which slows the step down.
    """

    def __init__(self, sync=lambda: None):
        self.sync = sync
        self.totals = {c: 0.0 for c in PROFILE_CATEGORIES}
        self._stack = []
        self._saved = []

    @staticmethod
    def category(cls) -> str:
        name = cls.__name__
        if name in ("MatMul", "Linear"):
            return "gemm"
        if "BatchNorm" in name:
            return "batchnorm"
        return "elementwise"

    def timed(self, fn, category):
        profiler = self

        def wrapper(*args, **kwargs):
            profiler.sync()
            start = time.perf_counter()
            profiler._stack.append(0.0)
            try:
                return fn(*args, **kwargs)
            finally:
                profiler.sync()
                elapsed = time.perf_counter() - start
                nested = profiler._stack.pop()
                profiler.totals[category] += elapsed - nested
                if profiler._stack:
                    profiler._stack[-1] += elapsed

        return wrapper

    def __call__(self, fn):
        """Run ``fn()``, timed as the optimizer while the profiler is installed."""
        return self.timed(fn, "optimizer")() if self._saved else fn()

    def install(self):
        from npgan.autograd import Function  # noqa: PLC0415
        from npgan.ops import conv  # noqa: PLC0415

        classes, todo = [], list(Function.__subclasses__())
        while todo:
            cls = todo.pop()
            classes.append(cls)
            todo.extend(cls.__subclasses__())
        for cls in classes:
            for method in ("forward", "backward"):  # backward: the glue, or raw-array work (BatchNorm)
                if method in cls.__dict__:
                    self._saved.append((cls, method, cls.__dict__[method]))
                    setattr(cls, method, self.timed(cls.__dict__[method], self.category(cls)))
        for name, category in (("pad_input", "im2col"), ("im2col", "im2col"), ("col2im", "col2im"),
                               ("gemm", "gemm")):
            if hasattr(conv, name):
                self._saved.append((conv, name, getattr(conv, name)))
                setattr(conv, name, self.timed(getattr(conv, name), category))
        return self

    def uninstall(self):
        for owner, name, original in reversed(self._saved):
            setattr(owner, name, original)
        self._saved.clear()

    def per_step_ms(self, total_seconds: float, steps: int) -> dict:
        measured = sum(v for k, v in self.totals.items() if k != "other")
        totals = dict(self.totals, other=max(0.0, total_seconds - measured))
        return {k: round(1e3 * v / steps, 2) for k, v in totals.items()}


# -- one worker: one configuration in one library -----------------------------------------------------------


def _blas_info():
    try:
        import threadpoolctl  # noqa: PLC0415
    except ImportError:
        return {"note": "threadpoolctl is not installed (pip install threadpoolctl): BLAS kernel unknown"}
    info = []
    for pool in threadpoolctl.threadpool_info():
        info.append({k: pool.get(k) for k in ("internal_api", "version", "architecture", "num_threads",
                                                "threading_layer")})
    return info


def _limit_threads(threads: int):
    try:
        import threadpoolctl  # noqa: PLC0415
    except ImportError:
        return None  # the worker's environment (OPENBLAS_NUM_THREADS...) already sets the thread count
    return threadpoolctl.threadpool_limits(limits=threads)


PROTOCOL = "@bench "  # prefix of the worker's answers; anything else it prints is ignored


def run_worker(spec: dict, commands=None, answer=None) -> None:
    """Serve one phase of ``spec['config']`` in ``spec['library']``, in its own process.

    Answers ``ready`` once the models are built, then reads commands (one per line):
      ``run K``   K timed steps (the first ``run`` does the warm-up steps first) -> {"times": [...]}
      ``finish``  the peak memory over all timed steps, the profile (npgan, with ``--profile``) -> and exits.
    A fresh process per phase and library: the peak memory of one never hides in memory another left
    resident, and the two libraries' thread pools never share a process.
    """
    commands = commands if commands is not None else sys.stdin
    answer = answer if answer is not None else (lambda d: print(PROTOCOL + json.dumps(d), flush=True))
    library, config, device, phase = spec["library"], spec["config"], spec["device"], spec["phase"]
    threads, batch, steps, warmup = spec["threads"], spec["batch_size"], spec["steps"], spec["warmup"]
    limiter = _limit_threads(threads)  # noqa: F841 - keeps the limit for the worker's lifetime
    if library == "torch":
        import torch  # noqa: PLC0415

        torch.set_num_threads(threads)
        step = torch_steps(config, batch, "cuda" if device == "cuda" else "cpu")[phase]
    else:
        step = npgan_steps(config, batch, device)[phase]
    sync = _sync_for(library, device)
    memory = PeakMemory(library, device)
    warmed_up = False
    answer({"ready": True})
    for line in commands:
        command = line.split()
        if command and command[0] == "run":
            if not warmed_up:  # the peak covers the warm-up too: optimizer moments, first allocations
                memory.reset()
                for _ in range(warmup):
                    step()
                warmed_up = True
            answer({"times": time_steps(step, int(command[1]), sync)})
        elif command == ["finish"]:
            peak_mb = memory.read() if warmed_up else 0.0
            profile = None
            if spec.get("profile") and library == "npgan":
                profile = _profile(config, phase, batch, device, steps, warmup, sync)
            answer(dict(peak_mem_mb=peak_mb, mem_method=memory.method, profile=profile, blas=_blas_info()))
            return


def _profile(config, phase, batch, device, steps, warmup, sync) -> dict:
    """ms per step by op category over ``steps`` extra npgan steps (fresh models, after a warm-up)."""
    profiler = OpProfiler(sync)
    profiled = npgan_steps(config, batch, device, timers=profiler)[phase]
    for _ in range(max(1, warmup)):
        profiled()
    profiler.install()
    try:
        start = time.perf_counter()
        for _ in range(steps):
            profiled()
        sync()
        total = time.perf_counter() - start
    finally:
        profiler.uninstall()
    profile = profiler.per_step_ms(total, steps)
    profile["total"] = round(1e3 * total / steps, 2)
    return profile


def _worker_main(argv) -> int:
    spec = json.loads(argv[0])
    if spec.get("peak"):
        _limit_threads(spec["threads"])
        answer = {"matmul_peak": matmul_peak(spec["threads"], spec["device"]), "blas": _blas_info()}
        print(PROTOCOL + json.dumps(answer), flush=True)
        return 0
    run_worker(spec)
    return 0


class Worker:
    """A worker process (``python -m npgan.bench --worker SPEC``) and its line protocol."""

    def __init__(self, spec: dict, threads: int):
        import npgan  # noqa: PLC0415

        env = dict(os.environ)
        root = os.path.dirname(os.path.dirname(os.path.abspath(npgan.__file__)))
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(threads)
        self.spec = spec
        self.stderr = tempfile.TemporaryFile(mode="w+")  # a file, not a pipe: a chatty worker never blocks
        self.proc = subprocess.Popen([sys.executable, "-m", "npgan.bench", "--worker", json.dumps(spec)], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True)

    def receive(self) -> dict:
        for line in self.proc.stdout:
            if line.startswith(PROTOCOL):
                return json.loads(line[len(PROTOCOL):])
        self.proc.wait()
        self.stderr.seek(0)
        raise RuntimeError(f"benchmark worker {self.spec} failed:\n{self.stderr.read().strip()}")

    def request(self, command: str) -> dict:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.receive()

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.stderr.close()


def _spawn(spec: dict, threads: int) -> dict:
    """Run a one-shot worker (the matmul peak) and return its answer."""
    worker = Worker(spec, threads)
    try:
        return worker.receive()
    finally:
        worker.close()


def _rounds(steps: int, rounds: int) -> list[int]:
    """Split ``steps`` timed steps into ``rounds`` nearly equal rounds."""
    rounds = max(1, min(rounds, steps))
    return [steps // rounds + (1 if i < steps % rounds else 0) for i in range(rounds)]


def measure_phase(config, phase, libraries, args, device, threads) -> dict:
    """Time one phase in every library, the rounds alternating between them; {library: result}."""
    workers = {}
    try:
        for library in libraries:
            workers[library] = Worker(dict(library=library, config=config, phase=phase, device=device,
                                           threads=threads, batch_size=args.batch_size, steps=args.steps,
                                           warmup=args.warmup, profile=args.profile), threads)
        for worker in workers.values():
            worker.receive()  # ready: models built
        times = {library: [] for library in libraries}
        for i, count in enumerate(_rounds(args.steps, args.rounds)):
            for library in (libraries if i % 2 == 0 else libraries[::-1]):  # A B, B A, ...
                time.sleep(HANDOFF_PAUSE)
                times[library] += workers[library].request(f"run {count}")["times"]
        return {library: dict(times=times[library], **workers[library].request("finish"))
                for library in libraries}
    finally:
        for worker in workers.values():
            worker.close()


# An idle OpenBLAS thread keeps spinning for ~0.1 s after its last GEMM (OpenMP threads for a while too):
# each library waits this long before its round, so the other one's idle threads do not share its cores.
HANDOFF_PAUSE = 0.3


# -- the report ---------------------------------------------------------------------------------------------


def _versions(library_set):
    import numpy  # noqa: PLC0415

    versions = {"python": platform.python_version(), "numpy": numpy.__version__}
    from npgan import __version__ as npgan_version  # noqa: PLC0415

    versions["npgan"] = npgan_version
    if "torch" in library_set:
        try:
            import torch  # noqa: PLC0415

            versions["torch"] = torch.__version__
        except ImportError:
            pass
    try:
        import cupy  # noqa: PLC0415

        versions["cupy"] = cupy.__version__
    except Exception:
        pass
    return versions


def _machine():
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}"


def _median(values):
    values = sorted(values)
    n = len(values)
    return values[n // 2] if n % 2 else 0.5 * (values[n // 2 - 1] + values[n // 2])


def _torch_available(device):
    try:
        import torch  # noqa: PLC0415
    except ImportError:
        return False, "PyTorch is not installed: npgan rows only (pip install torch to compare)"
    if device == "cuda" and not torch.cuda.is_available():
        return False, "PyTorch sees no CUDA device: npgan rows only"
    return True, None


def markdown_table(rows) -> str:
    header = ("| config | library | threads | ms/step median (min-max) | images/s | GFLOP/step | GFLOP/s "
              "| % of matmul peak | peak MB | npgan/PyTorch |")
    lines = [header, "|" + "---|" * 10]
    for r in rows:
        name = r["config"] if r["phase"] == "step" else f"{r['config']} {r['phase']}"
        ratio = "" if r["ratio_vs_torch"] is None else f"{r['ratio_vs_torch']:.2f}"
        lines.append(
            f"| {name} | {r['library']}-{r['backend']} | {r['threads']} | {r['ms_median']:.1f} "
            f"({r['ms_min']:.1f}-{r['ms_max']:.1f}) | {r['images_per_s']:.0f} | {r['gflop_per_step']:.2f} "
            f"| {r['gflop_per_s']:.0f} | {100 * r['peak_fraction']:.0f}% | {r['peak_mem_mb']:.0f} | {ratio} |"
        )
    return "\n".join(lines)


def profile_table(rows) -> str:
    lines = ["| config | " + " | ".join(PROFILE_CATEGORIES) + " | total ms |",
             "|" + "---|" * (len(PROFILE_CATEGORIES) + 2)]
    for r in rows:
        if not r.get("profile"):
            continue
        p = r["profile"]
        name = r["config"] if r["phase"] == "step" else f"{r['config']} {r['phase']}"
        cells = " | ".join(f"{p[c]:.1f} ({100 * p[c] / p['total']:.0f}%)" for c in PROFILE_CATEGORIES)
        lines.append(f"| {name} | {cells} | {p['total']:.1f} |")
    return "\n".join(lines)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="npgan bench",
        description="Time GAN training steps in npgan and PyTorch (configurations of BENCHMARKS.md). "
                    "Tip: OPENBLAS_CORETYPE pins OpenBLAS's kernel; compare with and without it "
                    "(env -u OPENBLAS_CORETYPE ...).")
    parser.add_argument("--configs", default=",".join(CONFIGS),
                        help=f"comma-separated configurations (default: all of {', '.join(CONFIGS)})")
    parser.add_argument("--backend", choices=("numpy", "cupy"), default="numpy",
                        help="npgan's array backend; PyTorch runs on the matching device (cpu or cuda)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for both libraries (BLAS via threadpoolctl, torch.set_num_threads); "
                             "default: the CPUs this process may use")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per row (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    parser.add_argument("--rounds", type=int, default=4,
                        help="the timed steps run in this many rounds, alternating between npgan and PyTorch "
                             "(A B B A ...), so a change in the machine's load hits both (default 4)")
    parser.add_argument("--json", metavar="OUT", help="also write the rows as JSON lines to OUT")
    parser.add_argument("--markdown", metavar="FILE",
                        help="also write the report (machine, versions, tables) into FILE, between the markers "
                             f"{REPORT_START} and {REPORT_END} (appended when they are missing)")
    parser.add_argument("--profile", action="store_true",
                        help="also time npgan's steps by op category (im2col, gemm, col2im, batchnorm, "
                             "elementwise, optimizer, other) in extra profiled steps")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch even when it is installed")
    args = parser.parse_args(argv)
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    for c in configs:
        if c not in CONFIGS:
            parser.error(f"unknown configuration {c!r}; choose from {', '.join(CONFIGS)}")
    args.configs = configs
    for name in ("batch_size", "steps", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0:
        parser.error(f"--warmup must be >= 0, got {args.warmup}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    return args


def run(args, log=print) -> list[dict]:
    """Run the benchmark described by parsed ``args``; returns one dict per row (``FIELDS``)."""
    device = "cuda" if args.backend == "cupy" else "cpu"
    if device == "cuda":
        from npgan import backend  # noqa: PLC0415

        if not backend.cupy_available():
            raise SystemExit("npgan bench: --backend cupy needs CuPy and an NVIDIA GPU, and this machine has "
                             "none usable; install CuPy with pip install 'npgan[cuda]' on a GPU machine")
    threads = args.threads or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    libraries = ["npgan"]
    if not args.no_torch:
        ok, why = _torch_available(device)
        if ok:
            libraries.append("torch")
        else:
            log(f"note: {why}")
    try:
        import threadpoolctl  # noqa: F401, PLC0415
    except ImportError:
        log("note: threadpoolctl is not installed (pip install threadpoolctl): the workers' BLAS threads are set "
            "through OPENBLAS_NUM_THREADS / OMP_NUM_THREADS only, and the BLAS kernel is not reported")
    if device == "cpu" and os.environ.get("OPENBLAS_CORETYPE"):
        log(f"note: OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']} pins OpenBLAS's kernel for npgan's "
            "matmuls; unset it to let OpenBLAS pick the fastest for this CPU")
    peak = _spawn({"peak": True, "threads": threads, "device": device}, threads)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    versions, machine = _versions(libraries), _machine()
    rows = []
    for config in args.configs:
        for phase in PHASES[config]:
            order = ["torch", "npgan"] if "torch" in libraries else ["npgan"]
            results = measure_phase(config, phase, order, args, device, threads)
            torch_median = _median(results["torch"]["times"]) if "torch" in results else None
            for library in order:
                result = results[library]
                times = result["times"]
                median = _median(times)
                gflop = step_flops(config, phase, args.batch_size, library) / 1e9
                ratio = median / torch_median if library == "npgan" and torch_median else None
                row = dict(
                    config=config, phase=phase, library=library,
                    backend=("numpy" if device == "cpu" else "cupy") if library == "npgan" else device,
                    device=device, threads=threads, batch_size=args.batch_size, steps=args.steps,
                    warmup=args.warmup, ms_median=1e3 * median, ms_min=1e3 * min(times), ms_max=1e3 * max(times),
                    images_per_s=args.batch_size / median, gflop_per_step=gflop, gflop_per_s=gflop / median,
                    matmul_peak_gflop_per_s=peak["matmul_peak"], peak_fraction=gflop / median / peak["matmul_peak"],
                    peak_mem_mb=result["peak_mem_mb"], mem_method=result["mem_method"], ratio_vs_torch=ratio,
                    blas=result["blas"], versions=versions, machine=machine, date=date, profile=result["profile"],
                )
                rows.append(row)
                log(json.dumps(row))
    return rows


def report(rows, args, argv) -> str:
    """The run as Markdown: machine, versions, BLAS kernel, the command, the table (and the profile)."""
    first = rows[0]
    pools = first["blas"] if isinstance(first["blas"], list) else []
    kernel = ", ".join(f"OpenBLAS {b['version']} ({b['architecture']} kernel, {b['num_threads']} threads)"
                       for b in pools if b.get("internal_api") == "openblas")
    lines = [
        f"Measured {first['date']} on {first['machine']}; "
        + ", ".join(f"{k} {v}" for k, v in first["versions"].items())
        + (f"; NumPy's BLAS: {kernel}" if kernel else "") + ".",
        "",
        f"Command: `npgan bench {' '.join(argv)}` ({args.steps} timed steps per row after {args.warmup} warm-up "
        f"steps, in {args.rounds} alternating rounds; batch {args.batch_size}; float32). "
        f"float32 matmul peak ({first['threads']} thread{'s' if first['threads'] > 1 else ''}): "
        f"{first['matmul_peak_gflop_per_s']:.0f} GFLOP/s.",
        "",
        markdown_table(rows),
    ]
    if any(r.get("profile") for r in rows):
        lines += ["", "npgan's time per step by op category, ms (share of the step), from extra profiled steps:", "",
                  profile_table(rows)]
    return "\n".join(lines)


REPORT_START, REPORT_END = "<!-- reference-run:start -->", "<!-- reference-run:end -->"


def update_report(path, text) -> None:
    """Put ``text`` between the reference-run markers of the Markdown file ``path`` (appended if missing)."""
    old = open(path).read() if os.path.exists(path) else ""
    block = f"{REPORT_START}\n{text}\n{REPORT_END}"
    if REPORT_START in old and REPORT_END in old:
        head, rest = old.split(REPORT_START, 1)
        new = head + block + rest.split(REPORT_END, 1)[1]
    else:
        new = old + ("\n" if old and not old.endswith("\n") else "") + block + "\n"
    with open(path, "w") as f:
        f.write(new)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--worker":
        return _worker_main(argv[1:])
    args = parse_args(argv)
    rows = run(args)
    if rows:
        text = report(rows, args, argv)
        print()
        print(text)
        if args.markdown:
            update_report(args.markdown, text)
    if args.json:
        with open(args.json, "w") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
