"""Tests for jaxdeconv.config: the one fingerprint and the defaults of a partial config."""

from __future__ import annotations

import ml_collections
import pytest

from jaxdeconv import config as config_lib


def test_fingerprint_leaves_out_result_neutral_fields_only():
    base = config_lib.fingerprint(config_lib.fast())
    assert len(base) == 12 and int(base, 16) >= 0
    assert config_lib.fingerprint(config_lib.fast()) == base  # stable
    for field in config_lib.RESULT_NEUTRAL:
        cfg = config_lib.fast()
        cfg[field] = cfg[field] + 7
        assert config_lib.fingerprint(cfg) == base, field
    for override in ("seed=3", "num_steps=100", "optim.lr_x=0.5", "nonblind.lam=1.0"):
        changed = config_lib.apply_overrides(config_lib.fast(), [override])
        assert config_lib.fingerprint(changed) != base, override


def test_fingerprint_ignores_named_fields_nested_too():
    cfg, other = config_lib.tiny(), config_lib.tiny()
    other.seed, other.optim.lr_k = 5, 0.123
    assert config_lib.fingerprint(cfg) != config_lib.fingerprint(other)
    ignore = config_lib.RESULT_NEUTRAL + ("seed", "optim.lr_k")
    assert config_lib.fingerprint(cfg, ignore=ignore) == config_lib.fingerprint(
        other, ignore=ignore
    )


def test_added_fields_at_their_off_value_are_as_if_absent():
    cfg = config_lib.paper()
    old = cfg.to_dict()  # the config as it was before the added fields existed
    for field in config_lib.ADDED_FIELDS:
        *parents, leaf = field.split(".")
        node = old
        for part in parents:
            node = node[part]
        del node[leaf]
    del old["progressive"]  # every field of the group was added later
    assert config_lib.fingerprint(ml_collections.ConfigDict(old)) == config_lib.fingerprint(cfg)
    on = config_lib.apply_overrides(config_lib.paper(), ["progressive.levels=2"])
    assert config_lib.fingerprint(on) != config_lib.fingerprint(cfg)


def test_with_defaults_fills_a_partial_config_and_keeps_a_full_one():
    full = config_lib.fast()
    assert config_lib.with_defaults(full).to_dict() == full.to_dict()
    block = ml_collections.ConfigDict({"method": "hyper_laplacian", "lam": 123.0})
    filled = config_lib.with_defaults(block, "nonblind")
    assert filled.lam == 123.0 and filled.method == "hyper_laplacian"
    assert filled.noise_adaptive == config_lib.default_config().nonblind.noise_adaptive
    assert set(filled.keys()) == set(config_lib.default_config().nonblind.keys())
    assert block.to_dict() == {"method": "hyper_laplacian", "lam": 123.0}  # not changed


def test_with_defaults_rejects_an_unknown_group():
    with pytest.raises(KeyError):
        config_lib.with_defaults(ml_collections.ConfigDict({}), "no_such_group")
