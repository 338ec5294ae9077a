"""Pictures of training: sample grids, one PNG per sample, a GIF of progress, loss curves, 2D scatters.

Images are float NCHW in [-1, 1] (what a ``tanh`` generator outputs): NumPy or CuPy arrays or npgan
Tensors, copied to the host here. Pixels map linearly, -1 -> 0 (black) and 1 -> 255 (white); values
outside the range are clipped and NaN shows as black. Plots use matplotlib's Agg canvas directly (no
pyplot, no GUI, no global state); PNGs and GIFs are written with Pillow. Every file is written atomically:
a reader never sees a half-written picture, and a crash keeps the previous one.
"""

from __future__ import annotations

import math
import os

import numpy as np

from npgan import backend
from npgan.checkpoint import atomic_write
from npgan.graphviz import graph  # the computation graph behind a tensor, as Graphviz DOT (npgan/graphviz.py)

__all__ = ["graph", "make_grid", "plot_losses", "save_gif", "save_grid", "save_images", "scatter_2d", "to_uint8"]


def _to_host(x, what="images"):
    from npgan.autograd import Tensor  # noqa: PLC0415

    if isinstance(x, Tensor):
        x = x.data
    if backend.is_array(x):
        return backend.asnumpy(x)
    try:
        return np.asarray(x)
    except Exception as err:
        raise TypeError(f"{what} must be an array or a Tensor, got {type(x).__name__}") from err


def _check_images(images):
    images = _to_host(images)
    if images.ndim != 4 or images.shape[1] not in (1, 3) or images.shape[0] == 0:
        raise ValueError(f"images must have shape (N, C, H, W) with N >= 1 and C = 1 or 3, got {images.shape}")
    return images


