"""The demo corpus ships in the package, attributed, and seeds without recomputing
every vector: the shipped MiniLM vectors are the model's own and cover every chunk."""

from __future__ import annotations

import hashlib
import json
from importlib.resources import files

import numpy as np
import pytest

from bastion.documents.chunking import chunk
from bastion.documents.config import DocumentsPolicy
from bastion.documents.demo import corpus_upload
from bastion.documents.parsing import parse
from bastion.documents.service import _search_text
from bastion.gateway.providers.minilm import embed_texts, known_vectors, shared_minilm


def demo_texts() -> list[str]:
    policy = DocumentsPolicy()
    upload = corpus_upload()
    return [
        _search_text(doc, c.location, c.text)
        for doc in parse(upload.filename, upload.data, upload.format)
        for c in chunk(doc, policy.chunk_chars, policy.overlap_chars)
    ]


def test_the_corpus_is_the_gdpr_and_the_ai_act_with_attribution() -> None:
    upload = corpus_upload()
    rows = [json.loads(line) for line in upload.data.decode().splitlines()]
    counts = {r: sum(1 for x in rows if x["regulation"] == r) for r in ("gdpr", "eu-ai-act")}
    assert counts == {"gdpr": 99, "eu-ai-act": 113}
    assert len({r["id"] for r in rows}) == len(rows)
    notice = files("bastion.documents").joinpath("data", "NOTICE").read_text()
    assert "© European Union" in notice and "eur-lex.europa.eu" in notice


def test_every_demo_chunk_has_a_shipped_vector() -> None:
    texts = demo_texts()
    known = known_vectors()
    missing = [t[:40] for t in texts if hashlib.sha256(t.encode()).digest() not in known]
    assert not missing, (
        f"{len(missing)} demo chunks have no shipped vector (chunking changed?): rebuild "
        "src/bastion/gateway/providers/data/minilm-known.npz (docs/documents.md)"
    )


@pytest.mark.slow
def test_shipped_vectors_are_the_models_own() -> None:
    sample = demo_texts()[::97]
    computed = shared_minilm().embed(sample)
    shipped = embed_texts(sample)
    assert np.min(np.sum(computed * shipped, axis=1)) > 0.999
