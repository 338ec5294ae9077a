import json
import os
import zipfile

import numpy as np
import pytest

import npgan
from npgan import checkpoint
from npgan.checkpoint import atomic_write, load_checkpoint, save_checkpoint


def _state():
    rng = np.random.default_rng(1234)
    rng.standard_normal(7)  # move the state away from the seed's
    return {
        "generator": {"0.weight": rng.standard_normal((4, 3)).astype(np.float32),
                      "0.bias": np.zeros(4, dtype=np.float32),
                      "1.running_mean": np.arange(3, dtype=np.float64)},
        "opt_g": {
            "state": {0: {"step": 12, "exp_avg": np.full((4, 3), 0.5, dtype=np.float32)},
                      1: {"step": 12, "exp_avg": np.ones(4, dtype=np.float32)}},
            "param_groups": [{"lr": 2e-4, "betas": (0.5, 0.999), "params": [0, 1], "amsgrad": False}],
        },
        "step": 1200,
        "loss": np.float32(0.25),
        "counts": np.arange(5, dtype=np.int64),
        "labels": np.array([1, 2, 3], dtype=np.uint8),
        "flags": np.array([True, False]),
        "rng": rng.bit_generator.state,
        "config": {"name": "dcgan", "dataset": None, "lr": 0.0002, "resume": True, "sizes": [1, 2.5, -3],
                   "huge": 2 ** 100, "nan": float("nan")},
        "empty": {},
        "mixed_list": [np.ones(2, dtype=np.float32), "text", None],
    }


def _assert_same(a, b, where="state"):
    assert type(a) is type(b), f"{where}: {type(a)} != {type(b)}"
    if isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys differ"
        for k in a:
            _assert_same(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}/{i}")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, f"{where}: {a.dtype}{a.shape} != {b.dtype}{b.shape}"
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b)
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"
        if isinstance(a, np.generic):
            assert a.dtype == b.dtype


def test_round_trip_keeps_structure_types_and_dtypes(tmp_path):
    state = _state()
    path = tmp_path / "ckpt.npz"
    assert save_checkpoint(path, state) == path
    loaded = load_checkpoint(path)
    _assert_same(state, loaded)
    assert loaded["generator"]["0.weight"].dtype == np.float32
    assert loaded["counts"].dtype == np.int64
    assert isinstance(loaded["loss"], np.float32)
    assert isinstance(loaded["opt_g"]["param_groups"][0]["betas"], tuple)
    assert list(loaded["opt_g"]["state"]) == [0, 1]  # integer keys stay integers


def test_pcg64_state_with_128_bit_integers_restores_the_stream(tmp_path):
    rng = np.random.default_rng(2024)
    rng.random(3)
    state = rng.bit_generator.state
    assert state["state"]["state"] > 2 ** 64  # the reason JSON must keep big integers exact
    save_checkpoint(tmp_path / "rng.npz", {"rng": state})
    expected = rng.random(5)
    restored = np.random.default_rng()
    restored.bit_generator.state = load_checkpoint(tmp_path / "rng.npz")["rng"]
    np.testing.assert_array_equal(restored.random(5), expected)


