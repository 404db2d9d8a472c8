"""One static page for the whole study: ``reports/index.html`` from the reports' JSON files.

Nothing is computed here: every number on the page is a cell of a table some command
wrote (the ``table`` of its JSON: the same values as its Markdown and CSV), every
picture a PNG beside it, linked relatively, so the page opens from the file system,
offline, with no external asset. Sections without data say which command makes them.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import OutputError
from ..fileio import write_text_atomic
from .tables import fmt

DATASETS = ("mnist", "embedded")


@dataclass(frozen=True)
class Section:
    anchor: str
    title: str
    body: str
    summary: str  # one line for the summary at the top


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("table"), dict) else None


def _table(report: dict[str, Any], table_id: str, keep: Sequence[str] | None = None) -> str:
    """A sortable table of a report: visible text as the Markdown shows it, the raw value
    in ``data-value`` (what the browser test compares with the JSON)."""
    t = report["table"]
    columns: list[str] = t["columns"]
    chosen = [columns.index(c) for c in keep] if keep else list(range(len(columns)))
    head = "".join(f'<th scope="col" title="sort">{html.escape(columns[i])}</th>' for i in chosen)
    body = []
    for row in t["rows"]:
        cells = []
        for i in chosen:
            value = row[i]
            raw = "" if value is None else html.escape(str(value), quote=True)
            cls = ' class="num"' if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
            cells.append(f'<td data-value="{raw}"{cls}>{html.escape(fmt(value))}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<div class="scroll"><table id="{table_id}" class="sortable"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _notes(report: dict[str, Any]) -> str:
    return "".join(f"<p class=\"note\">{html.escape(n)}</p>" for n in report["table"].get("notes", []))


def _img(src: Path, root: Path, alt: str, cls: str = "") -> str:
    rel = os.path.relpath(src, root).replace(os.sep, "/")
    return (f'<img src="{html.escape(rel, quote=True)}" alt="{html.escape(alt, quote=True)}" class="{cls}" '
            'loading="eager">')


def _missing(what: str, command: str) -> str:
    return f'<p class="missing">No {html.escape(what)} yet: <code>{html.escape(command)}</code> makes it.</p>'


def _ablation(root: Path, dataset: str) -> Section:
    anchor, title = f"ablation-{dataset}", f"Accuracy: the study's table beside ours ({dataset} data)"
    report = _read(root / dataset / "ablation.json")
    if report is None:
        out = f"reports/{dataset}"
        data = "--data mnist" if dataset == "mnist" else "--data embedded"
        return Section(anchor, title, _missing("ablation table", f"robustdigits ablate {data} --out {out} --overwrite"),
                       "not run yet")
    curves = sorted((root / dataset).glob("loss_*.png"))
    gallery = "".join(f"<figure>{_img(p, root, p.stem, 'thumb')}<figcaption>{html.escape(p.stem[5:])}</figcaption>"
                      "</figure>" for p in curves)
    rows = report["table"]["rows"]
    summary = f"{len(rows)} variants, seeds: {report['meta'].get('seeds', 1)}"
    body = (_notes(report) + _table(report, f"table-{anchor}")
            + (f"<h3>Loss curves (seed 1)</h3><div class=\"grid\">{gallery}</div>" if curves else ""))
    return Section(anchor, title, body, summary)


def _attack(root: Path) -> Section:
    anchor, title = "attack", "The study's attack: each digit into the next"
    folder = next(iter(sorted((root / "mnist" / "attack").glob("*/results.json"))), None) or \
        next(iter(sorted((root / "embedded" / "attack").glob("*/results.json"))), None)
    report = _read(folder) if folder else None
    if report is None or folder is None:
        return Section(anchor, title, _missing("attack gallery", "robustdigits attack --out reports/mnist/attack"),
                       "not run yet")
    ok = sum(1 for r in report["records"] if r["success"])
    body = (_notes(report) + f"<figure>{_img(folder.parent / 'gallery.png', root, 'attack gallery', 'wide')}"
            "<figcaption>reference | adversarial | difference, per digit</figcaption></figure>"
            + _table(report, "table-attack"))
    return Section(anchor, title, body, f"{ok} of {len(report['records'])} digits read as the target")


def _bench(root: Path) -> Section:
    anchor, title = "bench", "Our attack beside ART's"
    for dataset in DATASETS:
        report = _read(root / dataset / "bench.json")
        if report is not None:
            sweeps = "".join(f"<figure>{_img(p, root, p.stem, 'half')}</figure>"
                             for p in sorted((root / dataset).glob("bench_*_sweep.png")))
            body = _notes(report) + _table(report, "table-bench") + f'<div class="grid">{sweeps}</div>'
            return Section(anchor, title, body, f"{len(report['table']['rows'])} model × attack rows ({dataset})")
    return Section(anchor, title, _missing("benchmark", "robustdigits bench --out reports/mnist"), "not run yet")


def _robustness(root: Path) -> Section:
    anchor, title = "robustness", "Robustness of the variants"
    for folder in (root, root / "embedded"):
        report = _read(folder / "robustness.json")
        if report is not None:
            figures = "".join(f"<figure>{_img(folder / name, root, name, 'half')}</figure>"
                              for name in ("robustness_l2.png", "robustness_linf.png") if (folder / name).is_file())
            body = _notes(report) + _table(report, "table-robustness") + f'<div class="grid">{figures}</div>'
            problems = report["meta"].get("sanity_problems", [])
            return Section(anchor, title, body, f"{len(report['table']['rows'])} rows; sanity checks: "
                           + ("all hold" if not problems else f"{len(problems)} problems"))
    return Section(anchor, title, _missing("robustness table", "robustdigits robustness --out reports"),
                   "not run yet")


def _runs(root: Path) -> Section:
    """Where and with what settings each report was made."""
    items = []
    for path in sorted(root.glob("**/*.json")):
        if "runs" in path.relative_to(root).parts or path.name == "grid.json":
            continue
        report = _read(path)
        if report is None:
            continue
        meta = report["meta"]
        machine = meta.get("machine", {})
        where = machine.get("gpu") or (f"{machine.get('machine', '?')} CPU, {machine.get('cpu_count', '?')} cores, "
                                       f"{machine.get('torch_threads', '?')} torch threads")
        settings = {k: meta[k] for k in ("config", "budget", "steps", "seeds") if k in meta}
        dataset = meta.get("dataset", {}).get("name", "")
        items.append(f"<li><code>{html.escape(str(path.relative_to(root)))}</code>: {html.escape(dataset)} data; "
                     f"{html.escape(where)}; torch {html.escape(str(machine.get('torch', '?')))}"
                     f"<details><summary>settings</summary><pre>{html.escape(json.dumps(settings, indent=1))}"
                     "</pre></details></li>")
    body = f"<ul class=\"runs\">{''.join(items)}</ul>" if items else _missing("runs", "robustdigits reproduce")
    return Section("runs", "Machines and settings of every run", body, f"{len(items)} reports")


STYLE = """
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1200px;padding:0 1rem;
color:#1d1d1f}
h1{margin:1.2rem 0 .3rem}h2{margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;font-size:13px;margin:.5rem 0}th,td{border:1px solid #ddd;padding:3px 6px}
th{background:#f3f3f5;cursor:pointer;position:sticky;top:0}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr:nth-child(even) td{background:#fafafa}.scroll{overflow-x:auto}.note{color:#555;font-size:13px;margin:.3rem 0}
.grid{display:flex;flex-wrap:wrap;gap:.6rem}figure{margin:.3rem}figcaption{font-size:12px;color:#555;text-align:center}
img.thumb{width:260px}img.half{width:560px;max-width:100%}img.wide{max-width:100%}
.missing{background:#fff6e0;border:1px solid #f0d48a;padding:.5rem}.summary li{margin:.15rem 0}
@media print{th{position:static}.scroll{overflow:visible}a{color:inherit}img.half{width:48%}details{display:none}}
"""

SORT = """
document.querySelectorAll('table.sortable th').forEach(function(th, col){
  th.addEventListener('click', function(){
    var body = th.closest('table').tBodies[0], rows = Array.from(body.rows);
    var dir = th.dataset.dir === 'asc' ? -1 : 1; th.dataset.dir = dir === 1 ? 'asc' : 'desc';
    rows.sort(function(a, b){
      var x = a.cells[col].dataset.value, y = b.cells[col].dataset.value, nx = parseFloat(x), ny = parseFloat(y);
      return dir * ((isNaN(nx) || isNaN(ny)) ? x.localeCompare(y) : nx - ny);
    });
    rows.forEach(function(r){ body.appendChild(r); });
  });
});
"""


def build_index(root: str | os.PathLike[str]) -> str:
    """The page's HTML for the reports folder ``root``."""
    base = Path(root)
    sections = [_ablation(base, "mnist"), _ablation(base, "embedded"), _attack(base), _bench(base),
                _robustness(base), _runs(base)]
    summary = "".join(f'<li><a href="#{s.anchor}">{html.escape(s.title)}</a>: {html.escape(s.summary)}</li>'
                      for s in sections)
    parts = [f'<section id="{s.anchor}"><h2>{html.escape(s.title)}</h2>{s.body}</section>' for s in sections]
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>robustdigits: the study on one page</title><style>{STYLE}</style></head><body>"
            "<h1>robustdigits: the study on one page</h1><p class=\"note\">Built by <code>robustdigits report</code> "
            "from the JSON files in this folder; click a column header to sort.</p>"
            f"<ul class=\"summary\">{summary}</ul>{''.join(parts)}<script>{SORT}</script></body></html>\n")


def write_index(root: str | os.PathLike[str], out: str | os.PathLike[str] | None = None) -> Path:
    """Write the page to ``out`` (default ``<root>/index.html``), atomically."""
    path = Path(out) if out is not None else Path(root) / "index.html"
    if Path(path).parent.resolve() != Path(root).resolve():
        raise OutputError("the page links its pictures relatively: write it into the reports folder itself")
    return write_text_atomic(path, build_index(root))
