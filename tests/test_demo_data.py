"""The lab's demo intent data (data/demo/): two TEXT_INTENT commits, the second adding intents."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from conftest import REPO
from miniautoml.datasets.formats import iter_intents

DEMO = REPO / "data" / "demo"
PART1_INTENTS = {"greeting", "goodbye", "thanks", "weather", "play_music", "set_alarm", "book_flight",
                 "order_food", "check_balance", "translate"}
NEW_IN_PART2 = {"set_reminder", "tell_joke"}


def labels(path: Path) -> Counter:
    return Counter(label for ex in iter_intents(path) for label in ex.labels)


def test_demo_files_are_small_headerless_utf8_csv():
    for name in ("intents-part1.csv", "intents-part2.csv"):
        path = DEMO / name
        assert path.stat().st_size < 200_000
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first.lower() != "text,label"


def test_part1_has_ten_intents_with_enough_examples_each():
    counts = labels(DEMO / "intents-part1.csv")
    assert set(counts) == PART1_INTENTS
    assert min(counts.values()) >= 40 and sum(counts.values()) == 540


def test_part2_adds_examples_and_two_new_intents():
    part1, part2 = labels(DEMO / "intents-part1.csv"), labels(DEMO / "intents-part2.csv")
    assert set(part2) - set(part1) == NEW_IN_PART2
    assert set(part1) <= set(part2)  # new examples for every old intent too
    total = part1 + part2
    assert all(60 <= n <= 120 for n in total.values()), total
    texts1 = {ex.text for ex in iter_intents(DEMO / "intents-part1.csv")}
    texts2 = {ex.text for ex in iter_intents(DEMO / "intents-part2.csv")}
    assert not texts1 & texts2  # the second commit brings new examples, not copies
