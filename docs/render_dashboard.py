#!/usr/bin/env python3
"""Render deploy/grafana/svcinspect-dashboard.json's panels from real Prometheus
data into docs/node-agent-dashboard.png (Grafana is not installed here, so this
draws each panel itself: stats, tables, line charts, from the panel's own PromQL).

The data: the scenario of tests/test_serve_prometheus.py (the lab's namespaces
with the real sequence captures, `svcinspect serve --interval 1`, Debian's
Prometheus scraping every second): clean, real connections to hello-world and
to the affinity Service, drift (step0 rules, step1 objects), then step1 rules.

    sudo python3 docs/render_dashboard.py        # needs root, prometheus, chromium
"""

from __future__ import annotations

import html
import re
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from netlab import Lab  # noqa: E402
from test_deploy import dashboard_exprs  # noqa: E402
from test_serve_prometheus import SEQ, STEPS, Prom, _free_port, _objects, _restore, wait_for  # noqa: E402

COLORS = ["#5794f2", "#f2495c", "#73bf69", "#fade2a", "#b877d9", "#ff9830", "#8ab8ff", "#ca95e5"]


def query_range(prom: Prom, expr: str, start: float, end: float) -> list[dict]:
    url = f"http://127.0.0.1:{prom.port}/api/v1/query_range?" + urllib.parse.urlencode(
        {"query": expr, "start": start, "end": end, "step": 1})
    return json.load(urllib.request.urlopen(url, timeout=10))["data"]["result"]


def legend(metric: dict, fmt: str) -> str:
    if fmt and fmt != "__auto":
        out = fmt
        for k, v in metric.items():
            out = out.replace("{{" + k + "}}", v)
        return re.sub(r"\{\{\w+\}\}", "", out)  # a label the series lacks is empty, as in Grafana
    return ", ".join(f"{k}={v}" for k, v in metric.items() if k != "__name__") or "value"


def svg_chart(series: list[tuple[str, list[tuple[float, float]]]], start: float, end: float, w=560, h=190) -> str:
    pts = [v for _, s in series for _, v in s]
    if not pts:
        return "<p class=empty>no data</p>"
    top = max(pts) * 1.1 or 1
    out = [f'<svg width="{w}" height="{h}" viewBox="0 0 {w} {h}">']
    for i in range(5):
        y = 10 + (h - 30) * i / 4
        out.append(f'<line x1="40" x2="{w}" y1="{y}" y2="{y}" stroke="#333"/>'
                   f'<text x="2" y="{y + 4}" fill="#999" font-size="10">{top * (4 - i) / 4:.3g}</text>')
    for n, (_, s) in enumerate(series):
        path = " ".join(f"{40 + (w - 45) * (t - start) / max(end - start, 1):.1f},"
                        f"{10 + (h - 30) * (1 - v / top):.1f}" for t, v in s)
        out.append(f'<polyline fill="none" stroke="{COLORS[n % len(COLORS)]}" stroke-width="2" points="{path}"/>')
    out.append("</svg>")
    keys = "".join(f'<span style="color:{COLORS[n % len(COLORS)]}">&#9632; {html.escape(name)}</span> '
                   for n, (name, _) in enumerate(series))
    return "".join(out) + f"<div class=legend>{keys}</div>"


