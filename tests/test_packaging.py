"""What `pip install .` gives must run every command: a third-party module that
svcinspect imports is either a requirement of the package, or an optional extra
imported inside a ``try`` that turns its absence into a one-line error."""

from __future__ import annotations

import ast
import configparser
import re
import sys

from conftest import ROOT

# Distribution name -> the module it provides, where they differ.
MODULE_OF = {"pyyaml": "yaml", "python-iptables": "iptc"}


def _requirements(section: str, key: str) -> set[str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    names = set()
    for line in cfg[section][key].strip().splitlines():
        dist = re.split(r"[<>=!~\[; ]", line.strip(), maxsplit=1)[0].lower()
        names.add(MODULE_OF.get(dist, dist))
    return names


def _unguarded_imports(tree: ast.AST) -> set[str]:
    """Top-level module names imported outside a ``try ... except ImportError``."""
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
                h.type is not None and "ImportError" in ast.unparse(h.type) for h in node.handlers):
            for inner in node.body:
                guarded.update(id(n) for n in ast.walk(inner))
    out = set()
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


def test_every_unguarded_third_party_import_is_a_requirement():
    required = _requirements("options", "install_requires")
    missing = {}
    for path in sorted((ROOT / "svcinspect").rglob("*.py")):
        for module in _unguarded_imports(ast.parse(path.read_text())):
            if module in sys.stdlib_module_names or module == "svcinspect" or module in required:
                continue
            missing.setdefault(module, []).append(str(path.relative_to(ROOT)))
    assert not missing, f"imported without a guard but not in install_requires: {missing}"
