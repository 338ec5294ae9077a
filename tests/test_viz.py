import os

import numpy as np
import pytest

import npgan
from npgan import viz

Image = pytest.importorskip("PIL.Image")


def _images(n=5, c=1, h=4, w=3, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, c, h, w)).astype(np.float32)


def test_to_uint8_maps_minus_one_to_black_and_one_to_white():
    values = np.array([-1.0, -0.5, 0.0, 0.5, 1.0, -3.0, 7.0, np.nan], dtype=np.float32)
    np.testing.assert_array_equal(viz.to_uint8(values), [0, 64, 128, 191, 255, 0, 255, 0])


def test_make_grid_shape_follows_nrow_and_padding():
    grid = viz.make_grid(_images(5, 3, 4, 3), nrow=2, padding=1)
    # 2 columns and 3 rows of 4x3 images, 1 pixel between and around: (3*5+1, 2*4+1)
    assert grid.shape == (16, 9, 3) and grid.dtype == np.uint8
    assert viz.make_grid(_images(3, 1, 4, 3), nrow=8, padding=2).shape == (8, 17, 1)


def test_make_grid_places_each_image_row_major_and_pads_with_pad_value():
    images = np.stack([np.full((1, 2, 2), v, np.float32) for v in (-1.0, -0.5, 0.5)])
    grid = viz.make_grid(images, nrow=2, padding=1, pad_value=1.0)[:, :, 0]
    expected = np.array([
        [255, 255, 255, 255, 255, 255],
        [255, 0, 0, 255, 64, 64],
        [255, 0, 0, 255, 64, 64],
        [255, 255, 255, 255, 255, 255],
        [255, 191, 191, 255, 255, 255],  # the empty fourth cell is padding
        [255, 191, 191, 255, 255, 255],
    ])
    np.testing.assert_array_equal(grid[:6, :6], expected)
    assert grid.shape == (7, 7)


def test_make_grid_keeps_pixel_orientation_and_channels():
    image = np.full((1, 3, 2, 3), -1.0, np.float32)
    image[0, 0, 0, 2] = 1.0  # red, top-right pixel
    image[0, 2, 1, 0] = 1.0  # blue, bottom-left pixel
    grid = viz.make_grid(image, padding=0)
    assert grid.shape == (2, 3, 3)
    np.testing.assert_array_equal(grid[0, 2], [255, 0, 0])
    np.testing.assert_array_equal(grid[1, 0], [0, 0, 255])


def test_make_grid_accepts_tensors():
    images = _images(2)
    np.testing.assert_array_equal(viz.make_grid(npgan.tensor(images)), viz.make_grid(images))


@pytest.mark.parametrize("bad", [np.zeros((2, 2, 4, 4)), np.zeros((4, 4)), np.zeros((0, 1, 4, 4))])
def test_make_grid_rejects_bad_shapes(bad):
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        viz.make_grid(bad)


def test_save_grid_writes_a_png_that_pillow_reads_back(tmp_path):
    images = _images(6, 1, 5, 5)
    path = viz.save_grid(images, tmp_path / "grid.png", nrow=3)
    with Image.open(path) as png:
        assert png.format == "PNG" and png.mode == "L"
        np.testing.assert_array_equal(np.asarray(png), viz.make_grid(images, nrow=3)[:, :, 0])
    rgb = viz.save_grid(_images(2, 3), tmp_path / "sub" / "rgb.png")
    with Image.open(rgb) as png:
        assert png.mode == "RGB"
    assert sorted(os.listdir(tmp_path)) == ["grid.png", "sub"]  # no temporary files left


def test_save_images_writes_one_png_per_image(tmp_path):
    images = _images(3, 1, 4, 4)
    paths = viz.save_images(images, tmp_path / "samples", start=10)
    assert [os.path.basename(p) for p in paths] == ["sample_00010.png", "sample_00011.png", "sample_00012.png"]
    for path, image in zip(paths, images):
        with Image.open(path) as png:
            np.testing.assert_array_equal(np.asarray(png), viz.to_uint8(image[0]))


