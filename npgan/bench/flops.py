"""FLOP counts of the benchmark steps, from the layer shapes."""

from __future__ import annotations

from npgan.bench.models import GP_CONFIGS, MLP_CONFIGS, build_models, image_shape


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
    computes and discards them: that gives benchmarks/CONFIGS.md's 26.2 GFLOP for dcgan-32).

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
            its graph never reaches that forward pass. This is benchmarks/CONFIGS.md's 28.3 GFLOP (PyTorch) vs
            24.0 GFLOP (npgan) per wgan-gp-32 critic step.
    """
    shape = (batch_size,) + image_shape(config)
    G, D, nz = build_models(config)
    g_in = (batch_size, nz) if config in MLP_CONFIGS else (batch_size, nz, 1, 1)
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
        if config in GP_CONFIGS:
            flops += 4 * F_D - F_DL
            if library == "torch":
                flops += 2 * F_D
    elif phase == "generator":
        flops = 3 * F_G - F_G1 + 2 * F_D
    else:
        raise ValueError(f"unknown phase {phase!r} for {config}")
    return float(flops)
