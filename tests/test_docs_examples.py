"""The documentation cannot go stale: every example block in README.md and
docs/*.md is what its command prints today (docs/generate_examples.py), and the
README's two fresh-machine commands are the ones CI runs."""

from __future__ import annotations

import importlib.util
import re
import shlex

import pytest

from conftest import ROOT

spec = importlib.util.spec_from_file_location("generate_examples", ROOT / "docs" / "generate_examples.py")
gen = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gen)

README = (ROOT / "README.md").read_text()


def test_no_documented_example_is_stale(capsys):
    code = gen.main(["--check"])
    diff = capsys.readouterr().out
    assert code == 0, "stale examples (run python docs/generate_examples.py):\n" + diff[:4000]


def test_the_check_notices_a_stale_block():
    text = ("<!-- example: trace default/hello-world --rules fixtures/kube-proxy-v1.36.2/iptables/iptables-save.txt"
            " | head=1 -->\n```\nService port default/hello-world, protocol udp\n```\n<!-- /example -->\n")
    assert gen.regenerate(text) != text
    assert "protocol tcp" in gen.regenerate(text)


def test_the_docs_have_examples_for_every_command():
    reference = (ROOT / "docs" / "reference.md").read_text()
    commands = {m.group("spec").split()[0] for m in gen.BLOCK.finditer(reference + README)}
    assert {"services", "trace", "explain", "packet", "check"} <= commands
    assert len(gen.BLOCK.findall(README)) >= 5


def _commands():
    return re.findall(r"```sh\n(.*?)\n```", README, re.S)


def test_readme_test_command_is_what_ci_runs():
    try_it, tests = _commands()[:2]
    ci = (ROOT / ".ci" / "run").read_text()
    packages = re.search(r"apt-get install -y -qq ([^>]*)>", tests).group(1).split()
    assert re.search(r"apt-get install -y -qq ([^>]*)>", ci).group(1).split() == packages
    assert "chromium" in packages and "graphviz" in packages
    venv_part = tests.split("; ", 1)[1]
    assert venv_part in ci  # the venv, the test extra and pytest -ra: the same line


def test_readme_try_it_command_works_on_the_bundled_example():
    try_it = _commands()[0]
    assert "pip install -q ." in try_it
    args = shlex.split(try_it.split(".venv/bin/svcinspect ", 1)[1])
    code, out, err = gen.run(args)
    assert code == 0, err
    assert out.startswith("Service port default/hello-world, protocol tcp")


@pytest.mark.parametrize("target", ["docs/hello-world.svg", "docs/reference.md", "docs/index.md",
                                    "docs/explain-hello-world.md"])
def test_readme_links_exist(target):
    assert target in README or target in (ROOT / "docs" / "index.md").read_text().replace("](", "](docs/")
    assert (ROOT / target).exists()
