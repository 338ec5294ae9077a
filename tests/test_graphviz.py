"""Pictures of the computation graph: npgan.viz.graph (npgan/graphviz.py)."""

import re
import shutil

import pytest

import npgan
from npgan import nn, viz
from npgan.gan.losses import gradient_penalty


def tiny_critic():
    npgan.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 4, 2, 1), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(2 * 4 * 4, 1))


def mlp_loss():
    npgan.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
    x = npgan.randn(4, 2, requires_grad=True)
    return model, (model(x) * 2.0).mean()


def edges_by_label(dot):
    """The DOT text's edges as (source, target) pairs of node labels (the label's first line and the shape)."""
    labels = dict(re.findall(r'^\s*(n\d+) \[label="([^"]*)"', dot, re.MULTILINE))
    short = {node: label.replace("\\n", " ").removesuffix(" float32") for node, label in labels.items()}
    edges = re.findall(r"^\s*(n\d+) -> (n\d+);", dot, re.MULTILINE)
    return sorted((short[a], short[b]) for a, b in edges)


# mlp_loss's graph, by hand: (Linear(2, 3) -> Tanh -> Linear(3, 1))(x) * 2, then the mean as sum * 1/4
MLP_EDGES = sorted([
    ("leaf (requires grad) (4, 2)", "Linear (4, 3)"), ("0.weight (3, 2)", "Linear (4, 3)"),
    ("0.bias (3,)", "Linear (4, 3)"), ("Linear (4, 3)", "Tanh (4, 3)"), ("Tanh (4, 3)", "Linear (4, 1)"),
    ("2.weight (1, 3)", "Linear (4, 1)"), ("2.bias (1,)", "Linear (4, 1)"), ("Linear (4, 1)", "Mul (4, 1)"),
    ("constant 2 ()", "Mul (4, 1)"), ("Mul (4, 1)", "Sum ()"), ("Sum ()", "Mul ()"), ("constant 0.25 ()", "Mul ()"),
    ("Mul ()", "output ()")])


def test_the_edges_run_from_each_input_to_the_op_that_read_it():
    model, loss = mlp_loss()
    assert edges_by_label(viz.graph(loss, model).dot) == MLP_EDGES


def test_graph_lists_the_ops_in_the_order_they_ran():
    model, loss = mlp_loss()
    assert viz.graph(loss).ops == ["Linear", "Tanh", "Linear", "Mul", "Sum", "Mul"]


def test_an_unfused_model_shows_the_layers_as_written_and_a_fused_one_its_fused_op():
    npgan.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 3), nn.LeakyReLU(0.2), nn.Linear(3, 1), nn.ReLU())
    x = npgan.randn(4, 2)
    assert viz.graph(model(x).sum()).ops == ["Linear", "LeakyReLU", "Linear", "LeakyReLU", "Sum"]  # ReLU: slope 0
    dot = viz.graph(model(x).sum(), model).dot
    assert '"Linear\\n(4, 3) float32"' in dot and '"LeakyReLU\\n(4, 3) float32"' in dot
    nn.fuse(model)
    assert viz.graph(model(x).sum()).ops == ["LinearLeakyReLU", "LinearLeakyReLU", "Sum"]


def test_dot_text_names_ops_shapes_dtypes_and_marks_leaves_parameters_and_constants():
    model, loss = mlp_loss()
    dot = viz.graph(loss, model).dot
    assert dot.startswith("digraph npgan {") and dot.rstrip().endswith("}")
    assert '"Linear\\n(4, 3) float32"' in dot and '"Tanh\\n(4, 3) float32"' in dot
    assert '"0.weight\\n(3, 2) float32"' in dot and '"2.bias\\n(1,) float32"' in dot  # parameter names
    assert '"leaf (requires grad)\\n(4, 2) float32"' in dot
    assert '"constant 2\\n() float32"' in dot and '"constant 0.25\\n() float32"' in dot  # mean = sum * 1/N
    assert '"output\\n() float32"' in dot
    assert dot.count("->") == 3 + 1 + 3 + 2 + 1 + 2 + 1  # each op's inputs, and the output's edge


