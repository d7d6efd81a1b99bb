"""A drawn digit prepared the MNIST way: cropped, 20 px on its longer side, centre of mass in the middle."""

import dataclasses
import io

import numpy as np
import pytest

from backprop.config import preset
from backprop.data import load_task
from backprop.drawing import (
    BOX,
    FIELD,
    centre_of_mass,
    ink_from_rgba,
    mnist_style,
    png_size,
    resize_area,
)
from backprop.errors import InputError
from backprop.trainer import Trainer


def box_of(image):
    rows, columns = np.flatnonzero(image.any(axis=1)), np.flatnonzero(image.any(axis=0))
    return rows[-1] - rows[0] + 1, columns[-1] - columns[0] + 1


def test_a_stroke_on_a_big_canvas_becomes_a_centred_20_pixel_digit():
    canvas = np.zeros((280, 280))
    canvas[40:200, 150:175] = 1.0  # a tall bar off to the right, like a "1"
    canvas[40:60, 120:175] = 1.0  # with a flag at the top-left
    digit = mnist_style(canvas)
    assert digit.shape == (FIELD, FIELD) and 0 <= digit.min() and digit.max() <= 1
    height, width = box_of(digit > 0)
    assert height == BOX and width == round(55 * BOX / 160)
    row, column = centre_of_mass(digit)
    assert abs(row - 14) <= 0.5 and abs(column - 14) <= 0.5


def test_the_aspect_ratio_is_kept_and_the_shrinking_is_anti_aliased():
    canvas = np.zeros((300, 300))
    canvas[100:200, 10:60] = 1.0  # 100 x 50
    digit = mnist_style(canvas)
    assert box_of(digit > 0) == (20, 10)
    odd = np.zeros((90, 90))
    odd[::2, :] = 1.0  # stripes finer than a target pixel average to grey
    assert 0.3 < resize_area(odd, 20, 20).mean() < 0.7 and resize_area(odd, 20, 20).max() < 1


def test_area_resizing_keeps_the_mean_ink():
    rng = np.random.default_rng(0)
    image = rng.uniform(size=(137, 61))
    assert resize_area(image, 20, 9).mean() == pytest.approx(image.mean(), rel=1e-12)


def test_nothing_drawn_gives_none_and_bad_drawings_name_the_field():
    assert mnist_style(np.zeros((280, 280))) is None
    assert mnist_style(np.full((50, 50), 0.01)) is None  # faint noise is not ink
    for bad in (np.zeros(10), np.zeros((3001, 5)), np.full((5, 5), np.nan)):
        with pytest.raises(InputError) as error:
            mnist_style(bad)
        assert error.value.field == "drawing"


def test_ink_is_brightness_times_opacity():
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[0, 0] = (255, 255, 255, 255)  # white stroke
    rgba[0, 1] = (255, 255, 255, 0)  # transparent
    rgba[1, 0] = (0, 0, 0, 255)  # black background
    rgba[1, 1] = (255, 255, 255, 128)  # half-covered edge pixel
    np.testing.assert_allclose(ink_from_rgba(rgba), [[1, 0], [0, 128 / 255]])
    with pytest.raises(InputError):
        ink_from_rgba(np.zeros((4, 4)))


def test_png_size_is_read_from_the_header():
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGBA", (280, 140)).save(buffer, format="PNG")
    assert png_size(buffer.getvalue()) == (280, 140)
    with pytest.raises(InputError, match="PNG"):
        png_size(b"GIF89a not a png at all")


def test_mnist_test_images_prepared_as_drawings_are_classified_as_the_originals():
    """MNIST digits are already 20 px high and centred by mass, so putting each test image through
    the drawing's preparation must leave the network's answer unchanged for >= 95% of them. The
    tutorial's network is trained briefly (300 iterations on 2,000 training images); the test set
    is the task's full 1,866 images."""
    config = dataclasses.replace(preset("tutorial"), subset=2000).validated()
    trainer = Trainer.from_config(config, load_task(config.dataset, digits=config.digits, subset=2000))
    trainer.step(300)
    test = load_task(config.dataset, digits=config.digits)
    assert len(test.y_test) == 1866
    prepared = np.stack([mnist_style(image.reshape(28, 28)).ravel() for image in test.x_test])
    original = trainer.network.predict(test.x_test)
    assert (original == test.y_test).mean() > 0.9  # the network did learn
    assert (trainer.network.predict(prepared) == original).mean() >= 0.95
