"""nn.functional_call: a module run with substituted weights, graph and all (npgan/nn/stateless.py)."""

import numpy as np
import pytest

import npgan
import npgan.nn as nn


def critic():
    npgan.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.LeakyReLU(0.2), nn.Linear(4, 1))


def snapshot(module):
    """Every parameter and buffer: the Tensor object and a copy of its array."""
    entries = list(module.named_parameters()) + list(module.named_buffers())
    return [(name, t, t.data.copy()) for name, t in entries]


def assert_untouched(module, before):
    after = dict(list(module.named_parameters()) + list(module.named_buffers()))
    assert list(after) == [name for name, _, _ in before]
    for name, t, array in before:
        assert after[name] is t, f"{name} was replaced"
        assert np.array_equal(t.data, array), f"{name} changed"


def test_substituted_weights_give_the_output_of_a_module_holding_them():
    D = critic()
    x = npgan.randn(5, 3)
    new = {name: p * 1.5 + 0.1 for name, p in D.named_parameters()}
    out = nn.functional_call(D, new, x)
    copy = critic()
    copy.load_state_dict({**D.state_dict(), **{name: t.data for name, t in new.items()}})
    assert np.allclose(out.data, copy(x).data, rtol=1e-6, atol=1e-6)


def test_gradients_flow_back_to_what_produced_the_substitutes():
    D = critic()
    x = npgan.randn(5, 3)
    scale = npgan.tensor(2.0, requires_grad=True)
    new = {"3.weight": D[3].weight * scale}
    out = nn.functional_call(D, new, x).sum()
    (grad_scale,) = npgan.grad(out, scale)
    # d/ds sum(h W^T s + b) = sum(h W^T), with h the input of the last layer
    h = D[2](D[1](D[0](x)))
    assert np.allclose(grad_scale.data, (h @ D[3].weight.T).sum().data, rtol=1e-5)
    assert D[3].weight.grad is None  # the module's own weight is not in this graph


def test_the_module_keeps_its_own_parameters_and_buffers_including_batchnorm_statistics():
    D = critic()
    before = snapshot(D)
    new = {name: p + 1.0 for name, p in D.named_parameters()}
    new["1.running_mean"] = npgan.ones(4)
    nn.functional_call(D, new, npgan.randn(6, 3))  # training mode: BatchNorm would update its statistics
    assert_untouched(D, before)
    nn.functional_call(D, {}, npgan.randn(6, 3))
    assert_untouched(D, before)
    D(npgan.randn(6, 3))  # outside functional_call the statistics move again
    assert int(D[1].num_batches_tracked.data) == 1
    assert not np.array_equal(D[1].running_mean.data, before[4][2])


def test_batchnorm_in_training_mode_still_normalises_with_the_batch_statistics_inside():
    D = critic()
    x = npgan.randn(8, 3)
    inside = nn.functional_call(D, {}, x)
    assert np.allclose(inside.data, D(x).data, rtol=1e-6, atol=1e-6)


def test_substituted_buffers_are_used_in_eval_mode():
    D = critic().eval()
    x = npgan.randn(4, 3)
    shifted = nn.functional_call(D, {"1.running_mean": npgan.full((4,), 0.5)}, x)
    D[1].running_mean.data[...] = 0.5
    assert np.allclose(shifted.data, D(x).data)


def test_the_module_is_restored_when_the_forward_pass_raises():
    D = critic()
    before = snapshot(D)
    with pytest.raises(ValueError, match="features"):
        nn.functional_call(D, {"0.weight": D[0].weight * 2.0}, npgan.randn(4, 5))
    assert_untouched(D, before)
    D(npgan.randn(4, 3))  # and BatchNorm updates its statistics again afterwards
    assert int(D[1].num_batches_tracked.data) == 1


def test_an_unknown_name_is_a_key_error_listing_the_valid_names():
    D = critic()
    with pytest.raises(KeyError, match=r"'main\.0\.weight'.*"
                       r"parameters are 0\.weight, 0\.bias, 1\.weight, 1\.bias, 3\.weight, 3\.bias; "
                       r"its buffers are 1\.running_mean"):
        nn.functional_call(D, {"main.0.weight": npgan.zeros(4, 3)}, npgan.randn(2, 3))


def test_a_wrong_shape_is_a_value_error_naming_both_shapes():
    D = critic()
    with pytest.raises(ValueError, match=r"params\['0\.weight'\] has shape \(3, 4\).*\(4, 3\)"):
        nn.functional_call(D, {"0.weight": npgan.zeros(3, 4)}, npgan.randn(2, 3))


def test_substitutes_must_be_tensors_and_the_module_a_module():
    D = critic()
    with pytest.raises(TypeError, match="must be a Tensor"):
        nn.functional_call(D, {"0.bias": np.zeros(4, dtype=np.float32)}, npgan.randn(2, 3))
    with pytest.raises(TypeError, match="expected a Module"):
        nn.functional_call(lambda x: x, {}, npgan.randn(2, 3))


def test_second_derivatives_through_substituted_weights_match_finite_differences():
    npgan.manual_seed(1)
    D = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1)).double()
    x = npgan.randn(4, 2, dtype="float64")
    names = [name for name, _ in D.named_parameters()]

    def one_sgd_step_then_score(*weights):
        params = dict(zip(names, weights))
        loss = (nn.functional_call(D, params, x) ** 2).mean()
        grads = npgan.grad(loss, list(weights), create_graph=True)
        stepped = {name: w - 0.5 * g for name, w, g in zip(names, weights, grads)}
        return nn.functional_call(D, stepped, x).sum()

    weights = [npgan.tensor(p.data.copy(), requires_grad=True) for p in D.parameters()]
    assert npgan.gradcheck(one_sgd_step_then_score, weights)


def test_functional_call_matches_torch_func_functional_call():
    torch = pytest.importorskip("torch")
    D = critic()
    t_D = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.LeakyReLU(0.2),
                              torch.nn.Linear(4, 1))
    t_D.load_state_dict({k: torch.tensor(v) for k, v in D.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)
    new = {name: p.data * 0.5 for name, p in D.named_parameters()}
    ours = nn.functional_call(D, {k: npgan.tensor(v) for k, v in new.items()}, npgan.tensor(x))
    theirs = torch.func.functional_call(t_D, {k: torch.tensor(v) for k, v in new.items()}, (torch.tensor(x),))
    assert np.allclose(ours.data, theirs.detach().numpy(), rtol=1e-5, atol=1e-6)
