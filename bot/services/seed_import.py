"""Reading many seeds at once: a CSV file (pool, url, notes) or text with one URL a line.

Reading never stops at the first problem: every line is read, and each line that cannot be read becomes a
`LineError` naming its line, field and what is wrong. `TournamentService.import_seeds` then checks every line
against the database and inserts all of them, or none, in one transaction.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

MAX_IMPORT_LINES = 500
MAX_IMPORT_BYTES = 256 * 1024
COLUMNS = ("pool", "url", "notes")
SHOWN_ERRORS = 10  # the refusal names this many bad lines, then says how many more there are


@dataclass(frozen=True)
class SeedLine:
    """One seed to import. `line` is its line in the file (or its position in an API list), counted from 1;
    `pool` is a pool's name or number as written, None for the pool the command or route names."""

    line: int
    url: str
    notes: str = ""
    pool: str | None = None


@dataclass(frozen=True)
class LineError:
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}, {self.field}: {self.message}"


@dataclass
class SeedBatch:
    """What was read: the seeds, and the lines that could not be read."""

    lines: list[SeedLine] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)


def decode(data: bytes) -> tuple[str | None, LineError | None]:
    """A file's text (UTF-8, with or without a byte order mark), or why it is not text."""
    if len(data) > MAX_IMPORT_BYTES:
        return None, LineError(0, "file", f"the file is larger than {MAX_IMPORT_BYTES // 1024} KiB")
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as bad:
        line = data[: bad.start].count(b"\n") + 1
        return None, LineError(line, "file", "the file is not UTF-8 text (save it as CSV UTF-8)")


def parse_csv(text: str) -> SeedBatch:
    """Rows of `pool, url, notes` (notes optional; a row with one cell is a URL alone). A first row naming the
    columns (`pool,url,notes` in any order, `url` required) sets their order; blank lines are skipped."""
    batch = SeedBatch()
    columns: tuple[str, ...] = COLUMNS
    reader = csv.reader(io.StringIO(text))
    first = True
    try:
        for row in reader:
            line = reader.line_num
            cells = [cell.strip() for cell in row]
            if not any(cells):
                continue
            if first:
                first = False
                named = tuple(cell.lower() for cell in cells)
                if "url" in named:
                    unknown = [name for name in named if name not in COLUMNS]
                    if unknown or len(set(named)) != len(named):
                        batch.errors.append(
                            LineError(line, "header", f"columns must be some of {', '.join(COLUMNS)}, each once")
                        )
                    columns = named
                    continue
            if len(cells) == 1 and columns == COLUMNS:
                values = {"url": cells[0]}
            elif len(cells) > len(columns):
                batch.errors.append(
                    LineError(line, "line", f"{len(cells)} columns; expected {', '.join(columns)} (quote commas)")
                )
                continue
            else:
                values = dict(zip(columns, cells, strict=False))
            _add(batch, line, values)
    except csv.Error as bad:
        batch.errors.append(LineError(reader.line_num, "line", f"not valid CSV ({bad})"))
    _check_count(batch)
    return batch


def parse_lines(text: str) -> SeedBatch:
    """One URL a line; anything after the URL (past a space) is its notes. Blank lines are skipped."""
    batch = SeedBatch()
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped:
            url, _, notes = stripped.partition(" ")
            _add(batch, number, {"url": url, "notes": notes})
    _check_count(batch)
    return batch


def _add(batch: SeedBatch, line: int, values: dict[str, str]) -> None:
    if not values.get("url"):
        batch.errors.append(LineError(line, "url", "missing"))
        return
    batch.lines.append(
        SeedLine(line, values["url"], values.get("notes", "").strip(), values.get("pool", "").strip() or None)
    )


def _check_count(batch: SeedBatch) -> None:
    if not batch.lines and not batch.errors:
        batch.errors.append(LineError(1, "file", "no seeds in it"))
    elif len(batch.lines) > MAX_IMPORT_LINES:
        extra = batch.lines[MAX_IMPORT_LINES]
        batch.errors.append(LineError(extra.line, "file", f"more than {MAX_IMPORT_LINES} seeds; split the file"))


def summary(errors: list[LineError]) -> str:
    """The refusal: how many lines are wrong, then each (the first few)."""
    count = len({error.line for error in errors})
    head = f"{count} line{'s are' if count != 1 else ' is'} wrong, so no seed was imported:"
    shown = [f"- {error}" for error in errors[:SHOWN_ERRORS]]
    if len(errors) > SHOWN_ERRORS:
        shown.append(f"- and {len(errors) - SHOWN_ERRORS} more")
    return "\n".join([head, *shown])
