"""Predictors: a loaded MLflow model -> `predict_texts(texts, top_k)`, whatever kind of model it is.

The pool, its cache, alias hot-swap and the answers only ever call `predict_texts`, which returns
one `{"result": label, "scores": {label: probability, ...}}` per text, in order:
- our own models (training_code's pyfunc, anything whose python model has `predict_texts`) are
  used as they are: the fast path, no DataFrame and no schema checks;
- any other MLflow pyfunc model goes through `PyfuncPredictor`, which calls `pyfunc.predict`.
  The texts go in as the signature's one string input: a one-column DataFrame named after it,
  or a list of strings when the model has no signature or a column-less one. The output becomes
  the label (str of each row's value); `scores` only when the output is a frame (or dict) of
  label -> probability columns, otherwise `{}` (e.g. an `mlflow.sklearn` model: its pyfunc
  predicts labels only, predict_proba is out of its reach);
- a model whose signature cannot take text (numeric inputs only, several required inputs, a
  numeric tensor) is `TextUnsupported`: it stays cached like any model, and each request to it
  raises `UnsupportedModelError` (a one-line message naming the signature; HTTP 422).

Imports neither MLflow nor BentoML (it inspects the loaded model it is given), so a bento's copy
of the serving package needs nothing more.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

from miniautoml.errors import MiniAutoMLError

# DataFrame columns that name the prediction in a frame output (first found wins).
LABEL_COLUMNS = ("result", "label", "prediction", "predicted_label", "class")


class Predictor(Protocol):
    """What serving calls: one `{"result": str, "scores": {str: float}}` per text, in order."""

    def predict_texts(self, texts: Sequence[str], top_k: int = 3) -> list[dict[str, Any]]: ...


class UnsupportedModelError(MiniAutoMLError):
    """The model cannot classify text (its signature takes no single string input): HTTP 422."""


def predictor_for(pyfunc_model: Any, run_id: str) -> Predictor:
    """The predictor of a loaded `mlflow.pyfunc.PyFuncModel` (of run `run_id`)."""
    try:
        python_model = pyfunc_model.unwrap_python_model()
    except Exception:  # not a custom python model (sklearn, transformers, ...): MLflow raises
        python_model = None
    if callable(getattr(python_model, "predict_texts", None)):
        return python_model  # our models: the fast path
    try:
        schema = pyfunc_model.metadata.get_input_schema()
    except Exception:
        schema = None
    return PyfuncPredictor.of(pyfunc_model, schema, run_id)


def describe_schema(schema: Any) -> str:
    """A signature's inputs in one line, e.g. `['x': double (required), 'y': long (required)]`."""
    return " ".join(repr(schema).split())


class PyfuncPredictor:
    """Any MLflow pyfunc model that takes text: `pyfunc.predict` with the texts in the signature's shape."""

    def __init__(self, model: Any, column: str | None, run_id: str) -> None:
        self.model = model
        self.column = column  # None: a list of strings
        self.run_id = run_id

    @classmethod
    def of(cls, model: Any, schema: Any, run_id: str) -> "PyfuncPredictor | TextUnsupported":
        """The adapter of `model` with input `schema` (None: no signature), or TextUnsupported."""
        if schema is None:
            return cls(model, None, run_id)
        why = "it needs exactly one string input"
        if schema.is_tensor_spec():
            specs = schema.inputs
            if len(specs) == 1 and getattr(specs[0].type, "kind", "") in ("U", "S", "O"):
                return cls(model, None, run_id)
            return TextUnsupported(run_id, schema, why)
        inputs = list(schema.inputs)
        required = [spec for spec in inputs if getattr(spec, "required", True)]
        candidates = required if required else inputs
        if len(candidates) != 1 or str(getattr(candidates[0], "type", "")) != "DataType.string":
            return TextUnsupported(run_id, schema, why)
        name = candidates[0].name if schema.has_input_names() else None
        return cls(model, name, run_id)

    def predict_texts(self, texts: Sequence[str], top_k: int = 3) -> list[dict[str, Any]]:
        texts = list(texts)
        if self.column is None:
            data: Any = texts
        else:
            import pandas as pd

            data = pd.DataFrame({self.column: texts})
        output = self.model.predict(data)
        rows = answers_of(output, top_k)
        if len(rows) != len(texts):
            raise MiniAutoMLError(
                f"model of run {self.run_id} answered {len(rows)} predictions for {len(texts)} documents"
            )
        return rows


class TextUnsupported:
    """A model that cannot take text: every prediction raises UnsupportedModelError."""

    def __init__(self, run_id: str, schema: Any, why: str) -> None:
        self.message = (
            f"model of run {run_id} cannot classify text: its signature's inputs are {describe_schema(schema)}; {why}"
        )

    def predict_texts(self, texts: Sequence[str], top_k: int = 3) -> list[dict[str, Any]]:
        raise UnsupportedModelError(self.message)


def _label(value: Any) -> str:
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()  # numpy scalar -> python
        except (ValueError, AttributeError):
            pass
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _top(scores: dict[str, float], top_k: int) -> dict[str, float]:
    ranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)[:top_k]
    return {label: float(p) for label, p in ranked}


def _is_number(value: Any) -> bool:
    try:
        return not isinstance(value, (str, bytes, bool)) and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def answers_of(output: Any, top_k: int) -> list[dict[str, Any]]:
    """A pyfunc output as one `{"result", "scores"}` per row.

    A frame or dict of numeric columns is label -> probability (result = the most probable);
    a frame with a label column (`result`, `label`, `prediction`, ...) gives that label, and its
    `scores` column too if it holds label -> probability mappings; anything else (a Series, an
    array, a list) is one label per row, without scores.
    """
    import numpy as np
    import pandas as pd

    if isinstance(output, dict):
        try:
            output = pd.DataFrame(output)
        except ValueError:  # scalars: one row
            output = pd.DataFrame([output])
    if isinstance(output, np.ndarray) and output.ndim == 2:
        if output.shape[1] == 1:
            output = output[:, 0]
        else:
            output = pd.DataFrame(output, columns=[str(i) for i in range(output.shape[1])])
    if isinstance(output, pd.DataFrame):
        frame = output
        label_column = next((c for c in LABEL_COLUMNS if c in frame.columns), None)
        if label_column is not None:
            scores = frame["scores"] if "scores" in frame.columns else None
            rows = []
            for i, value in enumerate(frame[label_column]):
                found = scores.iloc[i] if scores is not None else None
                mapping = (
                    {str(k): float(v) for k, v in dict(found).items() if _is_number(v)}
                    if isinstance(found, dict)
                    else {}
                )
                rows.append({"result": _label(value), "scores": _top(mapping, top_k)})
            return rows
        numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])]
        if len(frame.columns) > 1 and len(numeric) == len(frame.columns):  # label -> probability
            rows = []
            for values in frame.itertuples(index=False, name=None):
                scores = {_label(c): float(v) for c, v in zip(frame.columns, values)}
                best = max(scores, key=scores.get)
                rows.append({"result": best, "scores": _top(scores, top_k)})
            return rows
        output = frame.iloc[:, 0]
    if isinstance(output, pd.Series):
        output = output.tolist()
    if isinstance(output, np.ndarray):
        output = output.tolist()
    if isinstance(output, (list, tuple)):
        return [{"result": _label(value), "scores": {}} for value in output]
    raise MiniAutoMLError(f"model output of type {type(output).__name__} is not one label per document")
