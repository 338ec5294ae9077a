"""Pictures of the computation graph behind a tensor, as Graphviz DOT text (``npgan.viz.graph``).

The graph is the one ``backward()`` walks: every ``Function`` that recorded itself as the ``creator`` of
a tensor, and through its ``inputs`` the tensors it read, down to the leaves. Data flows top to bottom:

- a **leaf** that requires a gradient (blue) or a module's **parameter** (green, with its name when the
  module is given) at the top, constants (no gradient) in white with their value when they hold one number;
- one rounded box per op (the Function's class name) with the shape and dtype of what it produced;
- the tensor drawn at the bottom (orange).

``graph(t).dot`` is the text; ``graph(t).save("g.svg")`` renders it with Graphviz's ``dot`` program
(``.svg``, ``.png``, ``.pdf``), or writes the text (``.dot``, ``.gv``) with no program needed.
"""

from __future__ import annotations

import collections
import os
import shutil
import subprocess

from npgan import backend
from npgan.autograd import Tensor, _topological_order

__all__ = ["Graph", "graph"]

RENDERED = (".svg", ".png", ".pdf")
TEXT = (".dot", ".gv")
INSTALL_HINT = ("install Graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz; "
                "conda: conda install graphviz), or save the text with a .dot path")

_STYLE = {  # node kind -> DOT attributes
    "op": 'shape=box, style="rounded,filled", fillcolor="#eeeeee"',
    "parameter": 'shape=box, style=filled, fillcolor="#c8e6c9"',
    "leaf": 'shape=box, style=filled, fillcolor="#bbdefb"',
    "constant": 'shape=box, style=dashed',
    "output": 'shape=box, style=filled, fillcolor="#ffcc80"',
}


class Graph:
    """The DOT text of a computation graph (``.dot``) and the ops in it (``.ops``, each after the ops whose
    results it reads).

    >>> g = npgan.viz.graph(y); print(g.dot); g.save("graph.svg")
    """

    def __init__(self, dot: str, ops: list[str]):
        self.dot = dot
        self.ops = ops

    def __str__(self) -> str:
        return self.dot

    def __repr__(self) -> str:
        counts = collections.Counter(self.ops)
        return f"Graph({len(self.ops)} ops: " + ", ".join(f"{k} x{v}" for k, v in sorted(counts.items())) + ")"

    def save(self, path):
        """Write the graph to ``path``: DOT text for ``.dot``/``.gv``, a picture for ``.svg``/``.png``/``.pdf``.

        Pictures need Graphviz's ``dot`` program on the PATH; without it a RuntimeError says what to install.
        Returns ``path``.
        """
        from npgan.checkpoint import atomic_write  # noqa: PLC0415  (checkpoint pulls in more than this needs)

        extension = os.path.splitext(os.fspath(path))[1].lower()
        if extension in TEXT:
            data = self.dot.encode("utf-8")
        elif extension in RENDERED:
            data = _render(self.dot, extension[1:])
        else:
            raise ValueError(f"Graph.save: unknown file type {extension or '(none)'!r} in {os.fspath(path)!r}; "
                             f"expected one of {', '.join(TEXT + RENDERED)}")
        with atomic_write(path) as f:
            f.write(data)
        return path


def _render(dot: str, file_format: str) -> bytes:
    program = shutil.which("dot")
    if program is None:
        raise RuntimeError(f"Graph.save: drawing a .{file_format} needs Graphviz's `dot` program, which is not "
                           f"on the PATH: {INSTALL_HINT}")
    result = subprocess.run([program, f"-T{file_format}"], input=dot.encode("utf-8"), capture_output=True,
                            check=False)
    if result.returncode != 0:
        raise RuntimeError(f"Graph.save: Graphviz's dot failed: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _describe(shape, dtype) -> str:
    return f"{tuple(shape)} {dtype}"


def graph(tensor: Tensor, module=None) -> Graph:
    """The computation graph behind ``tensor`` as a ``Graph`` (DOT text in ``.dot``, ``.save(path)``).

    ``module``: an ``nn.Module`` whose parameters are labelled with their names (``0.weight``); other
    parameters are labelled ``parameter``. Draw a graph before ``backward()`` frees it (or pass
    ``retain_graph=True`` to backward).

    >>> x = npgan.randn(4, 3, requires_grad=True); npgan.viz.graph((x * 2.0).sum()).ops
    ['Mul', 'Sum']
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"npgan.viz.graph takes a Tensor, got {type(tensor).__name__}")
    from npgan.nn.module import Parameter  # noqa: PLC0415  (nn imports the ops, which import autograd)

    names = {id(p): name for name, p in module.named_parameters()} if module is not None else {}
    ids: dict[int, str] = {}
    lines = ["digraph npgan {", '    node [fontname="Helvetica", fontsize=10];',
             '    edge [arrowsize=0.6];']

    def node_id(obj) -> str:
        if id(obj) not in ids:
            ids[id(obj)] = f"n{len(ids)}"
        return ids[id(obj)]

    def add_leaf(t: Tensor) -> str:
        known = id(t) in ids
        name = node_id(t)
        if known:
            return name
        if id(t) in names or isinstance(t, Parameter):
            kind, title = "parameter", names.get(id(t), "parameter")
        elif t.requires_grad:
            kind, title = "leaf", t.name or "leaf (requires grad)"
        else:
            kind = "constant"
            value = backend.asnumpy(t.data).reshape(-1)[0].item() if t.data.size == 1 else None
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            title = f"constant {value:g}" if number else "constant"
        label = f"{title}\n{_describe(t.shape, t.dtype)}"
        lines.append(f"    {name} [label={_quote(label)}, {_STYLE[kind]}];")
        return name

    functions = _functions_in_order(tensor)
    for fn in functions:
        label = "\n".join([type(fn).__name__] + [_describe(shape, dtype) for shape, dtype in fn._output_meta])
        lines.append(f"    {node_id(fn)} [label={_quote(label)}, {_STYLE['op']}];")
    for fn in functions:
        for x in fn.inputs:
            source = node_id(x.creator) if x.creator is not None else add_leaf(x)
            label = f' [label="{x.output_index}"]' if x.creator is not None and len(x.creator._output_meta) > 1 else ""
            lines.append(f"    {source} -> {node_id(fn)}{label};")
    out = f"n{len(ids)}"
    title = "output" if tensor.creator is not None else ("parameter" if isinstance(tensor, Parameter) else "tensor")
    label = f"{title}\n{_describe(tensor.shape, tensor.dtype)}"
    lines.append(f"    {out} [label={_quote(label)}, {_STYLE['output']}];")
    if tensor.creator is not None:
        lines.append(f"    {node_id(tensor.creator)} -> {out};")
    lines.append("}")
    return Graph("\n".join(lines) + "\n", [type(fn).__name__ for fn in functions])


def _functions_in_order(tensor: Tensor) -> list:
    """The Functions behind ``tensor``, each after the creators of its inputs: the order ``backward()`` walks
    them in, reversed."""
    if tensor.creator is None:
        return []
    return _topological_order([tensor.creator], freed_message=(
        "npgan.viz.graph: this graph was freed by backward(); draw it before calling backward(), or pass "
        "retain_graph=True to backward()"))
