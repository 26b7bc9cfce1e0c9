"""One self-contained HTML page for a :class:`svcinspect.report.Report`.

No external request can leave the page: everything is inline (CSS, the graphs as
SVG, a small script to sort and filter the services table), and a
Content-Security-Policy allows nothing else (``default-src 'none'``, the script
by its hash). Chain names, comments and object names come from the input and may
be hostile: every text is HTML-escaped, and each SVG drawn by Graphviz is parsed
and rebuilt from a short list of drawing elements and attributes (no script, no
event handler, no link, no foreign object).
"""

from __future__ import annotations

import base64
import hashlib
import html
import xml.etree.ElementTree as ET

from svcinspect.render.explain import cite_text, message, render_explanation, section_title, sentence_text

SVG_NS = "http://www.w3.org/2000/svg"
_SVG_ELEMENTS = {"svg", "g", "title", "polygon", "path", "ellipse", "text", "polyline", "line", "rect", "circle",
                 "defs", "desc", "tspan"}
_SVG_ATTRIBUTES = {"width", "height", "viewBox", "transform", "id", "class", "points", "d", "cx", "cy", "rx", "ry",
                   "x", "y", "x1", "y1", "x2", "y2", "r", "fill", "stroke", "stroke-width", "stroke-dasharray",
                   "font-family", "font-size", "font-weight", "font-style", "text-anchor", "fill-opacity",
                   "stroke-opacity", "opacity", "preserveAspectRatio"}

