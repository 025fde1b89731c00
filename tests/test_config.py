"""Tests for jaxdeconv.config: the one fingerprint, the defaults of a partial config and the
one kernel-size check (with the entry points that use it)."""

from __future__ import annotations

import ml_collections
import numpy as np
import pytest

from jaxdeconv import config as config_lib
from jaxdeconv.app import batch, cli
from jaxdeconv.bench import synthetic
from jaxdeconv.core import train


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


@pytest.mark.parametrize("k", [1, 3, 27, np.int64(5)])
def test_odd_positive_integers_are_kernel_sizes(k):
    assert config_lib.check_kernel_size(k, allow_auto=False) == int(k)
    assert type(config_lib.check_kernel_size(k)) is int


@pytest.mark.parametrize("k", [0, -3, 4, 5.0, "5", True, None, "big"])
def test_anything_else_is_refused_with_one_wording(k):
    with pytest.raises(ValueError, match=r"^kernel_size must be a positive odd integer or 'auto'"):
        config_lib.check_kernel_size(k)
    problem = config_lib.kernel_size_problem(k, allow_auto=False, where="size")
    assert problem == f"size must be a positive odd integer, got {k!r}"


def test_auto_only_where_allowed():
    assert config_lib.check_kernel_size("auto") == "auto"
    with pytest.raises(ValueError, match="kernel_size must be a positive odd integer, got 'auto'"):
        config_lib.check_kernel_size("auto", allow_auto=False)


def test_the_entry_points_share_the_check(tiny_config):
    """The config check, the train step's, the batch tool's, the command's and the synthetic
    kernels' all say the same for an even size."""
    cfg = tiny_config
    cfg.kernel_size = 4
    with pytest.raises(ValueError, match="kernel_size must be a positive odd integer or 'auto'"):
        config_lib.check_values(cfg)
    with pytest.raises(ValueError, match="kernel_size must be a positive odd integer, got 4"):
        train.build_spec(cfg, (16, 16, 1))
    assert batch.kernel_size_problem(4, (16, 16)) == (
        "kernel size must be a positive odd integer or 'auto', got 4"
    )
    assert batch.kernel_size_problem(True, (16, 16)) is not None  # a bool is no size
    with pytest.raises(ValueError, match="--kernel_size=4: must be a positive odd integer"):
        cli.parse_kernel_size("4")
    assert cli.parse_kernel_size(" AUTO") == "auto" and cli.parse_kernel_size("7") == 7
    with pytest.raises(ValueError, match="kernel size must be a positive odd integer, got 4"):
        synthetic.motion_kernel(4)


def test_kernel_arrays_must_be_square_and_odd():
    config_lib.check_kernel_shape((5, 5))
    for shape in [(4, 4), (5, 3), (5,), (5, 5, 1)]:
        with pytest.raises(ValueError, match=r"kernel must be \[K, K\] with K odd"):
            config_lib.check_kernel_shape(shape)


def test_extra_loss_weights_match_the_names(tiny_config):
    tiny_config.extra_loss.names = ("kernel_centre",)
    tiny_config.extra_loss.weights = (0.1, 0.2)
    with pytest.raises(ValueError, match="extra_loss.weights needs one weight per name"):
        config_lib.check_values(tiny_config)


def test_non_local_levels_must_exist(tiny_config):
    tiny_config.image_net.non_local_from = len(tiny_config.image_net.channels)
    with pytest.raises(ValueError, match="image_net.non_local_from must be -1 .* got 2"):
        config_lib.check_values(tiny_config)
    tiny_config.image_net.non_local_from = 1
    config_lib.check_values(tiny_config)


def test_the_extra_loss_group_changes_no_hash_while_off():
    """Stored results and checkpoints stay valid: with no extra loss term, a config hashes as
    it did before the group existed."""
    from jaxdeconv.bench import evaluate

    cfg = config_lib.fast()
    before = cfg.to_dict()
    del before["extra_loss"]
    before = config_lib.ml_collections.ConfigDict(before)
    assert evaluate.config_hash(cfg) == evaluate.config_hash(before)
    assert config_lib.fingerprint(cfg) == config_lib.fingerprint(before)
    cfg.extra_loss.names = ("kernel_centre",)
    assert evaluate.config_hash(cfg) != evaluate.config_hash(before)
    assert config_lib.fingerprint(cfg) != config_lib.fingerprint(before)


def test_seed_selection_is_checked_and_quality_is_fast_on_three_seeds(tiny_config):
    tiny_config.recover.seed_select = "loss"
    with pytest.raises(ValueError, match="recover.seed_select must be one of"):
        config_lib.check_values(tiny_config)
    tiny_config.recover.seed_select = "evidence"
    tiny_config.recover.camera_blur = -0.5
    with pytest.raises(ValueError, match="recover.camera_blur must be 0 or more"):
        config_lib.check_values(tiny_config)
    quality, fast = config_lib.quality(), config_lib.fast()
    config_lib.check_values(quality)

    def flat(d, prefix=""):
        out = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v})
        return out

    q, f = flat(quality.to_dict()), flat(fast.to_dict())
    assert {k: v for k, v in q.items() if f[k] != v} == {
        "recover.seeds": 3,
        "recover.seed_select": "evidence",
    }
    assert config_lib.PRESETS["quality"] is config_lib.quality
    # fast's fingerprint stays what its stored results were made with.
    assert config_lib.fingerprint(fast) != config_lib.fingerprint(quality)


def test_the_pool_of_variants_names_known_variants_and_is_off_by_default(tiny_config):
    assert config_lib.fast().recover.variants == () == config_lib.quality().recover.variants
    tiny_config.recover.variants = ("ssim_swtich",)  # a typo
    with pytest.raises(ValueError, match="recover.variants must be a tuple of variant names"):
        config_lib.check_values(tiny_config)
    tiny_config.recover.variants = ("ssim_switch", "lr_milestones")
    config_lib.check_values(tiny_config)
