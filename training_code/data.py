"""Reading TEXT_INTENT examples (a dataset-service snapshot or plain CSV files) and splitting them.

A snapshot directory holds `examples.csv` (headerless UTF-8 `text,label`, `"` quoting, several
labels written `a;b`) and `labels.json` (the label names). Training uses the first label of a row.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from miniautoml.contract import data as contract_data
from miniautoml.errors import UserInputError

if TYPE_CHECKING:
    import pandas as pd

    from miniautoml.config import Settings

log = logging.getLogger(__name__)

LABELS_FILE = "labels.json"  # the label names, next to a single CSV file as in a snapshot


@dataclass
class Examples:
    """Labelled texts plus where they came from (for MLflow's dataset input and run tags)."""

    texts: list[str]
    labels: list[int]  # indexes into label_names
    label_names: list[str]
    source: str  # URI of the bytes: the DVC remote location or the CSV path
    name: str
    digest: str  # md5 of the snapshot (DVC's) or of the CSV bytes
    dataset_id: str | None = None
    version_hash: str | None = None

    def __len__(self) -> int:
        return len(self.texts)

    def frame(self) -> "pd.DataFrame":
        import pandas as pd

        return pd.DataFrame({"text": self.texts, "label": [self.label_names[i] for i in self.labels]})

    def labels_present(self) -> int:
        return len(set(self.labels))


@dataclass(frozen=True)
class Split:
    """Row indexes of each part; disjoint and together all rows."""

    train: list[int]
    val: list[int]
    test: list[int]


def read_rows(path: Path) -> list[tuple[str, str]]:
    """`(text, first label)` rows of a headerless `text,label` CSV; blank lines are skipped."""
    rows: list[tuple[str, str]] = []
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            for lineno, row in enumerate(csv.reader(fh), start=1):
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if len(row) < 2:
                    raise UserInputError(f"{path}:{lineno}: expected `text,label`, got {len(row)} column")
                label = row[1].split(";")[0].strip()
                if lineno == 1 and (row[0].strip().lower(), label.lower()) == ("text", "label"):
                    continue  # tolerate a header line
                if not label:
                    raise UserInputError(f"{path}:{lineno}: empty label")
                rows.append((row[0], label))
    except FileNotFoundError:
        raise UserInputError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise UserInputError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    return rows


def _md5(paths: list[Path]) -> str:
    digest = hashlib.md5()
    for path in paths:
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _examples(
    rows: list[tuple[str, str]], label_names: list[str] | None, **origin: Any
) -> Examples:
    names = list(label_names) if label_names else sorted({label for _, label in rows})
    unlisted = sorted({label for _, label in rows} - set(names))
    if unlisted:
        log.warning("%d label(s) missing from %s, appended: %s", len(unlisted), LABELS_FILE, unlisted[:5])
        names.extend(unlisted)
    index = {name: i for i, name in enumerate(names)}
    return Examples(
        texts=[text for text, _ in rows], labels=[index[label] for _, label in rows], label_names=names, **origin
    )


def csv_paths(spec: str | list[str]) -> list[Path]:
    """Files named by `data.path`: a list, an os.pathsep-separated string, or a directory of *.csv."""
    parts = spec if isinstance(spec, list) else [p for p in str(spec).split(os.pathsep) if p.strip()]
    paths: list[Path] = []
    for part in parts:
        path = Path(str(part)).expanduser()
        if path.is_dir():
            found = sorted(path.glob("*.csv"))
            if not found:
                raise UserInputError(f"{path}: no *.csv files in this directory")
            paths.extend(found)
        elif path.is_file():
            paths.append(path)
        else:
            raise UserInputError(f"data.path: {path}: no such file")
    if not paths:
        raise UserInputError("data.path: no file given")
    return paths


def load_csv(spec: str | list[str]) -> Examples:
    """Examples from CSV files, without the dataset service. Labels are the sorted label set."""
    paths = csv_paths(spec)
    rows = [row for path in paths for row in read_rows(path)]
    labels_file = paths[0].parent / LABELS_FILE if len(paths) == 1 else None
    label_names = _read_labels(labels_file) if labels_file and labels_file.is_file() else None
    # A file URI: a bare path is ambiguous to MLflow's dataset-source resolver (it warns).
    source = (paths[0] if len(paths) == 1 else paths[0].parent).resolve().as_uri()
    name = "+".join(p.stem for p in paths)
    return _examples(rows, label_names, source=source, name=name, digest=_md5(paths))


def _read_labels(path: Path) -> list[str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserInputError(f"{path}: not a JSON list of label names ({exc})") from None
    if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
        raise UserInputError(f"{path}: not a JSON list of label names")
    return data


def load_snapshot(settings: "Settings", dataset_id: str, version_hash: str) -> Examples:
    """Examples of one dataset version, materialised locally by the dataset service."""
    snap = contract_data.fetch_snapshot(settings, dataset_id, version_hash)
    rows = read_rows(snap.examples)
    label_names = _read_labels(snap.labels) if snap.labels is not None else None
    return _examples(
        rows,
        label_names,
        source=snap.source,
        name=f"{snap.dataset_id}@{version_hash}",
        digest=snap.md5,
        dataset_id=snap.dataset_id,
        version_hash=snap.version_hash,
    )


def sample(examples: Examples, limit: int, seed: int) -> Examples:
    """A seeded random subset of `limit` rows in their original order (limit <= 0: all rows)."""
    if limit <= 0 or limit >= len(examples):
        return examples
    keep = sorted(random.Random(seed).sample(range(len(examples)), limit))
    return Examples(
        texts=[examples.texts[i] for i in keep],
        labels=[examples.labels[i] for i in keep],
        label_names=examples.label_names,
        source=examples.source,
        name=f"{examples.name}[{limit}]",
        digest=examples.digest,
        dataset_id=examples.dataset_id,
        version_hash=examples.version_hash,
    )


def split(labels: list[int], val_fraction: float, test_fraction: float, seed: int) -> Split:
    """Stratified split: each label's rows are shuffled with `seed` and cut by the fractions.

    Every label keeps at least one training row, so rare labels may have none in val/test.
    """
    by_label: dict[int, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_label[label].append(i)
    rng = random.Random(seed)
    train: list[int] = []
    val: list[int] = []
    test: list[int] = []
    for label in sorted(by_label):
        rows = by_label[label]
        rng.shuffle(rows)
        n = len(rows)
        n_test = min(round(n * test_fraction), n - 1)
        n_val = min(round(n * val_fraction), n - 1 - n_test)
        test.extend(rows[:n_test])
        val.extend(rows[n_test : n_test + n_val])
        train.extend(rows[n_test + n_val :])
    return Split(train=sorted(train), val=sorted(val), test=sorted(test))
