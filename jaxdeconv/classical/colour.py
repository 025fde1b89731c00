"""Colour maths on host images (NumPy): the luminance the kernel is estimated on.

Images are float in [0, 1], ``[H, W, C]`` with ``C`` 1 (grey) or 3 (RGB; a fourth channel is
ignored). Pure functions, no I/O: the pipeline and the application both use them.
"""

from __future__ import annotations

import numpy as np


def luminance(image: np.ndarray) -> np.ndarray:
    """``[H, W, 3] -> [H, W, 1]`` with Y = 0.299 R + 0.587 G + 0.114 B; grey passes through."""
    if image.shape[-1] == 1:
        return image
    weights = np.asarray([0.299, 0.587, 0.114], image.dtype)
    return (image[..., :3] @ weights)[..., None]
