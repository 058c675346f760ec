"""Result tables and their writers (Markdown, CSV, JSON).

A `Table` is plain data (title, column names, rows, notes); the evaluation modules build them and
`write_report` puts every table of one evaluation into `<out_dir>/<stem>.md`, one CSV per table
(`<stem>_<slug>.csv`) and the full result dict into `<stem>.json`.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import pathlib
import re
from collections.abc import Sequence
from typing import Any


@dataclasses.dataclass
class Table:
    """One table.

    Attributes:
        title: e.g. "Table 1: H36M MPJPE (Protocol 1), mm".
        columns: header names.
        rows: one list of cells per row (str, int, float or None; None prints as "–").
        notes: lines printed under the table (protocol names, exclusions, conventions).
        digits: decimals of the Markdown numbers (CSV keeps full precision).
    """

    title: str
    columns: list[str]
    rows: list[list[Any]]
    notes: list[str] = dataclasses.field(default_factory=list)
    digits: int = 1

    def __post_init__(self):
        for i, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise ValueError(
                    f"Table {self.title!r}: row {i} has {len(row)} cells, expected "
                    f"{len(self.columns)} ({self.columns})"
                )

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "_", self.title.lower()).strip("_")[:60]


def format_cell(value: Any, digits: int = 1) -> str:
    """Numbers with `digits` decimals; None / NaN as an en dash."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int,)):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        return f"{value:.{digits}f}"
    return str(value)


def to_markdown(table: Table, digits: int | None = None) -> str:
    """GitHub Markdown: a bold title line, the table, then the notes as a list.

    `digits` overrides the table's own `digits`.
    """
    digits = table.digits if digits is None else digits
    lines = [f"**{table.title}**", ""]
    lines.append("| " + " | ".join(table.columns) + " |")
    lines.append("|" + "|".join("---" for _ in table.columns) + "|")
    for row in table.rows:
        lines.append("| " + " | ".join(format_cell(c, digits) for c in row) + " |")
    if table.notes:
        lines.append("")
        lines.extend(f"- {note}" for note in table.notes)
    return "\n".join(lines) + "\n"


def to_csv(table: Table) -> str:
    """CSV with a header row; numbers at full precision, None as an empty cell."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(table.columns)
    for row in table.rows:
        writer.writerow(["" if c is None else c for c in row])
    return buf.getvalue()


def _jsonable(value: Any) -> Any:
    # NumPy scalars/arrays and tuples -> plain JSON types; NaN -> None (JSON has no NaN).
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return _jsonable(value.tolist())
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def write_report(
    tables: Sequence[Table], results: dict, out_dir: str | pathlib.Path, stem: str, header: str = ""
) -> dict[str, str]:
    """Writes `<stem>.md` (all tables), `<stem>_<slug>.csv` (each table), `<stem>.json`.

    Returns:
        {"markdown": path, "json": path, "csv": [paths...]} as strings.
    """
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md = (header + "\n\n" if header else "") + "\n".join(to_markdown(t) for t in tables)
    md_path = out / f"{stem}.md"
    md_path.write_text(md, encoding="utf-8")
    csv_paths = []
    for t in tables:
        path = out / f"{stem}_{t.slug}.csv"
        path.write_text(to_csv(t), encoding="utf-8")
        csv_paths.append(str(path))
    json_path = out / f"{stem}.json"
    json_path.write_text(json.dumps(_jsonable(results), indent=2), encoding="utf-8")
    return {"markdown": str(md_path), "json": str(json_path), "csv": csv_paths}
