import jax
import numpy as np
import pytest

from jaxdeconv import config as config_lib
from jaxdeconv.core import schedules, train


def test_piecewise_constant_values_and_jit():
    s = schedules.piecewise_constant(1.0, (10, 20), (0.5, 0.25))
    jitted = jax.jit(s)
    for step, want in [(0, 1.0), (9, 1.0), (10, 0.5), (19, 0.5), (20, 0.25), (10_000, 0.25)]:
        assert float(s(step)) == pytest.approx(want)
        assert float(jitted(step)) == pytest.approx(want)


def test_rejects_mismatched_schedule():
    with pytest.raises(ValueError, match="one value per boundary"):
        schedules.piecewise_constant(1.0, (10,), (0.5, 0.1))
    with pytest.raises(ValueError, match="increase"):
        schedules.piecewise_constant(1.0, (20, 10), (0.5, 0.1))


@pytest.mark.parametrize("kernel_size,noise0", [(31, 0.05), (27, 0.01), (13, 0.01)])
def test_paper_switch_points(kernel_size, noise0):
    cfg = config_lib.paper()
    cfg.kernel_size = kernel_size
    spec = train.build_spec(cfg, (64, 64, 1))
    assert float(spec.dropout(1499)) == pytest.approx(0.3)
    assert float(spec.dropout(1500)) == pytest.approx(0.001)
    assert float(spec.noise(3499)) == pytest.approx(noise0)
    assert float(spec.noise(3500)) == pytest.approx(0.001)
    # Adam's learning rates, read off its updates: a fresh Adam moves each weight by lr on
    # its first step; with the step counter set just before and at the switch, the
    # updates differ exactly by the decay factor.
    params = {"w": np.ones(3, np.float32)}
    grads = {"w": np.ones(3, np.float32)}
    for tx, lr in [(spec.tx_x, 1e-2), (spec.tx_k, 1e-4)]:
        fresh = tx.init(params)
        first, _ = tx.update(grads, fresh, params)
        np.testing.assert_allclose(-np.asarray(first["w"]), lr, rtol=1e-3)

        def update_at(count, fresh=fresh, tx=tx):
            state = jax.tree_util.tree_map(
                lambda leaf: np.asarray(count, leaf.dtype) if np.ndim(leaf) == 0 else leaf,
                fresh,
            )
            return -np.asarray(tx.update(grads, state, params)[0]["w"])

        np.testing.assert_allclose(update_at(3000) / update_at(2999), 0.5, rtol=1e-3)
        np.testing.assert_allclose(update_at(2998) / update_at(2999), 1.0, rtol=1e-3)
