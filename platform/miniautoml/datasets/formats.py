"""Dataset formats: validation of user files, per-commit statistics and snapshot merging.

TEXT_INTENT: UTF-8 CSV rows `text,label` (headerless as in the book, or with a `text,label`
header), `"` quoting, multi-label as `label1;label2`. GENERIC: any files, kept as parts.
Every error names the file and line so the user can fix the input.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from miniautoml.datasets.records import DatasetType
from miniautoml.errors import UserInputError, shown

EXAMPLES = "examples.csv"
LABELS = "labels.json"
HEADER = ["text", "label"]


@dataclass
class Example:
    text: str
    labels: list[str]


def parse_type(value: str) -> DatasetType:
    try:
        return DatasetType(value.upper())
    except ValueError:
        allowed = " or ".join(t.value for t in DatasetType)
        raise UserInputError(f"dataset type {shown(value)} unknown: expected {allowed}") from None


def _check_file(path: Path) -> None:
    if not path.exists():
        raise UserInputError(f"{path}: file not found")
    if not path.is_file():
        raise UserInputError(f"{path}: not a regular file")


def _read_text(path: Path) -> str:
    _check_file(path)
    data = path.read_bytes()
    if not data.strip():
        raise UserInputError(f"{path}: file is empty")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UserInputError(f"{path}:{line}: not valid UTF-8 (byte 0x{data[exc.start]:02x})") from None


def _rows(path: Path, text: str) -> Iterator[tuple[int, list[str]]]:
    """(line, row) of the data rows: blank lines and a leading `text,label` header skipped."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    row_start = 1
    first = True
    try:
        for row in reader:
            line, row_start = row_start, reader.line_num + 1
            if not row or row == [""]:
                continue
            if first:
                first = False
                if [c.strip().lower() for c in row] == HEADER:
                    continue
            yield line, row
    except csv.Error as exc:
        raise UserInputError(f"{path}:{reader.line_num}: malformed CSV ({exc})") from None


def iter_intents(path: Path) -> Iterator[Example]:
    """Yield validated examples of a TEXT_INTENT CSV; raise on the first bad row (file:line)."""
    for line, row in _rows(path, _read_text(path)):
        if len(row) != 2:
            raise UserInputError(f"{path}:{line}: expected 2 columns (text,label), found {len(row)}")
        text, label_field = row[0].strip(), row[1].strip()
        if not text:
            raise UserInputError(f"{path}:{line}: empty text")
        labels = [lab.strip() for lab in label_field.split(";")]
        if not label_field or not all(labels):
            raise UserInputError(f"{path}:{line}: empty label")
        yield Example(text, labels)


class _NeedsDetail(Exception):
    """The fast scan saw something odd; the detailed scan finds and names it."""


def _label_fields(text: str) -> Iterator[str]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    # The header is the first non-blank row, as in `_rows`: blank lines before it do not hide it.
    first = next((row for row in reader if row and row != [""]), None)
    if first is not None and [c.strip().lower() for c in first] != HEADER:
        reader = itertools.chain([first], reader)
    for row in reader:
        if len(row) == 2 and row[0] and not row[0].isspace():
            yield row[1]
        elif row and row != [""]:
            raise _NeedsDetail


def intent_statistics(path: Path) -> dict:
    """Validate a TEXT_INTENT file and count its labels.

    The common case (a valid file) runs as a single C-level csv + Counter pass, close to the cost
    of parsing alone; only a file with a problem is scanned again row by row to name file:line.
    """
    text = _read_text(path)
    try:
        fields = Counter(_label_fields(text))
        counts: Counter[str] = Counter()
        for field, n in fields.items():
            labels = [lab.strip() for lab in field.split(";")]
            if not all(labels):
                raise _NeedsDetail
            for lab in labels:
                counts[lab] += n
    except (_NeedsDetail, csv.Error):
        for _ in iter_intents(path):  # raises with the exact line
            pass
        raise AssertionError(f"{path}: fast and detailed validation disagree") from None
    n = sum(fields.values())
    if n == 0:
        raise UserInputError(f"{path}: no examples (only a header or blank lines)")
    return {"numExamples": n, "numLabels": len(counts), "labels": dict(sorted(counts.items()))}


def validate_files(dataset_type: DatasetType, files: list[Path]) -> dict:
    """Check user files fully before anything is written; return the commit's statistics."""
    if not files:
        raise UserInputError("--file: at least one file is required")
    if dataset_type is DatasetType.TEXT_INTENT:
        if len(files) != 1:
            raise UserInputError("--file: a TEXT_INTENT commit takes exactly one CSV file")
        return intent_statistics(files[0])
    names = [f.name for f in files]
    if len(set(names)) != len(names):
        raise UserInputError(f"--file: two files share a name: {sorted(names)}")
    total = 0
    for f in files:
        _check_file(f)
        total += f.stat().st_size
    return {"numFiles": len(files), "numBytes": total}


def write_commit(dataset_type: DatasetType, files: list[Path], dest: Path) -> None:
    """Copy the validated files byte for byte into a commit directory."""
    dest.mkdir(parents=True)
    if dataset_type is DatasetType.TEXT_INTENT:
        shutil.copyfile(files[0], dest / EXAMPLES)
    else:
        for f in files:
            shutil.copyfile(f, dest / f.name)


def write_snapshot(
    dataset_type: DatasetType, commits: list[tuple[str, Path, dict]], dest: Path
) -> tuple[list[str], dict]:
    """Merge commits (id, directory, statistics) into `dest`; returns (parts, statistics).

    TEXT_INTENT: one examples.csv plus labels.json, labels unified by name across commits.
    Commit files were validated when committed, so rows are streamed, not checked again.
    GENERIC: each commit's files as parts named `<commit>-<file>`.
    """
    dest.mkdir(parents=True)
    if dataset_type is DatasetType.GENERIC:
        parts, total = [], 0
        for cid, cdir, _ in commits:
            for f in sorted(cdir.iterdir()):
                name = f"{cid}-{f.name}"
                shutil.copyfile(f, dest / name)
                parts.append(name)
                total += f.stat().st_size
        return parts, {"numFiles": len(parts), "numBytes": total}
    fields: Counter[str] = Counter()  # label field -> rows, of the rows actually written

    def counted(rows: Iterator[tuple[int, list[str]]]) -> Iterator[list[str]]:
        for _, row in rows:
            fields[row[1]] += 1
            yield row

    with open(dest / EXAMPLES, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        for _, cdir, _ in commits:
            path = cdir / EXAMPLES
            writer.writerows(counted(_rows(path, _read_text(path))))
    # labels.json and the statistics come from the rows written, so they always agree with
    # examples.csv (even for commits whose recorded statistics an older version miscounted).
    counts: Counter[str] = Counter()
    for field, n in fields.items():
        for lab in field.split(";"):
            counts[lab.strip()] += n
    statistics = {"numExamples": sum(fields.values()), "numLabels": len(counts), "labels": dict(sorted(counts.items()))}
    (dest / LABELS).write_text(json.dumps(list(statistics["labels"]), ensure_ascii=False, indent=0), encoding="utf-8")
    return [EXAMPLES, LABELS], statistics
