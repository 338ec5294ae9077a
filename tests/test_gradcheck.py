"""The checker itself (npgan/gradcheck.py): it passes right gradients and catches wrong ones."""

import numpy as np
import pytest

import npgan
import npgan.functional as F
from npgan.gradcheck import GradcheckError


def inputs(*shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [npgan.tensor(rng.standard_normal(s), requires_grad=True) for s in shapes]


class Exp(npgan.Function):
    def forward(self, x):
        return np.exp(x)

    def backward(self, gy):
        return gy * self.output()


class ExpWithDoubledGradient(Exp):
    def backward(self, gy):
        return gy * self.output() * 2.0  # wrong: d/dx e^x is e^x


class ExpWrongAtOneElement(Exp):
    def backward(self, gy):
        offset = np.zeros(self.inputs[0].shape)
        offset[1, 2] = 1.0
        return gy * self.output() + npgan.Tensor(offset)


class MulWithWrongSecondGradient(npgan.Function):
    def forward(self, a, b):
        return a * b

    def backward(self, gy):
        a, b = self.inputs
        return gy * b, gy * a * 3.0  # wrong for b only


class SquareWithConstantGradient(npgan.Function):
    """Right to first order, but its gradient is built from raw arrays: it cannot be differentiated."""

    def forward(self, x):
        return x * x

    def backward(self, gy):
        return gy * npgan.Tensor(2.0 * self.inputs[0].data)


def exp(x):
    return Exp()(x)


def exp_with_doubled_gradient(x):
    return ExpWithDoubledGradient()(x)


def exp_wrong_at_one_element(x):
    return ExpWrongAtOneElement()(x)


def mul_with_wrong_second_gradient(a, b):
    return MulWithWrongSecondGradient()(a, b)


def square_with_constant_gradient(x):
    return SquareWithConstantGradient()(x)


def test_gradcheck_passes_a_correct_function():
    assert npgan.gradcheck(exp, inputs((2, 3))) is True


def test_gradcheck_passes_functions_with_several_inputs_and_outputs():
    assert npgan.gradcheck(lambda a, b: (a * b, F.tanh(a) + b), inputs((2, 3), (3,)))


def test_gradcheck_raises_on_a_wrong_gradient_naming_function_input_and_worst_element():
    with pytest.raises(GradcheckError, match=r"exp_with_doubled_gradient.*input 0.*worst element \(\d, \d\)"):
        npgan.gradcheck(exp_with_doubled_gradient, inputs((2, 3)))


def test_gradcheck_names_the_element_that_is_wrong():
    with pytest.raises(GradcheckError, match=r"worst element \(1, 2\).*1 of 6 elements off"):
        npgan.gradcheck(exp_wrong_at_one_element, inputs((2, 3)))


def test_gradcheck_names_the_input_whose_gradient_is_wrong():
    with pytest.raises(GradcheckError, match="input 1"):
        npgan.gradcheck(mul_with_wrong_second_gradient, inputs((2,), (2,)))


def test_gradcheck_only_checks_inputs_that_require_grad():
    a, b = inputs((2,), (2,))
    b.requires_grad = False
    assert npgan.gradcheck(mul_with_wrong_second_gradient, [a, b])


def test_gradcheck_errors_are_assertion_errors_and_can_be_returned_as_false():
    assert issubclass(GradcheckError, AssertionError)
    assert npgan.gradcheck(exp_with_doubled_gradient, inputs((3,)), raise_exception=False) is False


def test_gradcheck_rejects_float32_inputs():
    x = npgan.randn(3, requires_grad=True)
    with pytest.raises(ValueError, match="float64"):
        npgan.gradcheck(exp, [x])


def test_gradcheck_rejects_inputs_of_which_none_requires_grad():
    with pytest.raises(ValueError, match="requires_grad"):
        npgan.gradcheck(exp, [npgan.tensor(np.zeros(3))])


def test_gradcheck_restores_the_input_values():
    (x,) = inputs((2, 3))
    before = x.numpy().copy()
    npgan.gradcheck(exp, [x])
    np.testing.assert_array_equal(x.numpy(), before)


def test_gradgradcheck_passes_a_correct_function():
    assert npgan.gradgradcheck(exp, inputs((2, 3))) is True


def test_gradgradcheck_catches_a_gradient_that_is_right_but_not_differentiable():
    x = inputs((2, 3))
    assert npgan.gradcheck(square_with_constant_gradient, x)  # first order is fine
    with pytest.raises(GradcheckError, match=r"grad of square_with_constant_gradient.*input 0"):
        npgan.gradgradcheck(square_with_constant_gradient, x)


def test_gradgradcheck_catches_a_wrong_first_derivative_too():
    with pytest.raises(GradcheckError):
        npgan.gradgradcheck(exp_with_doubled_gradient, inputs((3,)))