def test_parameters_without_a_module_are_marked_parameter_and_a_leaf_keeps_its_name():
    model, loss = mlp_loss()
    dot = viz.graph(loss).dot
    assert '"parameter\\n(3, 2) float32"' in dot and "0.weight" not in dot
    x = npgan.randn(3, requires_grad=True)
    x.name = "x"
    assert '"x\\n(3,) float32"' in viz.graph((x * x).sum()).dot


def test_a_tensor_used_twice_is_one_node_with_two_edges():
    x = npgan.randn(3, requires_grad=True)
    dot = viz.graph(x * x).dot
    assert dot.count("leaf (requires grad)") == 1
    assert dot.count("n1 -> n0;") == 2


def test_a_leaf_alone_is_a_one_node_graph():
    graph = viz.graph(npgan.randn(2, 2, requires_grad=True))
    assert graph.ops == [] and graph.dot.count("label=") == 1


def test_the_gradient_penaltys_graph_runs_through_the_critics_backward_ops_and_weights():
    critic = tiny_critic()
    penalty = gradient_penalty(critic, npgan.randn(4, 1, 8, 8), npgan.randn(4, 1, 8, 8))
    graph = viz.graph(penalty, critic)
    # d critic / dx is built from the backward ops of Linear (LinearGrad), LeakyReLU and Conv2d
    assert {"LinearGrad", "LeakyReLUGrad", "ConvTranspose2d"} <= set(graph.ops)
    assert "Conv2d\\n" not in graph.dot  # a piecewise-linear critic: the forward pass is not in it
    assert '"0.weight\\n(2, 1, 4, 4) float32"' in graph.dot and '"3.weight\\n(1, 32) float32"' in graph.dot
    assert "ConvTranspose2d x1" in repr(graph)


def test_a_graph_freed_by_backward_cannot_be_drawn():
    model, loss = mlp_loss()
    loss.backward()
    with pytest.raises(RuntimeError, match="freed by backward"):
        viz.graph(loss)


def test_a_deep_chain_is_walked_without_recursion():
    x = npgan.randn(2, requires_grad=True)
    y = x
    for _ in range(1500):  # deeper than Python's default recursion limit (1000)
        y = y * 1.0
    assert len(viz.graph(y).ops) == 1500


def test_graph_refuses_what_is_not_a_tensor():
    with pytest.raises(TypeError, match="takes a Tensor, got list"):
        viz.graph([1.0, 2.0])


@pytest.mark.parametrize("extension", [".dot", ".gv"])
def test_save_writes_dot_text_of_the_whole_graph(tmp_path, extension):
    model, loss = mlp_loss()
    path = viz.graph(loss, model).save(tmp_path / f"loss{extension}")
    assert path == tmp_path / f"loss{extension}"
    text = path.read_text()
    assert text.startswith("digraph npgan {") and text.rstrip().endswith("}")
    assert edges_by_label(text) == MLP_EDGES
    assert str(viz.graph(loss, model)) == text  # print(graph) shows the same text


def test_save_refuses_an_unknown_file_type(tmp_path):
    with pytest.raises(ValueError, match=r"unknown file type '\.jpg'.*\.dot, \.gv, \.svg, \.png, \.pdf"):
        viz.graph(npgan.randn(2)).save(tmp_path / "g.jpg")


def test_save_says_what_to_install_when_graphviz_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="needs Graphviz's `dot` program.*apt-get install graphviz"):
        viz.graph(npgan.randn(2)).save(tmp_path / "g.svg")
    assert not (tmp_path / "g.svg").exists()


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot program is not installed")
@pytest.mark.parametrize("extension, magic", [(".svg", b"<svg"), (".png", b"\x89PNG")])
def test_save_renders_pictures_with_graphviz(tmp_path, extension, magic):
    model, loss = mlp_loss()
    data = viz.graph(loss, model).save(tmp_path / f"loss{extension}").read_bytes()
    assert magic in data[:400]
