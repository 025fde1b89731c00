import numpy as np

from jaxdeconv.bench import synthetic
from jaxdeconv.classical import diagnose


def test_a_good_motion_kernel_passes():
    d = diagnose.diagnose(synthetic.motion_kernel(21, seed=1))
    assert d.ok and not d.delta and not d.border
    assert 5 < d.support <= 21


def test_a_delta_like_kernel_is_flagged():
    k = np.full((15, 15), 0.3 / 224)
    k[7, 7] = 0.7
    d = diagnose.diagnose(k)
    assert d.delta and not d.ok


def test_mass_piled_on_the_border_is_flagged():
    k = np.zeros((15, 15))
    k[0, 2:13] = 1.0  # a streak along the top edge
    k[6:9, 6:9] = 0.5
    d = diagnose.diagnose(k)
    assert d.border and not d.ok and d.border_mass > 0.5
    assert diagnose.border_mass(k, width=2) >= d.border_mass
