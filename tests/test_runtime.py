import jax

from jaxdeconv import runtime


def test_persistent_cache_on_by_default_with_an_opt_out(monkeypatch, tmp_path):
    old = jax.config.jax_compilation_cache_dir
    try:
        jax.config.update("jax_compilation_cache_dir", None)
        monkeypatch.setattr(runtime, "_decided", False)
        monkeypatch.setenv(runtime.ENV_SWITCH, "0")
        assert runtime.default_compilation_cache() is None
        assert not jax.config.jax_compilation_cache_dir

        monkeypatch.setattr(runtime, "_decided", False)
        monkeypatch.setenv(runtime.ENV_SWITCH, "1")
        monkeypatch.setenv("JAXDECONV_CACHE_DIR", str(tmp_path))
        assert runtime.default_compilation_cache() == str(tmp_path)
        assert jax.config.jax_compilation_cache_dir == str(tmp_path)

        # A directory the user chose is kept.
        monkeypatch.setattr(runtime, "_decided", False)
        jax.config.update("jax_compilation_cache_dir", str(tmp_path / "mine"))
        assert runtime.default_compilation_cache() == str(tmp_path / "mine")
    finally:
        jax.config.update("jax_compilation_cache_dir", old)
