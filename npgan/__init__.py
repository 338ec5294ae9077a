"""npgan: a minimal, readable autodiff framework on NumPy and CuPy for training GANs.

Importing it changes no process-wide setting; the machine tuning (BLAS threads, malloc) is switched on by
``npgan.runtime.enable()``, which the ``npgan`` command and ``Trainer.train()`` call.
"""

from npgan import functional  # noqa: F401  (installs Tensor's operators)
from npgan.autograd import (
    Function,
    Tensor,
    as_tensor,
    enable_grad,
    full,
    grad,
    is_grad_enabled,
    no_grad,
    ones,
    ones_like,
    rand,
    rand_like,
    randn,
    randn_like,
    set_grad_enabled,
    tensor,
    zeros,
    zeros_like,
)
from npgan.backend import cupy_available, get_rng_state, manual_seed, set_rng_state
from npgan.functional import cat, concatenate, stack, where
from npgan.gradcheck import gradcheck, gradgradcheck

__version__ = "0.1.0"

__all__ = [
    "Function", "Tensor", "as_tensor", "cat", "concatenate", "cupy_available", "enable_grad", "full",
    "get_rng_state", "grad", "gradcheck", "gradgradcheck", "is_grad_enabled", "manual_seed", "no_grad",
    "ones", "ones_like", "rand", "rand_like", "randn", "randn_like", "set_grad_enabled",
    "set_rng_state", "stack", "tensor", "where", "zeros", "zeros_like",
]
