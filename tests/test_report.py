"""``report --out FILE.html``: one self-contained page.

The structure test reads the file (no browser). The browser tests load it in
real headless Chromium (skipped, with the reason, when it is missing): with a
proxy on 127.0.0.1 that records any request the page makes (none may arrive),
the console logged (no message may appear), the DOM after the script ran, and
a screenshot of the first screen, which shows the services table.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import re
import shutil
import struct
import subprocess
import tempfile
import threading
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conftest import IPT, KP

RULES = ["--rules", str(IPT / "iptables-save.txt"), "--rules", str(IPT / "ip6tables-save.txt")]
OBJECTS = ["--objects", str(IPT / "objects.json"), "--node", "node-a"]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot (apt-get install graphviz)")


class Page(HTMLParser):
    """Every start tag with its attributes, the scripts' text, and the text of the services table's rows."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.scripts: list[str] = []
        self._in_script = False
        self.rows = 0
        self._in_services = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "script":
            self._in_script = True
            self.scripts.append("")
        if tag == "table":
            self._in_services = a.get("id") == "services"
        if tag == "tr" and self._in_services:
            self.rows += 1

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False
        if tag == "table":
            self._in_services = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data


@pytest.fixture(scope="module")
def page_file(tmp_path_factory):
    from svcinspect.cli import main
    out = tmp_path_factory.mktemp("report") / "report.html"
    try:
        main(["report", *RULES, *OBJECTS, "--out", str(out)])
    except SystemExit as exc:
        assert exc.code == 0
    return out


def parse(path: Path) -> Page:
    p = Page()
    p.feed(path.read_text())
    return p


def service_ports(cli) -> list[dict]:
    r = cli("services", *RULES, "-o", "json")
    return json.loads(r.out)["services"]


# --- the file ------------------------------------------------------------------------

