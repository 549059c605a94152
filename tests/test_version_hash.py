"""The book's version hash: bitset of commit ids, little-endian bytes, base64."""

import pytest

from miniautoml.datasets.version_hash import commit_ids, dirname, version_hash
from miniautoml.errors import UserInputError


@pytest.mark.parametrize(
    ("ids", "expected"),
    [([1], "hashAg=="), ([1, 2], "hashBg=="), ([], "hash"), ([2], "hashBA=="), ([8], "hashAAE=")],
)
def test_hash_matches_the_book(ids, expected):
    assert version_hash(ids) == expected


def test_commit_ids_round_trip_many_commits():
    ids = [1, 3, 7, 8, 15, 16, 40]
    assert commit_ids(version_hash(ids)) == ids


@pytest.mark.parametrize("bad", ["Ag==", "hash!!", "hashAgA=", "hash@"])
def test_malformed_hash_is_an_input_error(bad):
    with pytest.raises(UserInputError, match="version hash"):
        commit_ids(bad)


def test_dirname_is_filesystem_safe():
    assert version_hash(range(1, 8)) == "hash/g=="
    assert dirname("hash/g==") == "hash_g=="


def test_parse_once_gives_a_typed_value():
    from miniautoml.datasets.version_hash import VersionHash, parse

    parsed = parse(" hashBg== ")
    assert parsed == VersionHash.of([2, 1]) and parsed.commits == (1, 2)
    assert str(parsed) == "hashBg==" and parsed.dirname == "hashBg=="
    with pytest.raises(UserInputError, match="version hash"):
        parse("hashAgA=")
