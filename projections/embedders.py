"""Embedders: text -> dense vectors for the vector index.

`HashedLexicalEmbedder` is built in and needs no download and no model: it hashes lexical
features (words, word pairs, character trigrams) into a dense L2-normalised vector. It finds
texts that share words and word pieces with the query, tolerating inflections and typos a
little; it is not a semantic model and does not know that "car" and "automobile" are alike.

`SentenceTransformerEmbedder` (the `semantic` extra) runs a real sentence-embedding model from
a local directory, named by `$EVENTSTORE_EMBED_MODEL`; it never downloads anything.

An embedder's `name` and `dimension` are part of the vector projection's version, so changing
the embedder rebuilds the index.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import re
import zlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

__all__ = ["EMBED_MODEL_ENV", "Embedder", "HashedLexicalEmbedder", "SentenceTransformerEmbedder", "default_embedder"]

EMBED_MODEL_ENV = "EVENTSTORE_EMBED_MODEL"


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into vectors of a fixed dimension."""

    name: str
    """Stable identity of the model and its settings (part of the vector projection's version)."""
    dimension: int

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, each of `dimension` floats (a zero vector for a text with no features)."""


_WORD = re.compile(r"[^\W_]+")
_STOP = frozenset(
    "a an and are as at be but by for from has have i if in is it its me my no not of on or our so that the their "
    "then there these this to was we were what when which will with you your".split()
)


class HashedLexicalEmbedder:
    """Lexical features hashed into a dense, L2-normalised vector (offline; not a semantic model)."""

    def __init__(self, dimension: int = 256, max_chars: int = 2000) -> None:
        if dimension < 8:
            raise ValueError("dimension must be at least 8")
        self.dimension = dimension
        self.max_chars = max_chars
        self.name = f"hashed-lexical-v1-c{max_chars}"

    def features(self, text: str) -> Counter[str]:
        """Weighted features: words (1.0), adjacent word pairs (0.5), character trigrams of words (0.25)."""
        words = [w for w in _WORD.findall(text[: self.max_chars].casefold()) if w not in _STOP]
        found: Counter[str] = Counter()
        for word in words:
            found["w" + word] += 4
            if len(word) > 3:
                padded = f"<{word}>"
                for i in range(len(padded) - 2):
                    found["c" + padded[i:i + 3]] += 1
        for a, b in zip(words, words[1:]):
            found[f"p{a} {b}"] += 2
        return found

    def embed_one(self, text: str) -> list[float]:
        """The vector of one text."""
        vector = [0.0] * self.dimension
        for feature, count in self.features(text).items():
            h = zlib.crc32(feature.encode("utf-8", "surrogatepass"))
            weight = 1.0 + math.log(count)  # sublinear: a repeated word does not swamp the rest
            vector[h % self.dimension] += -weight if h & 0x80000000 else weight
        norm = math.sqrt(sum(x * x for x in vector))
        return [x / norm for x in vector] if norm else vector

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One L2-normalised vector per text."""
        return [self.embed_one(text) for text in texts]


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded from a local directory (never downloaded).

    Its name and dimension are read from the model's files, so building the projection (and
    its version) does not load the model; the model is loaded on the first `embed`.
    """

    def __init__(self, model_dir: str | os.PathLike[str], batch_size: int = 32) -> None:
        path = Path(model_dir).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"${EMBED_MODEL_ENV}: {path} is not a model directory")
        if importlib.util.find_spec("sentence_transformers") is None:
            raise ImportError("a semantic embedder needs the 'semantic' extra: pip install 'eventstore[semantic]'")
        self.path = path
        self.batch_size = batch_size
        self._model = None
        digest = hashlib.sha256()
        for name in ("config.json", "modules.json", "config_sentence_transformers.json"):
            if (path / name).is_file():
                digest.update((path / name).read_bytes())
        self.name = f"sentence-transformers:{path.name}:{digest.hexdigest()[:12]}"
        self.dimension = _declared_dimension(path) or int(self._load().get_sentence_embedding_dimension())

    def _load(self):
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(self.path), device="cpu", local_files_only=True)
        return self._model

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One normalised vector per text."""
        vectors = self._load().encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                      show_progress_bar=False)
        return [list(map(float, v)) for v in vectors]


def _declared_dimension(path: Path) -> int | None:
    """The output dimension a sentence-transformers directory declares (pooling, then dense layers)."""
    try:
        modules = json.loads((path / "modules.json").read_text())
        dimension = None
        for module in modules:
            config = path / module.get("path", "") / "config.json"
            if not config.is_file():
                continue
            values = json.loads(config.read_text())
            if "Pooling" in module.get("type", ""):
                dimension = values.get("word_embedding_dimension", dimension)
            elif "Dense" in module.get("type", ""):
                dimension = values.get("out_features", dimension)
        return int(dimension) if dimension else None
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def default_embedder() -> Embedder:
    """The model in $EVENTSTORE_EMBED_MODEL if set, else the built-in hashed lexical embedder."""
    model = os.environ.get(EMBED_MODEL_ENV)
    if model:
        return SentenceTransformerEmbedder(model)
    return HashedLexicalEmbedder()
