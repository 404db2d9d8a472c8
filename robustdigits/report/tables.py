"""Tables written as Markdown, CSV and JSON (atomically), and the machine they ran on."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import OutputError
from ..fileio import json_text, write_text_atomic


def machine_info(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def machine_line(info: dict[str, Any]) -> str:
    cpu = f"{info['machine']} CPU, {info['cpu_count']} cores, {info['torch_threads']} torch threads"
    where = info.get("gpu") or cpu
    return f"{where}; torch {info['torch']}, Python {info['python']}"


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return "—" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def settings_hash(settings: dict[str, Any]) -> str:
    """A short, stable hash of a run's settings (JSON with sorted keys): folder names."""
    text = json.dumps(settings, sort_keys=True, default=_json_default)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def check_replaceable(out_dir: str | os.PathLike[str], stem: str, settings: dict[str, Any], overwrite: bool) -> None:
    """Refuse to write ``stem.*`` over a report of a run with other settings (kept in its
    JSON as ``meta.settings``) unless ``overwrite``: a run never replaces another's results
    unasked. A report of the same settings is the same run, written again."""
    path = Path(out_dir) / f"{stem}.json"
    if overwrite or not path.is_file():
        return
    try:
        previous = json.loads(path.read_text())["meta"].get("settings")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        previous = None
    if previous != json.loads(json.dumps(settings, default=_json_default)):
        raise OutputError(f"{path.absolute()} holds the results of a run with other settings; pass --overwrite to "
                          "replace them, or leave out --out to write to a folder named by these settings")


def write_report(
    out_dir: str | os.PathLike[str],
    stem: str,
    *,
    title: str,
    notes: Sequence[str],
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    records: list[dict[str, Any]],
    meta: dict[str, Any],
) -> list[Path]:
    """Write ``stem.md`` (title, notes, table), ``stem.csv`` (the table) and
    ``stem.json`` (``meta``, the table as shown, and full ``records``) into ``out_dir``."""
    out = Path(out_dir)
    md = f"# {title}\n\n" + "".join(f"{n}\n\n" for n in notes) + markdown_table(columns, rows)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([["" if c is None else c for c in row] for row in rows])
    table = {"title": title, "notes": list(notes), "columns": list(columns), "rows": [list(r) for r in rows]}
    payload = json_text({"meta": meta, "table": table, "records": records}, default=_json_default)
    return [
        write_text_atomic(out / f"{stem}.md", md),
        write_text_atomic(out / f"{stem}.csv", buf.getvalue()),
        write_text_atomic(out / f"{stem}.json", payload),
    ]


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, torch.device):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
