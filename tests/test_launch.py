import json
import os

import jax.numpy as jnp
import numpy as np
import pytest
from absl import flags
from PIL import Image

from jaxdeconv import config as config_lib
from jaxdeconv import variants
from jaxdeconv.app import image_io, launch
from jaxdeconv.core import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_builtin_example_writes_all_outputs(tmp_path, monkeypatch):
    monkeypatch.setattr(launch, "EXAMPLE_SIZE", 32)
    cfg = config_lib.tiny()
    cfg.num_steps = 10
    facts = launch.deblur_one(cfg, None, 5, str(tmp_path), example_steps=None)
    for path in facts["files"].values():
        assert os.path.getsize(path) > 0
    with open(tmp_path / "example_run.json") as f:
        saved = json.load(f)
    assert saved["kernel_size"] == 5 and saved["num_steps"] == 10
    assert set(saved["psnr_vs_sharp"]) == {"blurry", "network", "deblurred"}
    assert 0.0 <= saved["kernel_similarity"] <= 1.0 and saved["seconds_total"] > 0
    assert os.path.isfile(tmp_path / "example_comparison.png")
    kernel = np.load(tmp_path / "example_kernel.npy")
    assert kernel.shape == (5, 5) and abs(kernel.sum() - 1) < 1e-5


def test_example_steps_replace_the_configs_for_the_example_only(tmp_path, monkeypatch):
    monkeypatch.setattr(launch, "EXAMPLE_SIZE", 32)
    cfg = config_lib.tiny()
    cfg.num_steps = 10
    launch.deblur_one(cfg, None, 5, str(tmp_path / "ex"), example_steps=4)
    with open(tmp_path / "ex" / "example_run.json") as f:
        assert json.load(f)["num_steps"] == 4
    assert cfg.num_steps == 10  # the caller's config is not changed
    path = tmp_path / "in.png"
    Image.fromarray(np.full((24, 24), 128, np.uint8)).save(path)
    launch.deblur_one(cfg, str(path), 5, str(tmp_path / "out"), example_steps=4)
    with open(tmp_path / "out" / "in_run.json") as f:
        assert json.load(f)["num_steps"] == 10  # a photo keeps the config's steps


@pytest.fixture
def parse(capsys):
    """``parse(*args)``: the jaxdeconv command's flags (``--config`` from
    ``launch.define_config_flag``) parsed by ``launch.parse_flags``; returns the config."""
    from jaxdeconv.app import cli  # noqa: F401 (defines the command's flags)

    def run(*args):
        flags.FLAGS.unparse_flags()
        launch.parse_flags(["jaxdeconv", *args])
        return flags.FLAGS[launch.CONFIG_FLAG].value

    yield run
    flags.FLAGS.unparse_flags()


def _edited(preset, **fields):
    """``config.PRESETS[preset]()`` with dotted ``fields`` set (``optim__lr_x`` for
    ``optim.lr_x``), as the old override parser would have set them."""
    cfg = config_lib.PRESETS[preset]()
    for name, value in fields.items():
        *parents, leaf = name.split("__")
        node = cfg
        for part in parents:
            node = node[part]
        with node.ignore_type():
            node[leaf] = value
    return cfg


def _variant(name, preset, **fields):
    cfg = variants.apply(name, config_lib.PRESETS[preset]())
    cfg.update(fields)
    return cfg


FAST_FILE = os.path.join(ROOT, "experiments", "configs", "fast.py")


@pytest.mark.parametrize(
    "args,expected",
    [
        # The command lines of the benchmark runs going on now (--set, the old spelling).
        (
            ["--config=fast", "--set=optim.decay_boundaries=(0.4,0.6,0.8)"],
            _edited("fast", optim__decay_boundaries=(0.4, 0.6, 0.8)),
        ),
        (["--config=fast", "--set=seed=1"], _edited("fast", seed=1)),
        (["--config=fast", "--set=crop_size=192"], _edited("fast", crop_size=192)),
        # config_flags' own spelling, a config file, and an integer for a float.
        (
            [f"--config={FAST_FILE}", "--config.num_steps=1000", "--config.optim.lr_x=1"],
            _edited("fast", num_steps=1000, optim__lr_x=1.0),
        ),
        # The default config (the command's: fast), a kernel size that is a word, a field
        # unset again, a string.
        (
            ["--set=kernel_size=auto", "--set=noise.init=None", "--config.crop_select=structure"],
            _edited("fast", kernel_size="auto", crop_select="structure"),
        ),
        # Integers in a tuple of numbers are stored as floats, as the old parser stored them.
        (["--config=tiny", "--set=noise.levels=(0,)"], _edited("tiny", noise__levels=(0.0,))),
        # An override before --config, and a variant file with its argument.
        (
            ["--config.num_steps=7", f"--config={ROOT}/experiments/configs/variant.py:s6:tiny"],
            _variant("s6", "tiny", num_steps=7),
        ),
    ],
)
def test_command_lines_build_the_configs_they_did(parse, args, expected):
    cfg = parse(*args)
    assert cfg.to_dict() == expected.to_dict()
    assert config_lib.fingerprint(cfg) == config_lib.fingerprint(expected)


def test_the_fields_a_command_line_set_and_the_configs_name(parse):
    parse("--config=tiny", "--set=num_steps=3", "--config.optim.lr_k=0.1", "--set=noise.init=None")
    assert launch.overridden() == {"num_steps", "optim.lr_k", "noise.init"}
    assert launch.config_name() == "tiny"
    parse(f"--config={FAST_FILE}")
    assert launch.overridden() == set() and launch.config_name() == "fast"
    assert launch.config_spec() == FAST_FILE


