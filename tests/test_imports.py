"""Every third-party import in the repository is a dependency pyproject.toml declares.

A module that arrives only as another package's dependency (``websocket`` through
jupyter-server, ``IPython`` through ipykernel) works until that package drops it; so every
``import`` and ``from ... import`` in mmcxr/, tests/, bench/ and the notebooks' .py sources is
read with :mod:`ast`, its top-level name mapped to the distribution that installs it
(``importlib.metadata.packages_distributions``), and that distribution must be named in
``[project] dependencies`` or the ``dev`` extra. The standard library, ``mmcxr`` and modules
beside the importing file (``conftest``) need nothing.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIRST_PARTY = {"mmcxr"}


def sources(root: Path = ROOT) -> list[Path]:
    """The Python the repository runs: the package, the tests, the benchmarks, the notebooks."""
    files = [f for d in ("mmcxr", "tests", "bench") for f in (root / d).rglob("*.py")]
    files += (root / "notebooks").glob("*.py")
    return sorted(f for f in files if ".ipynb_checkpoints" not in f.parts)


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares them (``PyYAML`` == ``pyyaml``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(pyproject: str) -> set[str]:
    """Normalised names of the runtime dependencies and the ``dev`` extra."""
    project = tomllib.loads(pyproject)["project"]
    requirements = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    names = set()
    for req in requirements:
        m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
        assert m, f"cannot read a distribution name from {req!r}"
        names.add(normalize(m.group(1)))
    return names


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, top-level module) of every absolute import in a file, nested ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return sorted(found)


def _local(path: Path, module: str) -> bool:
    return (path.parent / f"{module}.py").is_file() or (path.parent / module).is_dir()


def undeclared(
    files: Iterable[Path],
    declared_names: set[str],
    distributions: Mapping[str, list[str]],
    root: Path = ROOT,
) -> list[str]:
    """One line per third-party import whose distribution pyproject.toml does not declare."""
    problems = []
    for path in files:
        where = path.relative_to(root) if path.is_relative_to(root) else path
        for line, module in imports(path):
            if module in sys.stdlib_module_names or module in FIRST_PARTY or _local(path, module):
                continue
            dists = distributions.get(module)
            if not dists:
                problems.append(
                    f"{where}:{line}: imports {module!r}, which no installed distribution "
                    "provides: declare the package that does in pyproject.toml"
                )
            elif not {normalize(d) for d in dists} & declared_names:
                problems.append(
                    f"{where}:{line}: imports {module!r} from {' or '.join(sorted(set(dists)))}, "
                    "which pyproject.toml does not declare (dependencies or the dev extra; "
                    "arriving with another package does not count)"
                )
    return problems


def test_every_third_party_import_is_declared():
    files = sources()
    assert any(f.name == "metrics.py" for f in files) and any(
        f.parent.name == "notebooks" for f in files
    ), "the walk finds the package and the notebooks"
    problems = undeclared(
        files,
        declared((ROOT / "pyproject.toml").read_text()),
        importlib.metadata.packages_distributions(),
    )
    assert not problems, "\n".join(problems)


def test_the_check_names_file_and_module_of_an_undeclared_import(tmp_path: Path):
    pkg = tmp_path / "tests"
    pkg.mkdir()
    (pkg / "helpers.py").write_text("")
    src = pkg / "test_x.py"
    src.write_text(
        "from __future__ import annotations\n"
        "import os, json\n"
        "import yaml\n"
        "from mmcxr.metrics import auroc\n"
        "from . import sibling\n"
        "import helpers\n"
        "def f():\n"
        "    import websocket\n"
        "    from IPython.display import display\n"
        "import not_installed_anywhere\n"
    )
    distributions = {
        "yaml": ["PyYAML"],
        "websocket": ["websocket-client"],
        "IPython": ["ipython"],
    }
    problems = undeclared([src], {"pyyaml", "ipython"}, distributions, root=tmp_path)
    assert len(problems) == 2, problems
    assert problems[0].startswith("tests/test_x.py:8: imports 'websocket' from websocket-client")
    assert problems[1].startswith("tests/test_x.py:10: imports 'not_installed_anywhere'")
    assert len(undeclared([src], {"pyyaml"}, distributions, root=tmp_path)) == 3


def test_declared_reads_names_under_pins_extras_and_markers():
    text = """
[project]
dependencies = ["PyYAML==6.0.3", "urllib3[socks]==2.0; python_version > '3'", "ruamel.yaml>=0.18"]
[project.optional-dependencies]
dev = ["pytest==9.2.0"]
"""
    assert declared(text) == {"pyyaml", "urllib3", "ruamel-yaml", "pytest"}