def to_uint8(images):
    """Floats in [-1, 1] -> uint8 in [0, 255]: round((x + 1) * 127.5), clipped; NaN -> 0."""
    x = np.nan_to_num(np.asarray(images, dtype=np.float32), nan=-1.0, posinf=1.0, neginf=-1.0)
    return np.round((np.clip(x, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)


def make_grid(images, nrow=8, padding=2, pad_value=-1.0):
    """Tile ``images`` (N, C, H, W) in [-1, 1] into one uint8 picture of shape (H', W', C).

    ``nrow`` images per row (torchvision's convention), ``padding`` pixels of ``pad_value`` between and
    around them; empty cells of the last row are filled with ``pad_value`` too.
    """
    images = _check_images(images)
    if isinstance(nrow, bool) or not isinstance(nrow, (int, np.integer)) or nrow < 1:
        raise ValueError(f"nrow must be a positive int, got {nrow!r}")
    if isinstance(padding, bool) or not isinstance(padding, (int, np.integer)) or padding < 0:
        raise ValueError(f"padding must be a non-negative int, got {padding!r}")
    n, c, h, w = images.shape
    cols, rows = min(nrow, n), math.ceil(n / nrow)
    cell_h, cell_w = h + padding, w + padding
    grid = np.full((rows * cell_h + padding, cols * cell_w + padding, c), to_uint8(pad_value), dtype=np.uint8)
    tiles = to_uint8(images).transpose(0, 2, 3, 1)  # NCHW -> NHWC
    for k, tile in enumerate(tiles):
        top, left = padding + (k // nrow) * cell_h, padding + (k % nrow) * cell_w
        grid[top: top + h, left: left + w] = tile
    return grid


def _pillow():
    try:
        from PIL import Image  # noqa: PLC0415
    except ImportError as err:
        raise ImportError("npgan.viz writes PNG and GIF files with Pillow: pip install pillow") from err
    return Image


def _to_pil(picture):
    """A uint8 (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array as a Pillow image."""
    picture = np.asarray(picture)
    if picture.dtype != np.uint8:
        raise ValueError(f"pictures must be uint8 arrays (use to_uint8 for images in [-1, 1]), got {picture.dtype}")
    if picture.ndim == 3 and picture.shape[2] == 1:
        picture = picture[:, :, 0]
    if picture.ndim not in (2, 3) or (picture.ndim == 3 and picture.shape[2] not in (3, 4)):
        raise ValueError(f"pictures must have shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {picture.shape}")
    return _pillow().fromarray(np.ascontiguousarray(picture))


def _save_pil(image, path, image_format, **options):
    with atomic_write(path) as f:
        image.save(f, format=image_format, **options)
    return path


def save_grid(images, path, nrow=8, padding=2, pad_value=-1.0):
    """Write ``make_grid(images, ...)`` as a PNG at ``path``; returns ``path``."""
    return _save_pil(_to_pil(make_grid(images, nrow, padding, pad_value)), path, "PNG")


def save_images(images, directory, prefix="sample", start=0):
    """One PNG per image: ``directory/{prefix}_{index:05d}.png`` from ``start``; returns the paths."""
    tiles = to_uint8(_check_images(images)).transpose(0, 2, 3, 1)
    paths = []
    for k, tile in enumerate(tiles):
        path = os.path.join(os.fspath(directory), f"{prefix}_{start + k:05d}.png")
        paths.append(_save_pil(_to_pil(tile), path, "PNG"))
    return paths


def save_gif(frames, path, duration=200, loop=0):
    """An animated GIF of ``frames`` (PNG paths or uint8 pictures), ``duration`` ms per frame, looping forever.

    All frames must have the same size. Note that GIF writers merge consecutive identical frames into
    one longer frame, so an unchanged picture does not add a frame.
    """
    frames = list(frames)
    if not frames:
        raise ValueError("save_gif needs at least one frame")
    image_lib = _pillow()
    pictures = []
    for k, frame in enumerate(frames):
        if isinstance(frame, (str, os.PathLike)):
            with image_lib.open(frame) as image:
                image = image.convert("RGB")
        else:
            image = _to_pil(frame).convert("RGB")
        if pictures and image.size != pictures[0].size:
            raise ValueError(f"all GIF frames must have the same size: frame 0 is {pictures[0].size}, "
                             f"frame {k} is {image.size}")
        pictures.append(image)
    return _save_pil(pictures[0], path, "GIF", save_all=True, append_images=pictures[1:],
                     duration=duration, loop=loop)


# -- plots ------------------------------------------------------------------------------------------------

def _figure(figsize, constrained=True):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
        from matplotlib.figure import Figure  # noqa: PLC0415
    except ImportError as err:
        raise ImportError("npgan.viz draws plots with matplotlib: pip install matplotlib") from err
    figure = Figure(figsize=figsize, layout="constrained" if constrained else None)
    FigureCanvasAgg(figure)
    return figure


def _save_figure(figure, path, dpi=100):
    with atomic_write(path) as f:
        figure.savefig(f, format="png", dpi=dpi)
    return path


def _is_number(value):
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _series(metrics, x, keys):
    """{name: (xs, ys)} of the numeric columns of ``metrics`` (rows or a dict of lists), against ``x``."""
    if isinstance(metrics, dict):
        columns = {k: list(v) for k, v in metrics.items()}
        length = max((len(v) for v in columns.values()), default=0)
        rows = [{k: v[i] for k, v in columns.items() if i < len(v)} for i in range(length)]
    else:
        rows = list(metrics)
        if not all(isinstance(row, dict) for row in rows):
            raise TypeError("metrics must be a list of dicts (rows) or a dict of lists (columns)")
    if keys is None:
        keys = []
        for row in rows:
            keys.extend(k for k, v in row.items() if k != x and k not in keys and _is_number(v))
    series = {}
    for key in keys:
        xs, ys = [], []
        for i, row in enumerate(rows):
            value = row.get(key)
            if _is_number(value) and math.isfinite(value):
                xs.append(row.get(x, i) if _is_number(row.get(x)) else i)
                ys.append(float(value))
        if xs:
            series[key] = (xs, ys)
    return series


def plot_losses(metrics, path, x="step", keys=None, title="Training losses", logy=False):
    """Loss curves against ``x`` (default ``step``; the row index when absent) as a PNG; returns ``path``.

    ``metrics`` is a list of dicts (one row per logging step, as a trainer logs them) or a dict of lists.
    Every numeric column but ``x`` is a series unless ``keys`` picks them; rows missing a key (a loss
    logged less often) and non-finite values are skipped.
    """
    series = _series(metrics, x, keys)
    if not series:
        raise ValueError(f"no numeric series to plot in the metrics (keys={keys}, x={x!r})")
    figure = _figure((7, 4))
    ax = figure.add_subplot()
    for name, (xs, ys) in series.items():
        ax.plot(xs, ys, label=name, linewidth=1.2)
    ax.set_xlabel(x)
    ax.set_ylabel("loss")
    if logy:
        ax.set_yscale("symlog")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    return _save_figure(figure, path)


def scatter_2d(real, fake, path, modes=None, title=None, limits=None):
    """Real and generated 2D points on one square plot (the toys' picture of mode collapse); returns ``path``.

    ``modes`` is a (K, 2) array of mode means or ``toy_modes(name)``'s ``(means, std)``; the means are
    marked and, with a std, circled at 3 std (the "high-quality sample" radius of the VEEGAN metrics).
    """
    real, fake = _to_host(real, "real"), _to_host(fake, "fake")
    for name, points in (("real", real), ("fake", fake)):
        if points.ndim != 2 or points.shape[1] != 2:
            raise ValueError(f"{name} points must have shape (N, 2), got {points.shape}")
    means, std = (modes if isinstance(modes, tuple) else (modes, None))
    figure = _figure((5, 5), constrained=False)  # fixed margins: a two-line title and the legend below fit
    figure.subplots_adjust(left=0.14, right=0.96, bottom=0.17, top=0.88)
    ax = figure.add_subplot()
    # Points as a line's markers, not ax.scatter: the same dots drawn in half the time (a toy run draws a
    # picture every 100 steps by default).
    ax.plot(real[:, 0], real[:, 1], "o", ms=2, mew=0, alpha=0.4, color="tab:blue", label="real")
    ax.plot(fake[:, 0], fake[:, 1], "o", ms=2, mew=0, alpha=0.6, color="tab:orange", label="generated")
    if means is not None:
        means = _to_host(means, "modes")
        ax.plot(means[:, 0], means[:, 1], "x", ms=5.5, color="black", label="modes")
        if std:  # one collection of circles, 3 std in data units (25 Circle patches took longer to lay out)
            from matplotlib.collections import EllipseCollection  # noqa: PLC0415

            diameters = np.full(len(means), 6.0 * std)
            ax.add_collection(EllipseCollection(diameters, diameters, np.zeros(len(means)), units="xy", offsets=means,
                                                offset_transform=ax.transData, facecolors="none",
                                                edgecolors="black", linewidths=0.5, alpha=0.5))
    if limits is not None:
        ax.set_xlim(*limits)
        ax.set_ylim(*limits)
    ax.set_aspect("equal", adjustable="datalim" if limits is None else "box")
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    if title:
        ax.set_title(title)
    figure.legend(loc="lower center", ncols=3, markerscale=2, frameon=False)  # keep points visible
    return _save_figure(figure, path)
