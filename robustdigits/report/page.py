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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import OutputError, ReportError
from ..fileio import write_text_atomic
from .tables import fmt

DATASETS = ("mnist", "embedded")  # always shown, first; other datasets found follow
# A report is known by its file name; its kind decides its section.
KINDS = {"ablation.json": "ablation", "results.json": "attack", "bench.json": "bench",
         "robustness.json": "robustness", "autoattack.json": "autoattack"}
SKIPPED_FOLDERS = ("cells",)  # per-cell results, not reports


@dataclass(frozen=True)
class Section:
    anchor: str
    title: str
    body: str
    summary: str  # one line for the summary at the top


@dataclass(frozen=True)
class Found:
    """One report the page shows: its kind, its JSON file, and what it holds."""

    kind: str
    path: Path
    report: dict[str, Any]

    @property
    def dataset(self) -> str:
        return str(self.report.get("meta", {}).get("dataset", {}).get("name", "unknown"))


def read_report(path: Path) -> dict[str, Any]:
    """A report's JSON: a dict with a ``table`` of ``columns`` and ``rows`` and a ``meta``;
    anything else is named as damaged (the page never shows it as "not run yet")."""
    try:
        data = json.loads(path.read_text())
    except UnicodeDecodeError as e:
        raise ReportError(f"{path.absolute()} is damaged (not UTF-8 text: {e.reason}); rerun the command that wrote "
                          "it, or move it away") from e
    except ValueError as e:
        raise ReportError(f"{path.absolute()} is damaged (not JSON: {e}); rerun the command that wrote it, or move "
                          "it away") from e
    except OSError as e:
        raise ReportError(f"cannot read {path.absolute()} ({e.strerror or e})") from e
    table = data.get("table") if isinstance(data, dict) else None
    ok = (isinstance(table, dict) and isinstance(table.get("columns"), list) and isinstance(table.get("rows"), list)
          and all(isinstance(r, list) and len(r) == len(table["columns"]) for r in table["rows"])
          and isinstance(data.get("meta"), dict))
    if not ok:
        raise ReportError(f"{path.absolute()} is damaged (not a robustdigits report: it needs a 'meta' and a 'table' "
                          "of 'columns' and 'rows'); rerun the command that wrote it, or move it away")
    return data


def is_runs_folder(root: Path) -> bool:
    """A folder of the user's own runs (``reports/runs`` or inside it) rather than the
    committed study: missing sections then name the plain command, never ``--out``."""
    return "runs" in root.resolve().parts


def find_reports(root: str | os.PathLike[str]) -> list[Found]:
    """Every report under ``root``, in path order. The committed study's page (``reports``)
    leaves out the user's runs in ``reports/runs/``; a page of ``reports/runs`` shows them."""
    base = Path(root)
    found = []
    for path in sorted(base.rglob("*.json")):
        parts = path.relative_to(base).parts[:-1]
        if path.name not in KINDS or any(p in SKIPPED_FOLDERS for p in parts) or "runs" in parts:
            continue
        found.append(Found(KINDS[path.name], path, read_report(path)))
    return found