def main() -> None:
    for tool in ("prometheus", "chromium"):
        if shutil.which(tool) is None:
            sys.exit(f"needs {tool}")
    dash = json.loads((ROOT / "deploy" / "grafana" / "svcinspect-dashboard.json").read_text())
    tmp = Path(tempfile.mkdtemp(prefix="svcinspect-dash-"))
    lab = Lab((SEQ / STEPS[0] / "iptables-save.txt").read_text())
    serve = prom = None
    try:
        lab.node.restore((SEQ / STEPS[0] / "ip6tables-save.txt").read_text(), 6, "legacy")
        objects = tmp / "objects.json"
        _objects(objects, STEPS[0])
        port = _free_port()
        serve = subprocess.Popen([sys.executable, "-m", "svcinspect", "serve", "--netns", lab.node.name, "--objects",
                                  str(objects), "--node", "node-a", "--interval", "1", "--listen",
                                  f"127.0.0.1:{port}"], env=dict(os.environ, PYTHONPATH=str(ROOT)),
                                 stderr=subprocess.DEVNULL)
        prom = Prom(tmp, f"127.0.0.1:{port}")
        start = time.time()
        wait_for(lambda: prom.value("svcinspect_findings{severity=\"error\"}") == 0, "first scrape")
        clients = []
        for i in range(4):
            clients.append(lab.connect("10.96.10.10", 80, 60)[0])
            time.sleep(3)
        clients.append(lab.connect("10.96.70.10", 80, 40)[0])
        time.sleep(8)
        _objects(objects, STEPS[1])
        wait_for(lambda: "SvcinspectRulesDrift" in prom.firing(), "drift alert")
        time.sleep(15)
        _restore(lab, STEPS[1])
        time.sleep(10)
        end = time.time()
        exprs = [e for _, e in dashboard_exprs()]  # one target per panel, in order
        cells = []
        for panel, expr in zip(dash["panels"], exprs):
            fmt = panel["targets"][0].get("legendFormat", "")
            g = panel["gridPos"]
            body = ""
            if panel["type"] == "stat":
                res = prom.query(expr)
                body = f'<div class=stat>{float(res[0]["value"][1]):g}</div>' if res else "<p class=empty>-</p>"
            elif panel["type"] == "table":
                res = query_range(prom, expr, start, end)
                rows = {}
                for r in res:  # the last value of each series over the window
                    rows[tuple(sorted((k, v) for k, v in r["metric"].items()))] = r["values"][-1][1]
                keys = sorted({k for key in rows for k, _ in key})
                body = "<table><tr>" + "".join(f"<th>{k}</th>" for k in keys) + "<th>value</th></tr>"
                for key, v in sorted(rows.items())[:8]:
                    d = dict(key)
                    body += "<tr>" + "".join(f"<td>{html.escape(d.get(k, ''))}</td>" for k in keys) + f"<td>{v}</td></tr>"
                body += "</table>"
            else:
                res = query_range(prom, expr, start, end)
                series = [(legend(r["metric"], fmt), [(float(t), float(v)) for t, v in r["values"]]) for r in res]
                moving = [s for s in series if any(v for _, v in s[1])]  # all-zero series only when nothing moves
                series = sorted(moving or series, key=lambda s: -max((v for _, v in s[1]), default=0))
                body = svg_chart(series, start, end, w=max(300, g["w"] * 46 - 30))
            cells.append(f'<div class=panel style="grid-column:{g["x"] + 1}/span {g["w"]};grid-row:{g["y"] + 1}/span '
                         f'{g["h"]}"><h3>{html.escape(panel["title"])}</h3>{body}</div>')
        page = ("<html><head><style>body{background:#111217;color:#ccc;font:12px sans-serif;margin:8px}"
                ".grid{display:grid;grid-template-columns:repeat(24,1fr);grid-auto-rows:30px;gap:6px}"
                ".panel{background:#181b1f;border:1px solid #2c3235;padding:6px;overflow:hidden}"
                "h3{margin:0 0 4px;font-size:13px;color:#eee}.stat{font-size:40px;color:#73bf69;text-align:center}"
                "table{border-collapse:collapse;font-size:11px}td,th{border-bottom:1px solid #2c3235;padding:2px 6px;"
                "text-align:left}.legend{font-size:10px}.empty{color:#666}</style></head><body>"
                f"<h2>{html.escape(dash['title'])} (panels from real Prometheus data)</h2>"
                f"<div class=grid>{''.join(cells)}</div></body></html>")
        (tmp / "dash.html").write_text(page)
        out = ROOT / "docs" / "node-agent-dashboard.png"
        subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--screenshot={out}", "--window-size=1400,1500", f"file://{tmp / 'dash.html'}"],
                       check=True, capture_output=True, timeout=120)
        print(f"wrote {out}")
        for c in clients:
            c.stdin.close()
    finally:
        if serve is not None:
            serve.terminate()
            serve.wait()
        if prom is not None:
            prom.close()
        lab.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