def test_save_gif_has_one_frame_per_distinct_picture(tmp_path):
    pngs = [viz.save_grid(np.full((1, 1, 6, 6), v, np.float32), tmp_path / f"f{i}.png")
            for i, v in enumerate((-1.0, 0.0, 1.0))]
    arrays = [np.full((10, 10, 3), v, np.uint8) for v in (30, 90)]  # make_grid of a 6x6 image is 10x10
    path = viz.save_gif(pngs + arrays, tmp_path / "progress.gif", duration=50)
    with Image.open(path) as gif:
        assert gif.format == "GIF" and gif.n_frames == 5 and gif.size == (10, 10)
        assert gif.info["duration"] == 50 and gif.info["loop"] == 0


def test_save_gif_rejects_empty_or_mismatched_frames(tmp_path):
    with pytest.raises(ValueError, match="at least one frame"):
        viz.save_gif([], tmp_path / "a.gif")
    with pytest.raises(ValueError, match="same size"):
        viz.save_gif([np.zeros((4, 4), np.uint8), np.zeros((5, 4), np.uint8)], tmp_path / "a.gif")
    with pytest.raises(ValueError, match="uint8"):
        viz.save_gif([np.zeros((4, 4), np.float32)], tmp_path / "a.gif")
    assert not os.listdir(tmp_path)


def _read_png(path):
    with Image.open(path) as png:
        assert png.format == "PNG"
        return np.asarray(png.convert("RGB"))


def test_plot_losses_from_rows_and_from_columns(tmp_path):
    rows = [{"step": s, "loss_d": 1.0 / (s + 1), "loss_g": 0.5 + 0.01 * s, "phase": "train"} for s in range(0, 50, 5)]
    rows[3]["loss_d"] = float("nan")
    del rows[4]["loss_g"]
    picture = _read_png(viz.plot_losses(rows, tmp_path / "losses.png"))
    assert picture.shape[0] > 200 and picture.shape[1] > 400
    assert len(np.unique(picture.reshape(-1, 3), axis=0)) > 10  # something was drawn
    series = viz._series(rows, "step", None)
    assert list(series) == ["loss_d", "loss_g"]  # the text column is not a series
    assert 15 not in series["loss_d"][0] and 20 not in series["loss_g"][0]
    columns = {"step": [0, 1, 2], "wasserstein": [0.1, 0.3, 0.2]}
    assert os.path.isfile(viz.plot_losses(columns, tmp_path / "w.png", logy=True))


def test_plot_losses_without_numbers_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no numeric series"):
        viz.plot_losses([{"step": 1, "note": "x"}], tmp_path / "l.png")
    assert not os.listdir(tmp_path)


def test_scatter_2d_with_and_without_modes(tmp_path):
    from npgan.data import ring8, toy_modes

    rng = np.random.default_rng(0)
    real, fake = ring8(500, rng), npgan.tensor(rng.normal(size=(300, 2)).astype(np.float32))
    picture = _read_png(viz.scatter_2d(real, fake, tmp_path / "ring.png", modes=toy_modes("ring8"), title="step 0"))
    assert picture.shape[0] > 200 and len(np.unique(picture.reshape(-1, 3), axis=0)) > 10
    assert os.path.isfile(viz.scatter_2d(real, fake, tmp_path / "plain.png", limits=(-3, 3)))
    with pytest.raises(ValueError, match=r"fake points must have shape \(N, 2\)"):
        viz.scatter_2d(real, np.zeros((3, 3)), tmp_path / "bad.png")


def test_a_failed_write_keeps_the_previous_picture(tmp_path, monkeypatch):
    path = viz.save_grid(_images(2), tmp_path / "grid.png")
    before = path.read_bytes()

    def broken_save(self, fp, format=None, **params):
        fp.write(b"half a png")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        viz.save_grid(_images(2, seed=1), path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["grid.png"]
