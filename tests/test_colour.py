import numpy as np

from jaxdeconv.app import image_io
from jaxdeconv.classical import colour


def test_luminance_weights_the_channels_and_passes_grey_through():
    rgb = np.zeros((2, 3, 3), np.float32)
    rgb[0, 0] = (1.0, 0.0, 0.0)
    rgb[0, 1] = (0.0, 1.0, 0.0)
    rgb[0, 2] = (0.0, 0.0, 1.0)
    rgb[1] = (0.2, 0.4, 0.6)
    y = colour.luminance(rgb)
    assert y.shape == (2, 3, 1) and y.dtype == np.float32
    np.testing.assert_allclose(y[0, :, 0], [0.299, 0.587, 0.114], rtol=1e-6)
    np.testing.assert_allclose(y[1, :, 0], 0.299 * 0.2 + 0.587 * 0.4 + 0.114 * 0.6, rtol=1e-6)
    rgba = np.concatenate([rgb, np.ones((2, 3, 1), np.float32)], axis=-1)
    np.testing.assert_array_equal(colour.luminance(rgba), y)  # a fourth channel is ignored
    grey = rgb[..., :1]
    assert colour.luminance(grey) is grey


def test_the_application_reads_the_same_function():
    assert image_io.luminance is colour.luminance
