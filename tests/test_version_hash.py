"""The book's version hash: bitset of commit ids, little-endian bytes, base64, parsed once into a VersionHash."""

import pytest

from miniautoml.datasets.version_hash import VersionHash, parse
from miniautoml.errors import UserInputError


@pytest.mark.parametrize(
    ("ids", "expected"),
    [([1], "hashAg=="), ([1, 2], "hashBg=="), ([], "hash"), ([2], "hashBA=="), ([8], "hashAAE=")],
)
def test_hash_matches_the_book(ids, expected):
    assert VersionHash.of(ids).text == expected


def test_commits_round_trip_many_commits():
    ids = [1, 3, 7, 8, 15, 16, 40]
    assert parse(VersionHash.of(ids).text).commits == tuple(ids)


def test_text_round_trips_through_the_value():
    for text in ("hash", "hashAg==", "hashBg==", "hash/g=="):
        assert str(parse(text)) == text and parse(str(parse(text))) == parse(text)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("Ag==", "version hash 'Ag==': must start with 'hash'"),
        ("hash!!", "version hash 'hash!!': not valid base64 after 'hash'"),
        ("hashAgA=", "version hash 'hashAgA=': not in canonical form"),
        ("hash@", "version hash 'hash@': not valid base64"),
    ],
)
def test_malformed_hash_is_a_one_line_input_error(bad, message):
    with pytest.raises(UserInputError) as caught:
        parse(bad)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_a_negative_commit_id_is_refused():
    with pytest.raises(ValueError, match="commit id -1"):
        VersionHash.of([-1])


def test_dirname_is_filesystem_safe():
    vhash = VersionHash.of(range(1, 8))
    assert (vhash.text, vhash.dirname) == ("hash/g==", "hash_g==")


def test_parse_once_gives_a_typed_value():
    parsed = parse(" hashBg== ")
    assert parsed == VersionHash.of([2, 1]) and parsed.commits == (1, 2)
    assert str(parsed) == "hashBg==" and parsed.dirname == "hashBg=="
