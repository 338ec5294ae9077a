"""Throughput benchmarks: npgan against PyTorch on the configurations of ``benchmarks/CONFIGS.md``.

``npgan bench`` (or ``python benchmarks/throughput.py``) times a GAN training step of each configuration in
npgan and, when PyTorch is installed, the identical model in PyTorch, with the same shapes, batch size,
float32 and thread count. Each (configuration, phase, library) runs in its own worker process, so the peak
memory of one cannot hide in the other's and the two libraries' thread pools never share a process. The
two workers of a phase take turns: the timed steps run in rounds, A B B A ..., so a change in a shared
machine's load hits both libraries alike.

A training step (``benchmarks/CONFIGS.md``), written as ``npgan.gan.Trainer.train_step`` runs it:
    sample z, G forward, D update on a real and a fake batch, then G update (D frozen: no weight gradients
    for D in the G step). WGAN and WGAN-GP time the critic step and the generator step separately; the 2-D
    toys (batch 256) time a GAN step (toy-mlp) and a critic step with the gradient penalty (toy-wgan-gp).

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

The package, one module per part, in the order a row is made:
    models    the configurations' networks in npgan, and the PyTorch reference models built from them
    flops     FLOP per step, counted from the layer shapes
    steps     one training step of each configuration, in npgan and in PyTorch
    measure   the clock, peak memory, the matmul peak
    profile   npgan's step time by op category
    workers   one process per (configuration, phase, library), in alternating rounds
    report    Markdown tables (with ``--backend numpy,cupy`` one of CPU against GPU), machine and versions
    suite     ``npgan bench``: flags, the run, the output
"""

from npgan.bench.flops import layer_table, step_flops
from npgan.bench.measure import PeakMemory, matmul_peak, time_steps
from npgan.bench.models import (
    CONFIGS,
    PHASES,
    TOY_CONFIGS,
    build_models,
    default_batch_size,
    default_steps,
    image_shape,
    torch_models,
)
from npgan.bench.profile import PROFILE_CATEGORIES, OpProfiler
from npgan.bench.report import (
    FIELDS,
    REPORT_END,
    REPORT_START,
    cpu_gpu_rows,
    cpu_gpu_table,
    markdown_table,
    profile_table,
    report,
    torch_available,
    update_report,
)
from npgan.bench.steps import npgan_steps, torch_steps
from npgan.bench.suite import main, parse_args, run
from npgan.bench.workers import run_worker

__all__ = [
    "CONFIGS", "FIELDS", "PHASES", "PROFILE_CATEGORIES", "REPORT_END", "REPORT_START", "TOY_CONFIGS", "OpProfiler",
    "PeakMemory", "build_models", "cpu_gpu_rows", "cpu_gpu_table",
    "default_batch_size", "default_steps", "image_shape", "layer_table", "main", "markdown_table",
    "matmul_peak", "npgan_steps", "parse_args", "profile_table", "report", "run", "run_worker", "step_flops",
    "time_steps", "torch_available", "torch_models", "torch_steps", "update_report",
]
