"""Identifier formats shared across services, written once."""

from __future__ import annotations

import re

RUN_ID = r"[0-9a-f]{32}"  # an MLflow run id (= a job id = a model id)
RUN_ID_RE = re.compile(rf"^{RUN_ID}$")
