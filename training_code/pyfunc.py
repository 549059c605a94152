"""The MLflow pyfunc wrapper of a trained intent classifier.

Loaded from the model's own `code/` directory (MLflow `code_paths`), so this module and what it
imports must not depend on `miniautoml` or on the repository being on `sys.path`.
Serving unwraps the python model and calls `predict_texts` directly: `pyfunc.predict` adds
DataFrame conversion and schema checks that cost ~10x for one document.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd
import torch

from training_code.model import ModelSpec, build_model
from training_code.tokenizer import Tokenizer

# Artifact keys (MLflow `artifacts=`) and the file names the trainer writes them to.
WEIGHTS, TOKENIZER, LABELS, SPEC = "weights", "tokenizer", "labels", "model_spec"
FILES = {WEIGHTS: "weights.pt", TOKENIZER: "tokenizer.json", LABELS: "labels.json", SPEC: "model.json"}
DEFAULT_TOP_K = 3


class IntentClassifierModel(mlflow.pyfunc.PythonModel):
    """Text in, intent out: `{"result": label, "scores": {label: probability, ...top_k}}`."""

    ARTIFACT_FILES = FILES  # artifact key -> file name; subclasses name their own

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.load_artifacts(context.artifacts)

    def load_artifacts(self, artifacts: Mapping[str, str]) -> None:
        # One thread per process: as fast as two for this model, and serving runs one per worker.
        torch.set_num_threads(1)
        spec = ModelSpec.from_dict(json.loads(Path(artifacts[SPEC]).read_text(encoding="utf-8")))
        self.tokenizer = Tokenizer.load(artifacts[TOKENIZER])
        self.labels: list[str] = json.loads(Path(artifacts[LABELS]).read_text(encoding="utf-8"))
        self.network = build_model(spec)
        self.network.load_state_dict(torch.load(artifacts[WEIGHTS], map_location="cpu", weights_only=True))
        self.network.eval()

    @staticmethod
    def save_files(
        directory: str | Path, network: torch.nn.Module, tokenizer: Tokenizer, labels: list[str], spec: ModelSpec
    ) -> dict[str, str]:
        """Write what `load_artifacts` reads; returns the MLflow `artifacts=` mapping."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        torch.save(network.state_dict(), d / FILES[WEIGHTS])
        tokenizer.save(d / FILES[TOKENIZER])
        (d / FILES[LABELS]).write_text(json.dumps(labels, ensure_ascii=False), encoding="utf-8")
        (d / FILES[SPEC]).write_text(json.dumps(spec.to_dict()), encoding="utf-8")
        return {key: str(d / name) for key, name in FILES.items()}

    @classmethod
    def from_dir(cls, directory: str | Path) -> "IntentClassifierModel":
        """The model from a directory holding the artifact files (what the trainer writes)."""
        model = cls()
        model.load_artifacts({key: str(Path(directory) / name) for key, name in cls.ARTIFACT_FILES.items()})
        return model

    def predict_texts(self, texts: Sequence[str], top_k: int = DEFAULT_TOP_K) -> list[dict[str, Any]]:
        """One `{"result": label, "scores": {label: prob}}` per text, the top_k scores best first."""
        if not texts:
            return []
        k = max(1, min(int(top_k), len(self.labels)))
        ids, offsets = self.tokenizer.encode_batch(texts)
        with torch.inference_mode():
            logits = self.network(torch.tensor(ids, dtype=torch.long), torch.tensor(offsets, dtype=torch.long))
            probs, idx = torch.softmax(logits, dim=1).topk(k, dim=1)
        labels = self.labels
        out = []
        for row_p, row_i in zip(probs.tolist(), idx.tolist()):
            out.append({"result": labels[row_i[0]], "scores": {labels[i]: p for i, p in zip(row_i, row_p)}})
        return out

    # A DataFrame hint: MLflow 3 infers no signature from it (the logged one stands) and passes
    # the input through unconverted; lists of strings are accepted too.
    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """DataFrame with a `text` column (or a list of strings) -> DataFrame `result`, `scores`."""
        top_k = int((params or {}).get("top_k", DEFAULT_TOP_K))
        rows = self.predict_texts(_texts_of(model_input), top_k=top_k)
        return pd.DataFrame({"result": [r["result"] for r in rows], "scores": [r["scores"] for r in rows]})


def _texts_of(model_input: Any) -> list[str]:
    if isinstance(model_input, pd.DataFrame):
        column = "text" if "text" in model_input.columns else model_input.columns[0]
        return [str(t) for t in model_input[column].tolist()]
    if isinstance(model_input, pd.Series):
        return [str(t) for t in model_input.tolist()]
    if isinstance(model_input, str):
        return [model_input]
    if isinstance(model_input, Mapping):
        value = model_input.get("text", [])
        return [value] if isinstance(value, str) else [str(t) for t in value]
    return [str(t) for t in model_input]
