import math

import jax
import numpy as np
import pytest

from jaxdeconv import config as config_lib
from jaxdeconv import variants
from jaxdeconv.core import initializers, train


def _layers(tree, path=()):
    """(path, layer dict) of every layer holding a kernel."""
    if hasattr(tree, "items"):
        if "kernel" in tree and not hasattr(tree["kernel"], "items"):
            yield path, tree
        for k, v in tree.items():
            yield from _layers(v, path + (k,))


def _state(param_init, seed=0):
    cfg = config_lib.tiny()
    cfg.param_init = param_init
    spec = train.build_spec(cfg, (16, 16, 1))
    return spec, train.init_state(spec, jax.random.key(seed))


def test_pytorch_scheme_draws_weights_and_biases_within_one_over_sqrt_fan_in():
    _, flax_state = _state("flax")
    _, torch_state = _state("pytorch")
    layers = list(_layers(torch_state.params_x)) + list(_layers(torch_state.params_k))
    assert len(layers) > 4
    for _path, layer in layers:
        w = np.asarray(layer["kernel"])
        bound = 1 / math.sqrt(math.prod(w.shape[:-1]))
        assert np.abs(w).max() <= bound
        if w.size >= 200:  # uniform: std = bound / sqrt(3)
            assert np.std(w) == pytest.approx(bound / math.sqrt(3), rel=0.2)
        if "bias" in layer:
            b = np.asarray(layer["bias"])
            assert np.abs(b).max() <= bound and np.any(b != 0)  # Flax starts biases at 0
    # Instance-norm scales stay at 1, and 'flax' is Flax's own draw (biases at zero).
    flat_torch = jax.tree_util.tree_leaves_with_path(torch_state.params_x)
    scales = [v for p, v in flat_torch if "scale" in jax.tree_util.keystr(p)]
    assert scales and all(np.all(np.asarray(s) == 1) for s in scales)
    for _path, layer in _layers(flax_state.params_x):
        if "bias" in layer:
            assert np.all(np.asarray(layer["bias"]) == 0)


def test_reinit_is_pure_and_checks_its_scheme():
    _, a = _state("pytorch", seed=3)
    _, b = _state("pytorch", seed=3)
    _, c = _state("pytorch", seed=4)
    same = jax.tree_util.tree_map(lambda x, y: bool(np.all(x == y)), a.params_x, b.params_x)
    assert all(jax.tree_util.tree_leaves(same))
    w = lambda s: np.asarray(next(_layers(s.params_x))[1]["kernel"])  # noqa: E731
    assert not np.array_equal(w(a), w(c))
    with pytest.raises(ValueError, match="param_init must be one of"):
        initializers.reinit({}, jax.random.key(0), "torch")
    cfg = config_lib.tiny()
    cfg.param_init = "torch"
    with pytest.raises(ValueError, match="param_init"):
        train.build_spec(cfg, (16, 16, 1))


def test_code_base_variants_set_exactly_their_fields():
    base = config_lib.fast()
    cases = {
        "ssim_switch": {"ssim_after": 500},
        "lr_milestones": {"optim.decay_boundaries": (0.4, 0.6, 0.8), "optim.decay_factor": 0.5},
        "pytorch_init": {"param_init": "pytorch"},
        "alternating": {"scheme": "alternating"},
    }
    for name, fields in cases.items():
        c = variants.apply(name, base)
        for field, value in fields.items():
            node = c
            for part in field.split("."):
                node = node[part]
            assert (tuple(node) if isinstance(node, list | tuple) else node) == value, name
        changed = {
            k
            for k in set(_flat(c.to_dict())) | set(_flat(base.to_dict()))
            if _flat(c.to_dict()).get(k) != _flat(base.to_dict()).get(k)
        }
        assert changed <= set(fields), (name, changed)
    lineage = variants.apply("lineage", base)
    assert (lineage.ssim_after, lineage.param_init, lineage.scheme) == (500, "pytorch", "joint")
    assert tuple(lineage.optim.decay_boundaries) == (0.4, 0.6, 0.8)


def _flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = tuple(v) if isinstance(v, list | tuple) else v
    return out
