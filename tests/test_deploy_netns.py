"""The DaemonSet's capabilities are the ones reading really needs, on a real
kernel: inside a private network namespace loaded with the real capture (legacy
and nft backends), `svcinspect balance -A` (which runs iptables-*-save -c of
both backends and conntrack -L) works as root with exactly the capabilities the
DaemonSet adds, and fails with a one-line exit-3 error without one it needs:
NET_ADMIN always (nfnetlink, the legacy get-entries call); NET_RAW when legacy
tables exist (iptables-legacy-save opens a raw socket for them; with no legacy
table it reads /proc only). A node with kube-proxy on nft may still have legacy
tables (Docker, old tools, split brain), so the DaemonSet keeps both."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from conftest import IPT, ROOT, needs_netns

pytestmark = [needs_netns, pytest.mark.netns,
              pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)"),
              pytest.mark.skipif(shutil.which("conntrack") is None, reason="needs conntrack (apt-get install conntrack)")]


def _daemonset_caps() -> list[str]:
    docs = yaml.safe_load_all((ROOT / "deploy" / "kubernetes" / "daemonset.yaml").read_text())
    (ds,) = [d for d in docs if d and d["kind"] == "DaemonSet"]
    return ds["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilities"]["add"]


def _run_with(ns, caps: list[str]) -> subprocess.CompletedProcess:
    bounding = ",".join(["-all"] + [f"+{c.lower()}" for c in caps])
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(["ip", "netns", "exec", ns.name, "setpriv", f"--bounding-set={bounding}", "--inh-caps=-all",
                           "--", sys.executable, "-m", "svcinspect", "balance", "-A", "-o", "json"],
                          capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize("backend,needed", [("legacy", ["NET_ADMIN", "NET_RAW"]), ("nft", ["NET_ADMIN"])])
def test_daemonset_capabilities_are_enough_and_each_is_needed(netns, backend, needed):
    caps = _daemonset_caps()
    assert sorted(caps) == ["NET_ADMIN", "NET_RAW"]
    netns.restore((IPT / "iptables-save.txt").read_text(), 4, backend)
    r = _run_with(netns, caps)
    assert r.returncode == 0, r.stderr
    names = {sp["name"] for sp in json.loads(r.stdout)["service_ports"]}
    assert "default/hello-world" in names
    for missing in caps:
        r = _run_with(netns, [c for c in caps if c != missing])
        if missing in needed:
            assert r.returncode == 3, (missing, r.stdout[:200], r.stderr)
            assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
            assert "permission denied" in r.stderr or "root" in r.stderr
        else:
            assert r.returncode == 0, (missing, r.stderr)
