"""Load a script of the repository (``benchmarks/``, ``experiments/``) as a module, for the
tests of the functions it defines. The scripts are not a package: they run as files."""

import importlib.util
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_script(relative_path: str, name: str | None = None):
    """The module of ``ROOT/relative_path``, registered in ``sys.modules`` under ``name``
    (default: the path's folder and stem, e.g. ``benchmarks_seed_agreement``) so that
    dataclasses and pickling find it."""
    path = os.path.join(ROOT, relative_path)
    if name is None:
        folder, file = os.path.split(os.path.normpath(relative_path))
        name = f"{folder.replace(os.sep, '_')}_{os.path.splitext(file)[0]}".strip("_")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
