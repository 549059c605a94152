"""A model reference: a run id, NAME@ALIAS or NAME/VERSION, parsed once into a `ModelRef` and carried.

The book's prediction service answers `Predict(runId, document)`. Here a model reference is one of
  <run id>           32 hex characters: the MLflow run that logged `runs:/<run id>/model`
  <name>@<alias>     a registered model's alias, followed: re-resolved every refresh interval
  <name>/<version>   a registered model version (immutable)
Serving (a request's `model_id`), the registry (`models show NAME VERSION|ALIAS`, `promote`),
bentos and the CLI all make one here; a bad one is a one-line UserInputError.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from miniautoml.errors import UserInputError, shown
from miniautoml.ids import RUN_ID

# The characters str.strip() removes (str.isspace), spelled out for regular expressions: `\s`
# means other sets in other engines (JSON-schema validators, test-data generators).
SPACES = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# The grammar, written once: `ModelRef.parse` matches it and the prediction service declares it
# as the JSON-schema `pattern` of `model_id` (surrounding whitespace is ignored).
# A name has no '@' or '/'; a version is 1..999999999 (what the registry's integer column holds).
_NAME = rf"[^{SPACES}@/][^@/]*"
_ALIAS = r"[A-Za-z0-9_\-]+"
_VERSION = r"0*[1-9][0-9]{0,8}"
_MODEL_ID_FORMS = (
    rf"(?P<run>{RUN_ID})"
    rf"|(?P<alias_name>{_NAME})@(?P<alias>{_ALIAS})"
    rf"|(?P<version_name>{_NAME})/(?P<version>{_VERSION})"
)
_MODEL_ID_RE = re.compile(_MODEL_ID_FORMS)
_NAME_RE, _ALIAS_RE, _VERSION_RE = re.compile(_NAME), re.compile(_ALIAS), re.compile(_VERSION)
MODEL_ID_PATTERN = rf"^[{SPACES}]*(?:{re.sub(r'[?]P<[a-z_]+>', '?:', _MODEL_ID_FORMS)})[{SPACES}]*$"
MODEL_ID_HELP = "expected a run id (32 hex characters), NAME@ALIAS or NAME/VERSION"

Kind = Literal["run", "alias", "version"]


@dataclass(frozen=True)
class ModelRef:
    """A parsed model reference; `str()` is its canonical text (`NAME/3`, `NAME@champion`, run id).

    `text` is the reference as given (stripped): the key a server caches it under.
    """

    text: str
    kind: Kind
    run_id: str | None = None
    name: str | None = None
    alias: str | None = None
    version: int | None = None

    @classmethod
    def parse(cls, model_id: str) -> "ModelRef":
        """`<run id>`, `NAME@ALIAS` or `NAME/VERSION`; anything else is a UserInputError."""
        text = (model_id or "").strip()
        if not text:
            raise UserInputError(f"model id is empty; {MODEL_ID_HELP}")
        found = _MODEL_ID_RE.fullmatch(text)
        if found is None:
            raise UserInputError(f"model id {shown(text, 80)}: {MODEL_ID_HELP}")
        if found["run"]:
            return cls(text, "run", run_id=text)
        if found["alias"]:
            return cls(text, "alias", name=found["alias_name"], alias=found["alias"])
        return cls(text, "version", name=found["version_name"], version=int(found["version"]))

    @classmethod
    def of_version(cls, name: str, version: str | int) -> "ModelRef":
        """Version `version` (a number) of registered model `name`."""
        name, text = _name(name), str(version).strip()
        if not _VERSION_RE.fullmatch(text):
            raise UserInputError(f"version {shown(text)}: expected a version number (1, 2, ...)")
        return cls(f"{name}/{text}", "version", name=name, version=int(text))

    @classmethod
    def in_model(cls, name: str, selector: str) -> "ModelRef":
        """A version of model `name` by number (`3`) or alias (`champion`, `@champion`)."""
        text = str(selector).strip()
        if text.isdigit():
            return cls.of_version(name, text)
        alias = text.removeprefix("@")
        if not _ALIAS_RE.fullmatch(alias):
            raise UserInputError(
                f"version {shown(text)}: expected a version number (1, 2, ...) "
                "or an alias (letters, digits, '_', '-')"
            )
        name = _name(name)
        return cls(f"{name}@{alias}", "alias", name=name, alias=alias)

    @property
    def selector(self) -> str:
        """The part after the name: the version number or the alias ('' for a run id)."""
        return str(self.version) if self.kind == "version" else self.alias or ""

    def __str__(self) -> str:
        if self.kind == "run":
            return self.run_id or ""
        return f"{self.name}{'@' if self.kind == 'alias' else '/'}{self.selector}"


def _name(name: str) -> str:
    text = (name or "").strip()
    if not text:
        raise UserInputError("model name is empty")
    if not _NAME_RE.fullmatch(text):
        raise UserInputError(f"model name {shown(text)}: no '@' or '/' allowed")
    return text

