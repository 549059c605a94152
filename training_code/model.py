"""The networks and how each one is optimised.

`fasttext` (default): mean of sparse word/bigram embeddings -> one linear layer. Sparse gradients
keep a step cheap: only the rows of the batch's tokens are updated (dense Adam over the ~3M
embedding weights was ~10x slower for the same accuracy).
`book`: the book's network, EmbeddingBag -> three linear layers, SGD with gradient clipping
(without clipping it diverges at the book's lr of 5). Its embedding is dense because
`clip_grad_norm_` does not accept sparse gradients.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

MODELS = ("fasttext", "book", "minilm")  # minilm: a head on sentence embeddings (training_code.minilm)
OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild the network before loading its state dict (saved as JSON)."""

    name: str
    vocab_size: int
    num_labels: int
    embed_dim: int = 100
    hidden_dim: int = 64

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelSpec":
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


class FastTextClassifier(nn.Module):
    def __init__(self, vocab_size: int, embed_dim: int, num_labels: int) -> None:
        super().__init__()
        self.embedding = nn.EmbeddingBag(vocab_size, embed_dim, mode="mean", sparse=True)
        self.fc = nn.Linear(embed_dim, num_labels)
        # fastText's init: small embeddings, zero output layer (every class starts equal).
        nn.init.uniform_(self.embedding.weight, -1.0 / embed_dim, 1.0 / embed_dim)
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return self.fc(self.embedding(ids, offsets))


class BookClassifier(nn.Module):
    """The book's text classifier: no activations between the linear layers, as in the book."""

    def __init__(self, vocab_size: int, embed_dim: int, hidden_dim: int, num_labels: int) -> None:
        super().__init__()
        self.embedding = nn.EmbeddingBag(vocab_size, embed_dim, mode="mean", sparse=False)
        self.fc1 = nn.Linear(embed_dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, hidden_dim)
        self.fc3 = nn.Linear(hidden_dim, num_labels)
        for layer in (self.embedding, self.fc1, self.fc2, self.fc3):
            nn.init.uniform_(layer.weight, -0.5, 0.5)
        for layer in (self.fc1, self.fc2, self.fc3):
            nn.init.zeros_(layer.bias)

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return self.fc3(self.fc2(self.fc1(self.embedding(ids, offsets))))


def build_model(spec: ModelSpec) -> nn.Module:
    # EmbeddingBag needs at least one row even when every token was below min_count.
    vocab = max(spec.vocab_size, 1)
    if spec.name == "fasttext":
        return FastTextClassifier(vocab, spec.embed_dim, spec.num_labels)
    if spec.name == "book":
        return BookClassifier(vocab, spec.embed_dim, spec.hidden_dim, spec.num_labels)
    raise ValueError(f"unknown model {spec.name!r}; expected one of {', '.join(MODELS)}")


@dataclass
class Optimisation:
    """The optimizers of one model and how to clip its gradients (0 = no clipping)."""

    optimizers: list[torch.optim.Optimizer]
    clip_grad_norm: float = 0.0
    parameters: list[nn.Parameter] | None = None

    def zero_grad(self) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)

    def step(self) -> None:
        if self.clip_grad_norm > 0 and self.parameters:
            torch.nn.utils.clip_grad_norm_(self.parameters, self.clip_grad_norm)
        for opt in self.optimizers:
            opt.step()


def build_optimisation(
    model: nn.Module, name: str, lr: float, *, clip_grad_norm: float = 0.0, momentum: float = 0.0
) -> Optimisation:
    """Adam on dense parameters + SparseAdam on sparse embeddings, or SGD on everything."""
    sparse = [p for m in model.modules() if isinstance(m, nn.EmbeddingBag) and m.sparse for p in m.parameters()]
    sparse_ids = {id(p) for p in sparse}
    dense = [p for p in model.parameters() if id(p) not in sparse_ids]
    if name == "adam":
        opts: list[torch.optim.Optimizer] = [torch.optim.Adam(dense, lr=lr)]
        if sparse:
            opts.append(torch.optim.SparseAdam(sparse, lr=lr))
    elif name == "sgd":
        # torch's SGD handles sparse gradients (without momentum); clipping only sees dense ones.
        opts = [torch.optim.SGD(dense + sparse, lr=lr, momentum=momentum)]
    else:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")
    return Optimisation(optimizers=opts, clip_grad_norm=clip_grad_norm, parameters=dense)