def _table(found: Found, root: Path, table_id: str) -> str:
    """A sortable table of a report: visible text as the Markdown shows it, the raw value
    in ``data-value``, and the JSON it came from in ``data-source`` (relative to the page:
    what the browser test compares each table with)."""
    t = found.report["table"]
    source = os.path.relpath(found.path, root).replace(os.sep, "/")
    columns: list[str] = t["columns"]
    head = "".join(f'<th scope="col" title="sort">{html.escape(str(c))}</th>' for c in columns)
    body = []
    for row in t["rows"]:
        cells = []
        for value in row:
            raw = "" if value is None else html.escape(str(value), quote=True)
            cls = ' class="num"' if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
            cells.append(f'<td data-value="{raw}"{cls}>{html.escape(fmt(value))}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<div class="scroll"><table id="{table_id}" class="sortable" '
            f'data-source="{html.escape(source, quote=True)}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _notes(report: dict[str, Any]) -> str:
    return "".join(note_html(str(n)) for n in report["table"].get("notes", []))


def note_html(note: str) -> str:
    """A report's note: its paragraphs, and a markdown table in it (the anchors) as a table."""
    parts = []
    for block in note.split("\n\n"):
        lines = [line.strip() for line in block.strip().splitlines()]
        if len(lines) >= 2 and all(line.startswith("|") for line in lines):
            cells = [[html.escape(c.strip()) for c in line.strip("|").split("|")] for line in lines]
            head = "".join(f"<th scope=\"col\">{c}</th>" for c in cells[0])
            body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in cells[2:])
            parts.append(f"<table class=\"note\"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif block.strip():
            parts.append(f"<p class=\"note\">{html.escape(block.strip())}</p>")
    return "".join(parts)


def _img(src: Path, root: Path, alt: str, cls: str = "") -> str:
    rel = os.path.relpath(src, root).replace(os.sep, "/")
    return (f'<img src="{html.escape(rel, quote=True)}" alt="{html.escape(alt, quote=True)}" class="{cls}" '
            'loading="eager">')


def _missing(what: str, command: str) -> str:
    return f'<p class="missing">No {html.escape(what)} yet: <code>{html.escape(command)}</code> makes it.</p>'


def _hint(kind: str, dataset: str, runs: bool) -> str:
    """The command that makes a missing section: into the runs folder for a page of runs,
    into the committed layout for the study's page."""
    data = f" --data {dataset}" if dataset in DATASETS else ""
    if runs:
        return {"ablation": f"robustdigits ablate{data}", "attack": "robustdigits attack",
                "bench": "robustdigits bench", "robustness": "robustdigits robustness",
                "autoattack": "robustdigits train --recipe robust, then robustdigits autoattack CHECKPOINT"}[kind] + \
            ", then robustdigits report --reports reports/runs"
    return {"ablation": f"robustdigits ablate{data} --out reports/{dataset} --overwrite",
            "attack": "robustdigits attack --out reports/mnist/attack",
            "bench": "robustdigits bench --out reports/mnist",
            "robustness": "robustdigits robustness --out reports",
            "autoattack": "robustdigits train --recipe robust, then robustdigits autoattack CHECKPOINT --data mnist "
                          "--eps 0.3 --out reports/robust"}[kind]


def _heading(found: Found, root: Path, several: bool) -> str:
    """Where a report lives, above it when a section shows more than one."""
    folder = found.path.parent.relative_to(root).as_posix() or "."
    return f"<h3>{html.escape(folder)}/ ({html.escape(found.dataset)} data)</h3>" if several else ""


def _ids(anchor: str, count: int) -> list[str]:
    return [f"table-{anchor}" + (f"-{k + 1}" if k else "") for k in range(count)]


def _section(root: Path, anchor: str, title: str, reports: list[Found], missing: tuple[str, str],
             body: Callable[[Found, str], str], summary: Callable[[list[Found]], str]) -> Section:
    """A section of one kind: each report under its folder (when there are several) with its
    notes and ``body(report, table_id)``; ``missing`` (what, command) when there is none."""
    if not reports:
        return Section(anchor, title, _missing(*missing), "not run yet")
    parts = [_heading(found, root, len(reports) > 1) + _notes(found.report) + body(found, table_id)
             for found, table_id in zip(reports, _ids(anchor, len(reports)))]
    return Section(anchor, title, "".join(parts), summary(reports))


def _runs_note(reports: list[Found]) -> str:
    return f" ({len(reports)} runs)" if len(reports) > 1 else ""


def _ablation(root: Path, dataset: str, reports: list[Found], runs: bool) -> Section:
    anchor = f"ablation-{dataset}"

    def body(found: Found, table_id: str) -> str:
        curves = sorted(found.path.parent.glob("loss_*.png"))
        gallery = "".join(f"<figure>{_img(p, root, p.stem, 'thumb')}<figcaption>{html.escape(p.stem[5:])}"
                          "</figcaption></figure>" for p in curves)
        return _table(found, root, table_id) + \
            (f"<h3>Loss curves (seed 1)</h3><div class=\"grid\">{gallery}</div>" if curves else "")

    def summary(found: list[Found]) -> str:
        first = found[0].report
        return f"{len(first['table']['rows'])} variants, seeds: {first['meta'].get('seeds', 1)}" + _runs_note(found)

    return _section(root, anchor, f"Accuracy: the study's table beside ours ({dataset} data)", reports,
                    ("ablation table", _hint("ablation", dataset, runs)), body, summary)


def _attack(root: Path, reports: list[Found], runs: bool) -> Section:
    def successes(found: Found) -> str:
        records = found.report.get("records", [])
        ok = sum(1 for r in records if isinstance(r, dict) and r.get("success"))
        return f"{ok} of {len(records)} read as the target"

    def body(found: Found, table_id: str) -> str:
        gallery = found.path.parent / "gallery.png"
        figure = (f"<figure>{_img(gallery, root, 'attack gallery', 'wide')}<figcaption>reference | adversarial | "
                  "difference, per digit</figcaption></figure>") if gallery.is_file() else ""
        return figure + _table(found, root, table_id)

    def summary(found: list[Found]) -> str:
        return successes(found[0]) if len(found) == 1 else \
            f"{len(found)} runs: " + "; ".join(successes(f) for f in found)

    return _section(root, "attack", "The study's attack: each digit into the next", reports,
                    ("attack gallery", _hint("attack", "mnist", runs)), body, summary)


def _figures(paths: list[Path], root: Path) -> str:
    return '<div class="grid">' + "".join(f"<figure>{_img(p, root, p.stem, 'half')}</figure>" for p in paths) + \
        "</div>"


def _bench(root: Path, reports: list[Found], runs: bool) -> Section:
    def body(found: Found, table_id: str) -> str:
        return _table(found, root, table_id) + _figures(sorted(found.path.parent.glob("bench_*_sweep.png")), root)

    def summary(found: list[Found]) -> str:
        return f"{len(found[0].report['table']['rows'])} model × attack rows ({found[0].dataset})" + \
            _runs_note(found)

    return _section(root, "bench", "Our attack beside ART's", reports,
                    ("benchmark", _hint("bench", "mnist", runs)), body, summary)


def _robustness(root: Path, reports: list[Found], runs: bool) -> Section:
    def body(found: Found, table_id: str) -> str:
        folder = found.path.parent
        return _table(found, root, table_id) + _figures(
            [folder / n for n in ("robustness_l2.png", "robustness_linf.png") if (folder / n).is_file()], root)

    def summary(found: list[Found]) -> str:
        first = found[0].report
        problems = first["meta"].get("sanity_problems", [])
        return f"{len(first['table']['rows'])} rows; sanity checks: " + \
            ("all hold" if not problems else f"{len(problems)} problems") + _runs_note(found)

    return _section(root, "robustness", "Robustness of the variants", reports,
                    ("robustness table", _hint("robustness", "mnist", runs)), body, summary)


def _autoattack(root: Path, reports: list[Found], runs: bool) -> Section:
    def body(found: Found, table_id: str) -> str:
        return _table(found, root, table_id) + _figures(sorted(found.path.parent.glob("loss_*.png")), root)

    def headline(found: Found) -> str:
        for record in found.report.get("records", []):
            accuracy = record.get("robust_accuracy", {}) if isinstance(record, dict) else {}
            if record.get("eps") == 0.3 and "autoattack" in accuracy:
                name = found.report["meta"].get("model", {}).get("name", "?")
                return f"{name}: AutoAttack {accuracy['autoattack']:.1f}% at ε = 0.3"
        return f"{len(found.report['table']['rows'])} radii"

    def summary(found: list[Found]) -> str:
        return "; ".join(headline(f) for f in found)

    return _section(root, "autoattack", "Robust accuracy under AutoAttack", reports,
                    ("AutoAttack evaluation", _hint("autoattack", "mnist", runs)), body, summary)


def _runs(root: Path, found: list[Found]) -> Section:
    """Where and with what settings each report was made."""
    items = []
    others = []
    for path in sorted(root.glob("**/*.json")):
        parts = path.relative_to(root).parts[:-1]
        if path.name in KINDS or path.name == "grid.json" or "runs" in parts or \
                any(p in SKIPPED_FOLDERS for p in parts):
            continue
        try:
            others.append(Found("other", path, read_report(path)))
        except ReportError:
            continue  # not a report of ours (the page names damaged reports of the four kinds only)
    for item in sorted([*found, *others], key=lambda f: f.path):
        meta = item.report["meta"]
        machine = meta.get("machine", {}) if isinstance(meta.get("machine"), dict) else {}
        where = machine.get("gpu") or (f"{machine.get('machine', '?')} CPU, {machine.get('cpu_count', '?')} cores, "
                                       f"{machine.get('torch_threads', '?')} torch threads")
        settings = {k: meta[k] for k in ("config", "budget", "steps", "seeds") if k in meta}
        items.append(f"<li><code>{html.escape(str(item.path.relative_to(root)))}</code>: "
                     f"{html.escape(item.dataset)} data; {html.escape(str(where))}; torch "
                     f"{html.escape(str(machine.get('torch', '?')))}<details><summary>settings</summary><pre>"
                     f"{html.escape(json.dumps(settings, indent=1, default=str))}</pre></details></li>")
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


def build_index(root: str | os.PathLike[str], found: list[Found] | None = None) -> str:
    """The page's HTML for the reports folder ``root`` (``found``: its reports, as
    ``find_reports`` lists them)."""
    base = Path(root)
    found = find_reports(base) if found is None else found
    runs = is_runs_folder(base)

    def of(kind: str, dataset: str | None = None) -> list[Found]:
        """Reports of a kind, full MNIST's first, then the embedded subset's, then others."""
        rank = {d: k for k, d in enumerate(DATASETS)}
        return sorted((f for f in found if f.kind == kind and (dataset is None or f.dataset == dataset)),
                      key=lambda f: (rank.get(f.dataset, len(rank)), f.path))

    datasets = [*DATASETS, *sorted({f.dataset for f in of("ablation")} - set(DATASETS))]
    sections = [*(_ablation(base, d, of("ablation", d), runs) for d in datasets),
                _attack(base, of("attack"), runs), _bench(base, of("bench"), runs),
                _robustness(base, of("robustness"), runs), _autoattack(base, of("autoattack"), runs),
                _runs(base, found)]
    summary = "".join(f'<li><a href="#{s.anchor}">{html.escape(s.title)}</a>: {html.escape(s.summary)}</li>'
                      for s in sections)
    parts = [f'<section id="{s.anchor}"><h2>{html.escape(s.title)}</h2>{s.body}</section>' for s in sections]
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>robustdigits: the study on one page</title><style>{STYLE}</style></head><body>"
            "<h1>robustdigits: the study on one page</h1><p class=\"note\">Built by <code>robustdigits report</code> "
            "from the JSON files in this folder; click a column header to sort.</p>"
            f"<ul class=\"summary\">{summary}</ul>{''.join(parts)}<script>{SORT}</script></body></html>\n")


def write_index(root: str | os.PathLike[str], out: str | os.PathLike[str] | None = None,
                found: list[Found] | None = None) -> Path:
    """Write the page to ``out`` (default ``<root>/index.html``), atomically."""
    path = Path(out) if out is not None else Path(root) / "index.html"
    if Path(path).parent.resolve() != Path(root).resolve():
        raise OutputError("the page links its pictures relatively: write it into the reports folder itself")
    return write_text_atomic(path, build_index(root, found))
