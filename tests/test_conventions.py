"""kubectl's conventions (issue 16): -A, one set of -o names, --no-headers,
-v/--debug after the subcommand, svc/NAME, a bare NAME in any namespace, a
cluster IP or node port as the service, shell completion."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from conftest import IPT, ROOT

RULES = ["--rules", str(IPT / "iptables-save.txt")]


def ok(cli, *args):
    r = cli(*args)
    assert r.code == 0, (args, r.err)
    return r.out


def first_port(out):
    return out.splitlines()[0]


# --- naming a Service ------------------------------------------------------------

@pytest.mark.parametrize("arg,expect", [
    ("kube-dns", "Service port kube-system/kube-dns:"),          # only in kube-system: found there
    ("svc/hello-world", "Service port default/hello-world,"),
    ("service/kube-system/kube-dns", "Service port kube-system/kube-dns:"),
    ("10.96.10.10", "Service port default/hello-world,"),       # a cluster IP
    ("10.96.10.10:80", "Service port default/hello-world,"),
    ("31611", "Service port default/hello-world,"),             # a node port
    ("192.0.2.100:80", "Service port default/lb-ranges:http,"),  # a load-balancer IP
])
def test_a_service_can_be_named_the_kubectl_way(cli, arg, expect):
    assert first_port(ok(cli, "trace", arg, *RULES, "--node-ip", "192.168.10.11")).startswith(expect)


def test_an_ipv6_cluster_ip_is_found_in_the_ip6tables_dump(cli):
    v6 = ["--rules", str(IPT / "ip6tables-save.txt")]
    out = ok(cli, "services", *v6, "-o", "json")
    port = next(p for p in json.loads(out)["services"] if p["name"] == "default/v6-only:http")
    traced = ok(cli, "trace", f"[{port['clusterIP']}]:{port['port']}", *v6)
    assert traced.startswith(f"Service port {port['name']}")


def test_explain_takes_the_same_names(cli):
    out = ok(cli, "explain", "10.96.10.10:80", *RULES)
    assert out.startswith("default/hello-world\n")


def test_a_wrong_name_suggests_services_of_other_namespaces(cli):
    r = cli("trace", "kube-dn", *RULES)
    assert r.code == 2
    assert "kube-system/kube-dns" in r.err and "Traceback" not in r.err


def test_an_unknown_address_or_node_port_is_a_clear_error(cli):
    for arg in ("10.96.99.99", "30999", "10.96.10.10:81"):
        r = cli("trace", arg, *RULES)
        assert r.code == 2 and "no service has the" in r.err, (arg, r.err)


def test_n_narrows_a_bare_name_and_A_refuses_to_combine_with_it(cli):
    r = cli("trace", "kube-dns", "-n", "default", *RULES)
    assert r.code == 2 and "'default/kube-dns'" in r.err
    r = cli("trace", "kube-dns", "-n", "default", "-A", *RULES)
    assert r.code == 2 and "cannot be combined" in r.err
    assert first_port(ok(cli, "trace", "kube-dns", "-A", *RULES)).startswith("Service port kube-system/kube-dns:")


def test_a_name_in_two_namespaces_needs_the_namespace(cli, tmp_path):
    text = (IPT / "iptables-save.txt").read_text()
    # the comment of one dispatch rule renamed: a Service 'kube-dns' in default too
    line = next(ln for ln in text.splitlines() if ln.startswith("-A KUBE-SERVICES") and "kube-system/kube-dns" in ln)
    dump = text.replace(line, line.replace("kube-system/kube-dns", "default/kube-dns"))
    path = tmp_path / "dump.txt"
    path.write_text(dump)
    r = cli("trace", "kube-dns", "-A", "--rules", str(path))
    assert r.code == 2 and "default/kube-dns, kube-system/kube-dns" in r.err


# --- -o names, --no-headers ------------------------------------------------------

@pytest.mark.parametrize("command", [["services"], ["trace", "default/hello-world"],
                                     ["explain", "default/hello-world"], ["check"]])
def test_every_command_takes_table_text_json_and_yaml(cli, command):
    outs = {}
    for fmt in ("table", "text", "json", "yaml"):
        r = cli(*command, *RULES, "-o", fmt)
        assert r.code in (0, 1), (command, fmt, r.err)
        outs[fmt] = r.out
    assert outs["table"] == outs["text"]
    assert yaml.safe_load(outs["yaml"]) == json.loads(outs["json"])


def test_services_name_output_lists_services_once(cli):
    names = ok(cli, "services", *RULES, "-o", "name").splitlines()
    assert "default/hello-world" in names and "kube-system/kube-dns" in names
    assert len(names) == len(set(names))
    assert ok(cli, "services", *RULES, "-o", "name", "-n", "kube-system").splitlines() == ["kube-system/kube-dns"]


def test_services_wide_and_no_headers(cli):
    table = ok(cli, "services", *RULES)
    wide = ok(cli, "services", *RULES, "-o", "wide")
    bare = ok(cli, "services", *RULES, "--no-headers")
    assert "SOURCE RANGES" in wide and "203.0.113.0/24" in wide and "10.244.1.10:8080" in wide
    assert table.startswith("SERVICE PORT") and not bare.startswith("SERVICE PORT")
    assert "----" not in bare.split("\n\n")[0]
    assert "default/hello-world " in bare


def test_trace_wide_output_is_the_wide_flag(cli):
    assert ok(cli, "trace", "default/hello-world", *RULES, "-o", "wide") == \
        ok(cli, "trace", "default/hello-world", *RULES, "--wide")


def test_a_format_a_command_cannot_give_is_refused(cli):
    r = cli("trace", "default/hello-world", *RULES, "-o", "name")
    assert r.code == 2 and "is not one of" in r.err


# --- -v and --debug after the subcommand -------------------------------------------

def test_verbose_and_debug_work_after_the_subcommand(cli):
    from conftest import WILD
    wild = ["--rules", str(WILD / "016-counters-xlb-user-annotated-excerpt.rules")]
    quiet = cli("services", *wild)
    loud = cli("services", *wild, "-v")
    assert loud.code == 0 and "informational" in quiet.err and "informational" not in loud.err
    r = cli("trace", "nope", *RULES, "--debug")
    assert r.code == 2 and "Traceback" in r.err


# --- completion ----------------------------------------------------------------------

@pytest.mark.parametrize("shell,marker", [("bash", "complete -o nosort -F"), ("zsh", "compdef"),
                                          ("fish", "complete --no-files --command svcinspect")])
def test_completion_scripts(cli, shell, marker):
    assert marker in ok(cli, "completion", shell)


def _complete(words: str, cword: int) -> list[str]:
    env = dict(os.environ, COMP_WORDS=words, COMP_CWORD=str(cword), _SVCINSPECT_COMPLETE="bash_complete",
               PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "svcinspect"], env=env, capture_output=True, text=True, timeout=60)
    return [line.split(",", 1)[1] for line in r.stdout.splitlines() if "," in line]


def test_service_names_complete_from_the_rules_given():
    rules = str(IPT / "iptables-save.txt")
    assert _complete(f"svcinspect trace --rules {rules} hello", 4) == ["hello-world"]
    assert _complete(f"svcinspect explain --rules {rules} kube-system/", 4) == ["kube-system/kube-dns"]
    assert _complete("svcinspect trace hello", 2) == []  # no --rules: nothing is read
    assert "explain" in _complete("svcinspect ex", 1)


def test_graph_takes_the_same_names(cli):
    expected = ok(cli, "graph", "default/hello-world", *RULES)
    for arg in ("hello-world", "svc/hello-world", "31611", "10.96.10.10:80"):
        assert ok(cli, "graph", arg, *RULES) == expected, arg
    assert ok(cli, "graph", "kube-dns", "-n", "kube-system", *RULES) == ok(cli, "graph", "kube-system/kube-dns", *RULES)