def test_the_page_is_self_contained(page_file):
    page = parse(page_file)
    for tag, attrs in page.tags:
        for k, v in attrs.items():
            if k in ("src", "href", "action", "data", "poster", "srcset") or k.endswith(":href"):
                assert tag == "a" and k == "href" and v.startswith("#"), (tag, k, v)
        assert tag not in ("link", "iframe", "object", "embed", "img", "base", "form"), tag
    csp = next(a["content"] for t, a in page.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in csp
    (script,) = page.scripts
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in csp  # the one inline script, allowed by its hash


def test_the_page_has_every_part(cli, page_file):
    text = page_file.read_text()
    page = parse(page_file)
    ports = service_ports(cli)
    assert page.rows == len(ports) + 1  # the header row and one per service port
    names = {p["name"].split(":")[0] for p in ports}
    sections = [a["data-name"] for t, a in page.tags if t == "section"]
    assert sorted(sections) == sorted(names)
    for heading in ('id="input"', 'id="completeness"', 'id="services"', 'id="check"', 'id="details"',
                    'id="diagnostics"'):
        assert heading in text
    assert "No findings. The rules match the objects." in text  # check, with the objects
    assert "destination port 31611 to 127.0.0.0/8 matches the localhost rule" in text  # the explanation
    assert "path from this node via localhost (127.0.0.1):" in text  # the trace
    if shutil.which("dot"):
        assert text.count("<svg") == len(sections)


def test_without_objects_the_page_says_what_is_unknown(tmp_path, cli):
    out = tmp_path / "r.html"
    r = cli("report", "--rules", str(IPT / "iptables-save.txt"), "--out", str(out))
    assert r.code == 0, r.err
    text = out.read_text()
    assert "no IPv6 tables in the input" in text and "no Kubernetes objects given" in text
    assert 'id="check"' not in text


HOSTILE = '<script>alert(1)</script>'


def hostile_dump() -> str:
    text = (IPT / "iptables-save.txt").read_text()
    # The hello-world comments name a Service whose name carries markup (comments are attacker-controlled).
    return text.replace('"default/hello-world', '"default/evil' + HOSTILE.replace(" ", ""))


def test_markup_in_the_rules_is_escaped_everywhere(tmp_path, cli):
    dump = tmp_path / "evil.txt"
    dump.write_text(hostile_dump())
    out = tmp_path / "evil.html"
    r = cli("report", "--rules", str(dump), "--out", str(out))
    assert r.code == 0, r.err
    text = out.read_text()
    assert "evil&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert HOSTILE not in text
    page = parse(out)
    assert len(page.scripts) == 1
    assert not any(k.startswith("on") for _, a in page.tags for k in a)


def test_svg_is_rebuilt_from_drawing_elements_only():
    from svcinspect.render.html import safe_svg
    svg = ('<?xml version="1.0"?><!DOCTYPE svg><svg xmlns="http://www.w3.org/2000/svg" '
           'xmlns:xlink="http://www.w3.org/1999/xlink" onload="alert(1)" width="10">'
           '<script>alert(2)</script><a xlink:href="javascript:alert(3)"><text x="1">&lt;b&gt;</text></a>'
           '<foreignObject><div>x</div></foreignObject><g fill="url(http://x/y)"><rect width="1"/></g></svg>')
    clean = safe_svg(svg)
    assert "alert" not in clean and "foreignObject" not in clean and "http://x" not in clean
    assert "&lt;b&gt;" in clean and 'width="10"' in clean and "<rect" in clean


# --- in a real browser -----------------------------------------------------------------

class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[str] = []

    def _any(self):
        type(self).seen.append(f"{self.command} {self.path}")
        self.send_response(404)
        self.end_headers()

    do_GET = do_POST = do_HEAD = do_CONNECT = do_PUT = do_OPTIONS = _any

    def log_message(self, *args):
        pass


def run_chromium(url: str, *extra: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Chromium headless on ``url`` with every request sent to a recording proxy
    on 127.0.0.1 (loopback included); returns the process and what the proxy saw."""
    _Recorder.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with tempfile.TemporaryDirectory() as profile:
            argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
                    f"--proxy-server=http://127.0.0.1:{server.server_address[1]}", "--proxy-bypass-list=<-loopback>",
                    # the browser's own background requests (time, sign-in, updates) are switched off or
                    # pointed at a closed local port, so that any request the proxy sees is the page's
                    "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,MediaRouter,Translate",
                    "--disable-extensions", "--disable-default-apps", "--no-pings", "--disable-domain-reliability",
                    "--disable-client-side-phishing-detection", "--safebrowsing-disable-auto-update",
                    "--google-base-url=http://127.0.0.1:9", "--gaia-url=http://127.0.0.1:9",
                    "--lso-url=http://127.0.0.1:9", "--component-updater=url-source=http://127.0.0.1:9",
                    "--window-size=1400,1000", *extra, url]
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=180)
    finally:
        server.shutdown()
        server.server_close()
    return proc, list(_Recorder.seen)


def console_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ":CONSOLE" in ln or "Uncaught" in ln
            or "Content Security Policy" in ln or "Refused to" in ln]


@needs_chromium
def test_the_page_loads_with_no_console_message_and_no_request(page_file):
    proc, requests = run_chromium(page_file.as_uri() + "#q=hello-world", "--dump-dom")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert requests == []
    assert console_lines(proc.stderr) == []
    dom = proc.stdout
    html_tag = re.search(r"<html[^>]*>", dom).group(0)
    assert 'data-ready="1"' in html_tag  # the script ran to its end
    top = int(re.search(r'data-services-top="(-?\d+)"', html_tag).group(1))
    assert 0 < top < 1000  # the services table starts on the first screen
    assert re.search(r'<span id="shown">1</span>', dom)  # the filter from the URL kept hello-world only
    assert dom.count("<tr hidden") == 29


@needs_chromium
def test_hostile_rules_run_no_script_in_the_browser(tmp_path, cli):
    dump = tmp_path / "evil.txt"
    dump.write_text(hostile_dump())
    out = tmp_path / "evil.html"
    assert cli("report", "--rules", str(dump), "--out", str(out)).code == 0
    proc, requests = run_chromium(out.as_uri(), "--dump-dom")
    assert requests == [] and console_lines(proc.stderr) == []
    assert 'data-ready="1"' in re.search(r"<html[^>]*>", proc.stdout).group(0)


@needs_chromium
def test_a_screenshot_of_the_first_screen(page_file, tmp_path):
    shot = Path(__file__).resolve().parent / "out" / "report-screenshot.png"
    shot.parent.mkdir(exist_ok=True)
    proc, requests = run_chromium(page_file.as_uri(), f"--screenshot={shot}", "--hide-scrollbars")
    assert proc.returncode == 0 and requests == [] and console_lines(proc.stderr) == []
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1400, 1000)
    assert len(data) > 40_000  # a drawn page (tables, text), not a blank one


@needs_chromium
def test_the_browser_checks_would_catch_a_request_and_a_console_error(tmp_path):
    """The two checks above can fail: a page that fetches an image and logs an
    error is caught by both (the request only reaches the local proxy)."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><body><img src="http://198.51.100.1/x.png">'
                   '<script>console.error("boom")</script></body></html>')
    proc, requests = run_chromium(bad.as_uri(), "--dump-dom")
    assert any("198.51.100.1" in r for r in requests)
    assert any("boom" in ln for ln in console_lines(proc.stderr))


def test_max_services_limits_the_details_not_the_table(tmp_path, cli):
    out = tmp_path / "r.html"
    assert cli("report", "--rules", str(IPT / "iptables-save.txt"), "--max-services", "3", "--out", str(out)).code == 0
    page = parse(out)
    ports = len(json.loads(cli("services", "--rules", str(IPT / "iptables-save.txt"), "-o", "json").out)["services"])
    names = {p["name"].split(":")[0] for p in json.loads(cli("services", "--rules", str(IPT / "iptables-save.txt"),
                                                               "-o", "json").out)["services"]}
    assert len([a for t, a in page.tags if t == "section"]) == 3
    assert page.rows == ports + 1
    assert f"{len(names) - 3} more Service(s)" in out.read_text()


def test_an_nftables_node_gets_the_same_page(tmp_path, cli):
    nft = KP / "nftables"
    out = tmp_path / "nft.html"
    r = cli("report", "--rules", str(nft / "nft-list-ruleset.txt"), "--objects", str(nft / "objects.json"),
            "--node", "node-a", "--out", str(out))
    assert r.code == 0, r.err
    text = out.read_text()
    page = parse(out)
    ports = json.loads(cli("services", "--rules", str(nft / "nft-list-ruleset.txt"), "-o", "json").out)["services"]
    assert page.rows == len(ports) + 1
    assert "ip kube-proxy" in text and "ip6 kube-proxy" in text  # the input table, by nft table
    assert "No findings. The rules match the objects." in text
    assert "numgen random mod 3" in text and "no node port on 127.0.0.1" in text  # explanations in nft terms
    assert "KUBE-SERVICES" not in text
