"""What the PyTorch cross-checks of npgan's layers share: the tolerance, copying weights, one comparison.

Tolerance: both libraries sum the same K products in float32 in different orders. A K-term float32 sum
carries a rounding error of about sqrt(K) * 6e-8 times the magnitude of its terms; K reaches 4096 in these
tests (256 channels x 4x4 kernel), i.e. ~4e-6 of the output's scale. We allow rtol 1e-4 and an absolute
tolerance of 2e-5 times the largest magnitude of the reference (elements that cancel to ~0 have errors of
the scale of the terms, not of themselves). A wrong layout, index or transposed kernel is off by O(1).
"""

import numpy as np
import pytest

import npgan

torch = pytest.importorskip("torch")


def assert_close(actual, expected, what=""):
    expected = np.asarray(expected)
    scale = max(float(np.abs(expected).max()), 1e-30) if expected.size else 1.0
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=2e-5 * scale, err_msg=what)


def copy_to_torch(ours, theirs):
    """npgan -> torch through state_dict: every name and shape must match."""
    theirs.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in ours.state_dict().items()}, strict=True)


def copy_from_torch(theirs, ours):
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()}, strict=True)


def compare(ours, theirs, shape, seed=0, integer_input=None, input_scale=1.0, input_shift=0.0, buffers=False):
    """Forward values and the gradients of the input and every parameter, for a random upstream gradient.

    The input is ``N(0, 1) * input_scale + input_shift`` (or integers below ``integer_input``, for
    embeddings); ``buffers`` also compares every buffer afterwards (running statistics). Copy the weights
    first (``copy_to_torch``) where the layer has any.
    """
    rng = np.random.default_rng(seed)
    if integer_input is not None:
        x_np = rng.integers(0, integer_input, shape)
        x, xt = npgan.tensor(x_np), torch.from_numpy(x_np)
    else:
        x_np = (rng.standard_normal(shape) * input_scale + input_shift).astype(np.float32)
        x, xt = npgan.tensor(x_np, requires_grad=True), torch.tensor(x_np, requires_grad=True)
    y, yt = ours(x), theirs(xt)
    assert y.shape == tuple(yt.shape) and y.dtype == np.float32
    assert_close(y.numpy(), yt.detach().numpy(), "forward")
    g = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(npgan.tensor(g))
    yt.backward(torch.from_numpy(g))
    if integer_input is None:
        assert x.grad.dtype == np.float32
        assert_close(x.grad.numpy(), xt.grad.numpy(), "input gradient")
    their_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        assert p.grad.dtype == np.float32
        assert_close(p.grad.numpy(), their_params[name].grad.numpy(), f"gradient of {name}")
    if buffers:
        their_buffers = dict(theirs.named_buffers())
        for name, buffer in ours.named_buffers():
            assert_close(np.asarray(buffer.numpy()), their_buffers[name].numpy(), name)
