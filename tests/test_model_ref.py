"""A model reference is parsed once into a `ModelRef`: run id, NAME@ALIAS or NAME/VERSION."""

from __future__ import annotations

import pytest

from miniautoml.errors import UserInputError
from miniautoml.model_ref import ModelRef

RUN = "0123456789abcdef" * 2


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        (RUN, ("run", RUN, None, None, None)),
        ("intent@champion", ("alias", None, "intent", "champion", None)),
        ("intent/3", ("version", None, "intent", None, 3)),
        (" my model/07 ", ("version", None, "my model", None, 7)),
    ],
)
def test_parse_gives_the_kind_and_parts_of_each_form(text: str, fields: tuple) -> None:
    ref = ModelRef.parse(text)
    assert (ref.kind, ref.run_id, ref.name, ref.alias, ref.version) == fields


@pytest.mark.parametrize("text", [RUN, "intent@champion", "intent/3", "my model@prod-2"])
def test_the_text_of_a_canonical_ref_parses_back_to_the_same_ref(text: str) -> None:
    ref = ModelRef.parse(text)
    assert str(ref) == text
    assert ModelRef.parse(str(ref)) == ref


def test_str_is_the_canonical_form_and_text_what_was_given() -> None:
    ref = ModelRef.parse(" intent/007 ")
    assert (ref.text, str(ref)) == ("intent/007", "intent/7")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "model id is empty; expected a run id"),
        ("intent", "model id 'intent': expected a run id (32 hex characters), NAME@ALIAS or NAME/VERSION"),
        ("intent/0", "model id 'intent/0'"),
        ("a@b/c", "model id 'a@b/c'"),
    ],
)
def test_a_bad_model_id_is_one_line_naming_it(text: str, message: str) -> None:
    with pytest.raises(UserInputError) as caught:
        ModelRef.parse(text)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_a_long_bad_model_id_is_cut_in_its_error() -> None:
    with pytest.raises(UserInputError) as caught:
        ModelRef.parse("x" * 5000)
    assert len(str(caught.value)) < 300


@pytest.mark.parametrize(
    ("selector", "expected"),
    [("3", "intent/3"), ("champion", "intent@champion"), ("@champion", "intent@champion")],
)
def test_in_model_reads_a_version_number_or_an_alias(selector: str, expected: str) -> None:
    ref = ModelRef.in_model("intent", selector)
    assert ref == ModelRef.parse(expected)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: ModelRef.of_version("intent", "one"), "version 'one': expected a version number (1, 2, ...)"),
        (lambda: ModelRef.of_version("intent", "0"), "version '0': expected a version number"),
        (lambda: ModelRef.in_model("intent", "no such"), "version 'no such': expected a version number"),
        (lambda: ModelRef.of_version("", 1), "model name is empty"),
        (lambda: ModelRef.of_version("a/b", 1), "model name 'a/b': no '@' or '/' allowed"),
    ],
)
def test_bad_parts_of_a_ref_are_one_line_errors(call, message: str) -> None:
    with pytest.raises(UserInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()


def test_of_version_and_parse_agree() -> None:
    assert ModelRef.of_version("intent", 2) == ModelRef.parse("intent/2")
    assert ModelRef.of_version("intent", 2).selector == "2"