@pytest.mark.parametrize(
    "args,words",
    [
        (
            ["--config.num_step=5"],
            "num_step=5: unknown config field 'num_step'; did you mean num_steps?",
        ),
        (
            ["--set=num_step=5"],
            "num_step=5: unknown config field 'num_step'; did you mean num_steps?",
        ),
        (["--set=optim.lr=0.1"], "did you mean optim.lr_x or optim.lr_k"),
        (["--set=nonsense.field=1"], "unknown config field 'nonsense.field'"),
        (["--set=nose.init=None"], "did you mean noise.init?"),
        (["--config.num_steps=2.5"], "num_steps=2.5: expects an integer, got '2.5'"),
        (["--set=optim.lr_x=fast"], "optim.lr_x=fast: expects a number"),
        (["--set=refine.enabled=maybe"], "expects True or False"),
        (["--set=image_net.channels=(8.5,)"], "every entry must be an integer, not 8.5"),
        (["--set=num_steps=None"], "'num_steps' cannot be None"),
        (["--set=optim=1"], "'optim' is a group of fields"),
        (["--set=num_steps"], "--set=num_steps: expected FIELD=VALUE"),
        (["--config.num_steps=0"], "num_steps must be a positive integer"),
        (["--config=nonsense"], "not a preset (paper, fast, quality, tiny) and no such file"),
        (["--config=experiments/configs/s4.py"], "no such file"),  # the old variant paths
    ],
)
def test_bad_overrides_exit_2_in_one_line(parse, capsys, args, words):
    with pytest.raises(SystemExit) as e:
        parse(*args)
    err = capsys.readouterr().err
    assert e.value.code == 2 and words in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("jaxdeconv: ")


def test_builtin_example_with_automatic_kernel_size(tmp_path, monkeypatch):
    # config.kernel_size = "auto" and no --kernel_size: the example keeps its own blur and the
    # run reports the size it chose (this raised a TypeError before).
    monkeypatch.setattr(launch, "EXAMPLE_SIZE", 32)
    monkeypatch.setattr(launch, "EXAMPLE_KERNEL_SIZE", 5)
    cfg = config_lib.tiny()
    cfg.num_steps = 3
    cfg.kernel_size = "auto"
    launch.deblur_one(cfg, None, None, str(tmp_path))
    with open(tmp_path / "example_run.json") as f:
        saved = json.load(f)
    used = saved["kernel_size_used"]
    assert used % 2 == 1 and np.load(tmp_path / "example_kernel.npy").shape == (used, used)


def test_colour_input_keeps_colour_and_input_untouched(tmp_path):
    rgb = (np.random.default_rng(0).uniform(size=(24, 28, 3)) * 255).astype(np.uint8)
    path = tmp_path / "photo.png"
    Image.fromarray(rgb).save(path)
    before = path.read_bytes()
    cfg = config_lib.tiny()
    cfg.num_steps = 5
    launch.deblur_one(cfg, str(path), 5, str(tmp_path / "out"))
    out = image_io.read_image(str(tmp_path / "out" / "photo_deblurred.png"))
    assert out.shape == (24, 28, 3)
    assert image_io.read_image(str(tmp_path / "out" / "photo_network.png")).shape == (24, 28, 1)
    assert path.read_bytes() == before


def test_the_example_scene_and_its_blur():
    from jaxdeconv.app import example
    from jaxdeconv.bench import synthetic

    ex = example.make(64, 9, noise=0.01, seed=3)
    assert ex.blurry.shape == ex.sharp.shape == (64, 64, 1)
    assert ex.kernel.shape == (9, 9) and abs(float(ex.kernel.sum()) - 1) < 1e-5
    # The forward model: valid correlation of the scene plus about 1% noise.
    residual = ex.blurry[..., 0] - synthetic.correlate_valid(ex.sharp_big[..., 0], ex.kernel)
    assert 0.007 < float(np.std(residual)) < 0.013
    # Edges in both directions (buildings, windows, lettering): strong gradients along x and y.
    gy, gx = np.gradient(ex.sharp[..., 0])
    assert (np.abs(gx) > 0.1).mean() > 0.02 and (np.abs(gy) > 0.1).mean() > 0.02
    assert not np.array_equal(example.make(64, 9, seed=4).sharp, ex.sharp)


def test_the_launcher_passes_the_research_hooks_on(tmp_path):
    """``deblur_one(..., spec=, step=)``: the user's spec builder and step train the image."""
    path = tmp_path / "grey.png"
    Image.fromarray((np.random.default_rng(1).uniform(size=(24, 24)) * 255).astype(np.uint8)).save(
        path
    )
    cfg = config_lib.tiny()
    cfg.num_steps = 3
    built = []

    def builder(config, shape):
        built.append(shape)
        return train.build_spec(config, shape)

    def reported_step(spec, state, y, key):
        state, metrics = train.train_step(spec, state, y, key)
        return state, {**metrics, "loss": jnp.full((), 123.0)}

    facts = launch.deblur_one(
        cfg, str(path), 5, str(tmp_path / "out"), spec=builder, step=reported_step
    )
    assert built == [(24, 24, 1)]
    assert facts["final_loss"] == 123.0  # the loss the user's step reported