SCRIPT = """
(function () {
  var table = document.getElementById('services');
  var body = table.tBodies[0];
  var filter = document.getElementById('filter');
  function apply() {
    var q = filter.value.trim().toLowerCase();
    var shown = 0;
    Array.prototype.forEach.call(body.rows, function (row) {
      var hit = !q || row.textContent.toLowerCase().indexOf(q) >= 0;
      row.hidden = !hit;
      if (hit) { shown += 1; }
    });
    Array.prototype.forEach.call(document.querySelectorAll('section.service'), function (s) {
      s.hidden = !!q && s.getAttribute('data-name').toLowerCase().indexOf(q) < 0;
    });
    document.getElementById('shown').textContent = String(shown);
  }
  filter.addEventListener('input', apply);
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
    th.addEventListener('click', function () {
      var asc = th.getAttribute('aria-sort') !== 'ascending';
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (c) { c.removeAttribute('aria-sort'); });
      th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].getAttribute('data-key') || a.cells[col].textContent;
        var y = b.cells[col].getAttribute('data-key') || b.cells[col].textContent;
        var nx = parseFloat(x), ny = parseFloat(y);
        var r = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return asc ? r : -r;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
  var m = /[#&]q=([^&]*)/.exec(location.hash);
  if (m) { filter.value = decodeURIComponent(m[1]); }
  apply();
  // For people: nothing. For a headless check: the script ran, and where the table is.
  document.documentElement.setAttribute('data-services-top', String(Math.round(table.getBoundingClientRect().top)));
  document.documentElement.setAttribute('data-ready', '1');
})();
"""

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans CJK SC",sans-serif;margin:0;color:#1d2330;
background:#f7f8fa}
header{background:#1f3a5f;color:#fff;padding:14px 24px}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;opacity:.85}
main{padding:16px 24px}
h2{font-size:17px;margin:24px 0 8px;border-bottom:1px solid #d5dae3;padding-bottom:4px}
table{border-collapse:collapse;background:#fff;width:100%;font-size:13px}
th,td{border:1px solid #d5dae3;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#e9edf3;cursor:pointer;user-select:none;white-space:nowrap}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
tr:nth-child(even) td{background:#fafbfc}
input#filter{font:inherit;padding:5px 8px;width:320px;margin:0 8px 8px 0;border:1px solid #b8c0cc;border-radius:4px}
pre{background:#fff;border:1px solid #d5dae3;padding:8px;overflow:auto;font-size:12px;line-height:1.35}
.warn{color:#8a5300}.err{color:#a40000}.ok{color:#1d6b2f}
section.service{background:#fff;border:1px solid #d5dae3;border-radius:4px;margin:12px 0;padding:4px 12px}
section.service h3{font-size:15px;margin:8px 0}
.graph{overflow:auto;max-height:640px;border:1px solid #eef0f4}
ul.explain li{margin:2px 0}.cite{color:#5a6475;font-size:12px}
code{font-size:12px}
"""


def render_report_html(report, svgs: dict[str, str | None] | None = None, lang: str = "en") -> str:
    """The page. ``svgs``: Service name -> SVG text drawn from its DOT (None:
    drawing failed or Graphviz is missing; the DOT text is shown instead)."""
    svgs = svgs or {}
    e = html.escape
    origin = ", ".join(report.origin) or "input"
    parts = ["<!DOCTYPE html>", '<html lang="' + ("zh" if lang == "zh" else "en") + '">', "<head>",
             '<meta charset="utf-8">',
             '<meta http-equiv="Content-Security-Policy" content="' + _csp() + '">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>svcinspect report: {e(origin)}</title>", f"<style>{CSS}</style>", "</head>", "<body>",
             f"<header><h1>svcinspect report</h1><p>{e(origin)}"
             + (f" &middot; node {e(report.node)}" if report.node else "") + "</p></header>", "<main>"]
    parts += _summary(report)
    parts += _services_table(report)
    if report.check is not None:
        parts += _check(report.check)
    parts.append('<h2 id="details">Services in detail</h2>')
    if report.omitted:
        parts.append(f'<p class="warn">{report.omitted} more Service(s) are in the table above but not drawn here '
                     f"(--max-services).</p>")
    for d in report.details:
        parts += _detail(d, svgs.get(d.name), lang)
    parts += _diagnostics(report)
    parts += ["</main>", f"<script>{SCRIPT}</script>", "</body>", "</html>"]
    return "\n".join(parts) + "\n"


def _csp() -> str:
    digest = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
    return (f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{digest}'; img-src data:; "
            "base-uri 'none'; form-action 'none'")


def _summary(report) -> list[str]:
    e = html.escape
    out = ['<h2 id="input">Input</h2>', "<table><thead><tr><th>FAMILY</th><th>TABLE</th><th>CHAINS</th>"
           "<th>RULES</th></tr></thead><tbody>"]
    for t in report.tables:
        out.append(f"<tr><td>IPv{t.family}</td><td>{e(t.table)}</td><td>{t.chains}</td><td>{t.rules}</td></tr>")
    out.append("</tbody></table>")
    out.append('<h2 id="completeness">Completeness</h2>')
    if report.completeness:
        out.append("<ul>" + "".join(f'<li class="warn">{e(c)}</li>' for c in report.completeness) + "</ul>")
    else:
        out.append('<p class="ok">Complete: both families, nat and filter, kube-proxy\'s hooks, and the objects.</p>')
    return out


def _services_table(report) -> list[str]:
    from svcinspect.render.text import endpoints_summary
    from svcinspect.model.service import EntryKind

    e = html.escape
    out = ['<h2 id="services-heading">Services</h2>',
           f'<input id="filter" type="search" placeholder="filter: name, address, port..." '
           f'aria-label="filter the services"><span><span id="shown">{len(report.ports)}</span> of '
           f"{len(report.ports)} service ports</span>",
           '<table id="services"><thead><tr><th>SERVICE PORT</th><th>FAMILY</th><th>PROTO</th><th>CLUSTER IP</th>'
           "<th>NODE PORT</th><th>EXTERNAL / LB</th><th>ENDPOINTS</th><th>AFFINITY</th><th>CHAIN</th></tr></thead>"
           "<tbody>"]
    for sp in report.ports:
        cip = sp.cluster_ip
        ext = [f"ext {x.address}" for x in sp.entries_of(EntryKind.EXTERNAL_IP) if x.address]
        ext += [f"lb {x.address}" for x in sp.entries_of(EntryKind.LOAD_BALANCER) if x.address and x.table == "nat"]
        n = len(sp.endpoints)
        name = sp.name.split(":")[0] if sp.name else sp.key
        cells = [
            f'<td><a href="#svc-{_anchor(name)}">{e(sp.display_name)}</a></td>',
            f"<td>IPv{int(sp.family)}</td>", f"<td>{e(sp.protocol or '?')}</td>",
            f"<td>{e(f'{cip.address}:{cip.port}') if cip and cip.address else '-'}</td>",
            f'<td data-key="{sp.node_port or 0}">{sp.node_port or "-"}</td>',
            f"<td>{e(', '.join(ext)) or '-'}</td>",
            f'<td data-key="{n}">{e(endpoints_summary(sp.endpoints, sp))}</td>',
            f"<td>{e(f'ClientIP {sp.affinity_seconds}s') if sp.affinity_seconds is not None else '-'}</td>",
            f"<td><code>{e(str(sp.chains.get('svc') or sp.chains.get('svl') or sp.chains.get('xlb') or '-'))}"
            f"</code></td>"]
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return out


def _check(check) -> list[str]:
    from svcinspect.render.check import render_check_text

    counts = check.counts()
    cls = "err" if counts["error"] else ("warn" if counts["warning"] else "ok")
    return ['<h2 id="check">Check: rules against the objects</h2>',
            f'<p class="{cls}">{counts["error"]} error(s), {counts["warning"]} warning(s), {counts["info"]} info</p>',
            f"<pre>{html.escape(render_check_text(check))}</pre>"]


def _detail(d, svg: str | None, lang: str) -> list[str]:
    from svcinspect.render.text import render_trace

    e = html.escape
    out = [f'<section class="service" id="svc-{_anchor(d.name)}" data-name="{e(d.name)}">', f"<h3>{e(d.name)}</h3>"]
    for p in d.problems:
        out.append(f'<p class="warn">{e(p)}</p>')
    if svg:
        out.append(f'<div class="graph">{svg}</div>')
    elif d.dot:
        out.append("<p class=\"warn\">graph not drawn (Graphviz's dot is missing); its DOT text:</p>")
        out.append(f"<details><summary>DOT</summary><pre>{e(d.dot)}</pre></details>")
    if d.explanation is not None:
        out.append("<details open><summary>Explanation</summary>")
        for pe in d.explanation.ports:
            for sec in pe.sections:
                out.append(f"<h4>{e(pe.name)}: {e(section_title(sec, lang))}</h4><ul class=\"explain\">")
                for s in sec.sentences:
                    cites = "; ".join(cite_text(c, lang) for c in s.cites)
                    tip = "\n".join(c.rule for c in s.cites)
                    cite = f' <span class="cite" title="{e(tip)}">[{e(cites)}]</span>' if cites else ""
                    if not cites and s.general:
                        cite = f' <span class="cite">[{e(message("cite.general", {}, lang))}]</span>'
                    out.append(f"<li>{e(sentence_text(s, lang))}{cite}</li>")
                out.append("</ul>")
        out.append("</details>")
    if d.trace is not None:
        out.append(f"<details><summary>Trace</summary><pre>{e(render_trace(d.trace, wide=True))}</pre></details>")
    out.append("</section>")
    return out


def _diagnostics(report) -> list[str]:
    out = ['<h2 id="diagnostics">Diagnostics</h2>']
    if not report.diagnostics:
        out.append('<p class="ok">None.</p>')
        return out
    out.append("<ul>" + "".join(f'<li class="{"err" if d.severity >= 2 else "warn" if d.severity == 1 else ""}">'
                                f"{html.escape(str(d))}</li>" for d in report.diagnostics[:500]) + "</ul>")
    if len(report.diagnostics) > 500:
        out.append(f"<p>... and {len(report.diagnostics) - 500} more.</p>")
    return out


def _anchor(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def safe_svg(svg: bytes | str) -> str:
    """Graphviz's SVG rebuilt from allowed drawing elements and attributes only,
    ready to inline; raises ValueError when it is not SVG."""
    text = svg.decode("utf-8", "replace") if isinstance(svg, bytes) else svg
    start = text.find("<svg")
    if start < 0:
        raise ValueError("not an SVG document")
    root = ET.fromstring(text[start:])
    if _local(root.tag) != "svg":
        raise ValueError("not an SVG document")
    clean = _clean(root)
    ET.register_namespace("", SVG_NS)
    return ET.tostring(clean, encoding="unicode")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _clean(el: ET.Element) -> ET.Element:
    out = ET.Element(f"{{{SVG_NS}}}{_local(el.tag)}")
    for k, v in el.attrib.items():
        if "}" in k:  # namespaced attributes (xlink:href...): never needed for a drawing
            continue
        if k in _SVG_ATTRIBUTES and "javascript:" not in v.lower() and "url(" not in v.lower():
            out.set(k, v)
    out.text = el.text
    for child in el:
        tag = _local(child.tag)
        if tag in _SVG_ELEMENTS:
            c = _clean(child)
            c.tail = child.tail
            out.append(c)
        elif tag == "a":  # a link group: keep what it draws, drop the link
            g = ET.Element(f"{{{SVG_NS}}}g")
            for grandchild in child:
                if _local(grandchild.tag) in _SVG_ELEMENTS:
                    g.append(_clean(grandchild))
            out.append(g)
    return out


__all__ = ["render_report_html", "safe_svg", "render_explanation"]