def test_arrays_are_npz_members_named_by_path_and_metadata_is_json(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(path, {"generator": {"0.weight": np.ones((2, 2), np.float32)}, "step": 3})
    with np.load(path, allow_pickle=False) as npz:
        assert "generator/0.weight" in npz.files
        meta = json.loads(npz[checkpoint.META_KEY].tobytes().decode())
    assert meta["format"] == "npgan-checkpoint"
    assert meta["state"]["step"] == 3


def test_loading_never_needs_pickle(tmp_path, monkeypatch):
    path = tmp_path / "c.npz"
    save_checkpoint(path, _state())
    calls = []
    real_load = np.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("allow_pickle"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(checkpoint.np, "load", spy)
    load_checkpoint(path)
    assert calls == [False]
    with zipfile.ZipFile(path) as zf:  # no member is an object array (those would need pickle)
        for name in zf.namelist():
            with zf.open(name) as f:
                header = f.read(128)
            assert b"'descr': '|O'" not in header, name


def test_tensors_are_stored_as_host_arrays(tmp_path):
    t = npgan.tensor([1.0, 2.0])
    save_checkpoint(tmp_path / "t.npz", {"fixed_noise": t})
    loaded = load_checkpoint(tmp_path / "t.npz")["fixed_noise"]
    assert isinstance(loaded, np.ndarray) and loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, [1.0, 2.0])


@pytest.mark.parametrize("bad, fragment", [
    ({"model": {"w": object()}}, "model/w"),
    ({"s": {1, 2}}, "set"),
    ({"o": np.array([None, 1], dtype=object)}, "object array"),
])
def test_unstorable_leaves_raise_type_error_naming_their_path(tmp_path, bad, fragment):
    with pytest.raises(TypeError, match=fragment):
        save_checkpoint(tmp_path / "bad.npz", bad)
    assert not os.listdir(tmp_path)


def test_state_must_be_a_dict(tmp_path):
    with pytest.raises(TypeError, match="dict"):
        save_checkpoint(tmp_path / "x.npz", [1, 2])


def test_colliding_member_names_get_unique_names(tmp_path):
    state = {"a/b": np.ones(1), "a": {"b": np.zeros(1)}, checkpoint.META_KEY: np.full(1, 7)}
    save_checkpoint(tmp_path / "c.npz", state)
    loaded = load_checkpoint(tmp_path / "c.npz")
    assert loaded["a/b"][0] == 1 and loaded["a"]["b"][0] == 0 and loaded[checkpoint.META_KEY][0] == 7


def test_failure_during_write_keeps_old_checkpoint_and_leaves_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, {"step": 1, "w": np.ones(3, np.float32)})
    before = path.read_bytes()

    def broken_savez(file, **arrays):
        file.write(b"partial garbage")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"step": 2, "w": np.zeros(3, np.float32)})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ckpt.npz"]
    assert load_checkpoint(path)["step"] == 1


def test_failure_of_the_final_rename_leaves_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, {"step": 1})

    def broken_replace(src, dst):
        raise OSError("rename failed")

    monkeypatch.setattr(checkpoint.os, "replace", broken_replace)
    with pytest.raises(OSError, match="rename failed"):
        save_checkpoint(path, {"step": 2})
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["ckpt.npz"]
    assert load_checkpoint(path)["step"] == 1


def test_atomic_write_creates_parent_directories_and_default_permissions(tmp_path):
    target = tmp_path / "runs" / "a" / "file.bin"
    with atomic_write(target) as f:
        f.write(b"abc")
    assert target.read_bytes() == b"abc"
    if os.name == "posix":
        umask = os.umask(0)
        os.umask(umask)
        assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_missing_file_raises_file_not_found_naming_the_path(tmp_path):
    path = tmp_path / "nope.npz"
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load_checkpoint(path)


@pytest.mark.parametrize("writer, fragment", [
    (lambda f: f.write(b"this is not a zip file at all"), "not a readable npgan checkpoint"),
    (lambda f: np.savez(f, weights=np.ones(3)), "not an npgan checkpoint"),
    (lambda f: np.save(f, np.ones(3)), "single .npy array"),
])
def test_foreign_or_corrupt_files_raise_value_error(tmp_path, writer, fragment):
    path = tmp_path / "foreign.npz"
    with open(path, "wb") as f:
        writer(f)
    with pytest.raises(ValueError, match=fragment):
        load_checkpoint(path)


def test_truncated_checkpoint_raises_value_error(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(path, {"w": np.ones(1000, np.float32), "step": 5})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="checkpoint"):
        load_checkpoint(path)


def test_newer_format_version_is_refused(tmp_path):
    meta = json.dumps({"format": "npgan-checkpoint", "version": 99, "state": {}}).encode()
    path = tmp_path / "future.npz"
    with open(path, "wb") as f:
        np.savez(f, **{checkpoint.META_KEY: np.frombuffer(meta, np.uint8)})
    with pytest.raises(ValueError, match="newer npgan"):
        load_checkpoint(path)
