"""The model-id grammar: a run id, NAME@ALIAS or NAME/VERSION, parsed and declared as one pattern.

The book's prediction service answers `Predict(runId, document)`. Here a model id is one of
  <run id>           32 hex characters: the MLflow run that logged `runs:/<run id>/model`
  <name>@<alias>     a registered model's alias, followed: re-resolved every refresh interval
  <name>/<version>   a registered model version (immutable)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from miniautoml.errors import UserInputError
from miniautoml.ids import RUN_ID

# The characters str.strip() removes (str.isspace), spelled out for regular expressions: `\s`
# means other sets in other engines (JSON-schema validators, test-data generators).
SPACES = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# The model id grammar, written once: `parse_model_id` matches it and the prediction service
# declares it as the JSON-schema `pattern` of `model_id` (surrounding whitespace is ignored).
# A name has no '@' or '/'; a version is 1..999999999 (what the registry's integer column holds).
_MODEL_ID_FORMS = (
    rf"(?P<run>{RUN_ID})"
    rf"|(?P<alias_name>[^{SPACES}@/][^@/]*)@(?P<alias>[A-Za-z0-9_\-]+)"
    rf"|(?P<version_name>[^{SPACES}@/][^@/]*)/(?P<version>0*[1-9][0-9]{{0,8}})"
)
_MODEL_ID_RE = re.compile(_MODEL_ID_FORMS)
MODEL_ID_PATTERN = rf"^[{SPACES}]*(?:{re.sub(r'[?]P<[a-z_]+>', '?:', _MODEL_ID_FORMS)})[{SPACES}]*$"
MODEL_ID_HELP = "expected a run id (32 hex characters), NAME@ALIAS or NAME/VERSION"


@dataclass(frozen=True)
class ModelRef:
    """A parsed model id."""

    text: str
    kind: Literal["run", "alias", "version"]
    run_id: str | None = None
    name: str | None = None
    alias: str | None = None
    version: int | None = None


def parse_model_id(model_id: str) -> ModelRef:
    """`<run id>`, `NAME@ALIAS` or `NAME/VERSION`; anything else is a UserInputError."""
    text = (model_id or "").strip()
    if not text:
        raise UserInputError(f"model id is empty; {MODEL_ID_HELP}")
    found = _MODEL_ID_RE.fullmatch(text)
    if found is None:
        shown = text if len(text) <= 80 else text[:80] + "..."
        raise UserInputError(f"model id {shown!r}: {MODEL_ID_HELP}")
    if found["run"]:
        return ModelRef(text, "run", run_id=text)
    if found["alias"]:
        return ModelRef(text, "alias", name=found["alias_name"], alias=found["alias"])
    return ModelRef(text, "version", name=found["version_name"], version=int(found["version"]))
