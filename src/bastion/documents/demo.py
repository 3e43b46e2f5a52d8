"""The demo corpus: GDPR and EU AI Act articles shipped inside the package.

``data/eu_regulations.jsonl.gz`` holds one JSON object per article (EUR-Lex text,
© European Union, reused with attribution: see ``data/NOTICE``). Only the package's own
copy is read; nothing is fetched.
"""

from __future__ import annotations

import gzip
from importlib.resources import files

from bastion.documents.service import Upload

COLLECTION = "regulations"
CORPUS = "eu_regulations.jsonl.gz"
ATTRIBUTION = "EUR-Lex, © European Union, https://eur-lex.europa.eu/"


def corpus_bytes() -> bytes:
    return gzip.decompress(files("bastion.documents").joinpath("data", CORPUS).read_bytes())


def corpus_upload() -> Upload:
    return Upload("eu_regulations.jsonl", corpus_bytes(), "jsonl")
