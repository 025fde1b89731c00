"""What an installed jaxdeconv ships besides its modules."""

import importlib.resources
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_package_is_marked_typed():
    # PEP 561: an empty py.typed marker in the package directory, and the build ships it.
    marker = importlib.resources.files("jaxdeconv") / "py.typed"
    assert marker.is_file() and marker.read_text() == ""
    with open(os.path.join(ROOT, "pyproject.toml")) as f:
        pyproject = f.read()
    section = re.search(
        r"^\[tool\.setuptools\.package-data\]\n(.*?)(?=^\[|\Z)", pyproject, re.M | re.S
    )
    assert section and re.search(r'^jaxdeconv = \[.*"py\.typed".*\]$', section.group(1), re.M)
