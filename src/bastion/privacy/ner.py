"""Optional model-based recognizers, switched on by the policy's ``privacy.ner``.

Neither backend is a dependency of Bastion: the import happens when a policy asks for
one, and a missing package or model is a clear configuration error
(:class:`NerBackendUnavailable`, code ``ner_backend_unavailable``) raised when the guard
is built, not an ImportError later.

Nothing is ever downloaded. Both libraries would fetch a missing model on their own:
Presidio's spaCy engine runs ``spacy download`` (a pip install) for a model that is not
installed, and GLiNER asks the Hugging Face hub. So the model is looked for first, on
disk only (an installed spaCy package or a pipeline directory; a GLiNER directory or a
snapshot already in the local Hugging Face cache), and the library is handed only what
was found there.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bastion.privacy.config import NerPolicy
from bastion.privacy.entities import Span
from bastion.privacy.errors import NerBackendUnavailable


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def spacy_model_path(model: str) -> str | None:
    """Where the spaCy pipeline ``model`` is on disk (a directory, or an installed
    package), or None. Looks; never fetches."""
    if Path(model).is_dir():
        return model
    if model.isidentifier():
        try:
            if importlib.util.find_spec(model) is not None:
                return model
        except (ImportError, ValueError):
            return None
    return None


def gliner_model_path(model: str) -> str | None:
    """A GLiNER model directory: ``model`` itself, or its snapshot already in the local
    Hugging Face cache. Looks; never fetches."""
    if Path(model).is_dir():
        return model
    try:
        from huggingface_hub import snapshot_download  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    try:
        return str(snapshot_download(model, local_files_only=True))
    except Exception:  # not in the cache (LocalEntryNotFoundError), or not a hub id
        return None


def _require(
    backend: str,
    package: str,
    module: str,
    model: str,
    model_kind: str,
    find_model: Callable[[str], str | None],
    how: str,
) -> str:
    """The model's path on disk; or NerBackendUnavailable naming every missing piece."""
    missing = []
    if not _importable(module):
        missing.append(f"the {package} package")
    path = find_model(model)
    if path is None:
        missing.append(f"the {model_kind} model {model!r}")
    if missing or path is None:
        what = " and ".join(missing)
        verb = "is" if len(missing) == 1 else "are"
        raise NerBackendUnavailable(
            f"privacy.ner.backend is {backend!r} but {what} {verb} not installed; {how}, "
            "or remove privacy.ner. Bastion never downloads a model.",
            backend=backend,
            missing=missing,
        )
    return path


class PresidioNerRecognizer:
    """spaCy NER through Presidio's analyzer (its NER results only)."""

    name = "presidio_ner"

    def __init__(self, policy: NerPolicy) -> None:
        path = _require(
            "presidio",
            "presidio-analyzer",
            "presidio_analyzer",
            policy.model,
            "spaCy",
            spacy_model_path,
            "install presidio-analyzer and the model's package (or give the model's directory)",
        )
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import NlpEngineProvider

        try:
            nlp = NlpEngineProvider(
                nlp_configuration={
                    "nlp_engine_name": "spacy",
                    "models": [{"lang_code": "en", "model_name": path}],
                }
            ).create_engine()
        except (OSError, ValueError) as exc:
            raise NerBackendUnavailable(
                f"the spaCy model {policy.model!r} could not be loaded ({type(exc).__name__}); "
                "reinstall it",
                backend="presidio",
            ) from exc
        self._engine: Any = AnalyzerEngine(nlp_engine=nlp, supported_languages=["en"])
        self.entities = frozenset(policy.entities)
        self.threshold = policy.threshold

    def find(self, text: str) -> Iterator[Span]:
        results = self._engine.analyze(text, language="en", entities=sorted(self.entities))
        for r in results:
            if r.score >= self.threshold:
                yield Span(
                    r.entity_type, r.start, r.end, float(r.score), text[r.start : r.end], self.name
                )


class GlinerRecognizer:
    """A GLiNER model already on disk (``model`` is a directory or a cached hub id)."""

    name = "gliner"

    def __init__(self, policy: NerPolicy) -> None:
        path = _require(
            "gliner",
            "gliner",
            "gliner",
            policy.model,
            "GLiNER",
            gliner_model_path,
            "install gliner and save the model to a directory (or into the local Hugging "
            "Face cache)",
        )
        from gliner import GLiNER  # type: ignore[import-not-found, unused-ignore]

        try:
            self._model: Any = GLiNER.from_pretrained(path, local_files_only=True)
        except Exception as exc:
            raise NerBackendUnavailable(
                f"the GLiNER model {policy.model!r} could not be loaded from {path} "
                f"({type(exc).__name__}); save it again, tokenizer included",
                backend="gliner",
            ) from exc
        self.entities = frozenset(policy.entities)
        self.threshold = policy.threshold
        self._labels = {e.lower().replace("_", " "): e for e in policy.entities}

    def find(self, text: str) -> Iterator[Span]:
        for r in self._model.predict_entities(text, list(self._labels), threshold=self.threshold):
            entity_type = self._labels.get(str(r["label"]).lower())
            if entity_type is not None:
                start, end = int(r["start"]), int(r["end"])
                yield Span(entity_type, start, end, float(r["score"]), text[start:end], self.name)


def load_ner(policy: NerPolicy) -> PresidioNerRecognizer | GlinerRecognizer:
    if policy.backend == "presidio":
        return PresidioNerRecognizer(policy)
    return GlinerRecognizer(policy)
