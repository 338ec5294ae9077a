"""Per-layer timings of a benchmark configuration's convolutions and linear layers, npgan against PyTorch.

    python benchmarks/layers.py --config dcgan-32 --threads 2

For every Conv2d / ConvTranspose2d / Linear layer of G and D (shapes from ``npgan.bench.layer_table``, batch
``--batch-size``), it times the forward pass and the backward pass (input and weight gradients) of that one
layer, in npgan and in PyTorch, in this process, and prints ms and GFLOP/s (a FLOP is a multiply or an add;
backward counts 2x the forward). The best of ``--repeats`` runs is shown: a per-layer view of where npgan
is slower or faster than PyTorch, to read next to ``npgan bench --profile``. Both libraries run in this one
process with npgan's runtime switched on (``npgan.runtime.enable()``), so both get npgan's malloc policy
(``npgan/runtime/memory.py``; ``NPGAN_MALLOC=system`` for neither).
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import npgan  # noqa: E402
import npgan.functional as F  # noqa: E402
import npgan.runtime  # noqa: E402
from npgan import bench  # noqa: E402


def best_time(fn, repeats):
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def layer_callables(layer, first, randn, functional):
    """Forward and forward+backward callables of one layer, in the library of ``randn`` and ``functional``
    (npgan's or PyTorch's: the same names and argument orders)."""
    x = randn(*layer["in_shape"], requires_grad=not first)
    C, O = layer["in_shape"][1], layer["out_shape"][1]
    if layer["kind"] == "linear":
        w = randn(O, C, requires_grad=True)

        def op():
            return functional.linear(x, w)
    else:
        kwargs = dict(stride=layer["stride"], padding=layer["padding"])
        if layer["kind"] == "conv":
            w = randn(O, C, *layer["kernel"], requires_grad=True)

            def op():
                return functional.conv2d(x, w, **kwargs)
        else:
            w = randn(C, O, *layer["kernel"], requires_grad=True)

            def op():
                return functional.conv_transpose2d(x, w, **kwargs)
    gy = randn(*layer["out_shape"])

    def forward_backward():
        x.grad = w.grad = None  # as after zero_grad() in training: each backward makes fresh gradients
        op().backward(gy)

    return op, forward_backward


def npgan_layer(layer, first):
    return layer_callables(layer, first, npgan.randn, F)


def torch_layer(layer, first):
    import torch  # noqa: PLC0415

    return layer_callables(layer, first, torch.randn, torch.nn.functional)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="dcgan-32", choices=bench.CONFIGS)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="BLAS and PyTorch threads (default: all)")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    npgan.runtime.enable()  # npgan's products as npgan runs them: its BLAS thread and malloc policies
    if args.threads:
        try:
            import threadpoolctl  # noqa: PLC0415
        except ImportError:
            sys.exit("--threads needs threadpoolctl (pip install threadpoolctl), or set OPENBLAS_NUM_THREADS")
        threadpoolctl.threadpool_limits(args.threads)
    try:
        import torch  # noqa: PLC0415

        if args.threads:
            torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
        print("PyTorch is not installed: npgan columns only")
    G, D, nz = bench.build_models(args.config)
    B = args.batch_size
    g_input = (B, nz) if args.config == "gan-mlp" else (B, nz, 1, 1)
    nets = [("G", bench.layer_table(G, g_input)), ("D", bench.layer_table(D, (B,) + bench.image_shape(args.config)))]
    print(f"{args.config}, batch {B}; ms (best of {args.repeats}) and GFLOP/s; backward = input + weight gradients"
          " (the input gradient of a net's first layer is skipped, as in training)")
    print()
    print("| layer | input -> output | GFLOP fwd | npgan fwd | torch fwd | npgan bwd | torch bwd "
          "| npgan GFLOP/s fwd+bwd | torch GFLOP/s fwd+bwd |")
    print("|---|---|---|---|---|---|---|---|---|")
    for net, layers in nets:
        for i, layer in enumerate(layers):
            fwd_flop = 2 * layer["macs"]
            total_flop = fwd_flop * (2 if i == 0 else 3)
            cells = []
            for make in (npgan_layer, torch_layer) if torch else (npgan_layer,):
                op, forward_backward = make(layer, first=i == 0)
                t_fwd = best_time(op, args.repeats)
                t_all = best_time(forward_backward, args.repeats)
                cells.append((t_fwd, max(t_all - t_fwd, 0.0), total_flop / t_all / 1e9))
            n, t = cells[0], cells[1] if len(cells) > 1 else (float("nan"),) * 3
            shapes = f"{layer['in_shape']} -> {layer['out_shape']}"
            print(f"| {net}{i + 1} {layer['kind']} | {shapes} | {fwd_flop / 1e9:.3f} | {1e3 * n[0]:.2f} "
                  f"| {1e3 * t[0]:.2f} | {1e3 * n[1]:.2f} | {1e3 * t[1]:.2f} | {n[2]:.0f} | {t[2]:.0f} |")


if __name__ == "__main__":
    main()
