"""Optional model-based recognizers, switched on by the policy's ``privacy.ner``.

Neither backend is a dependency of Bastion: the import happens when a policy asks for
one, and a missing package is a clear configuration error, not an ImportError at start.
Models must already be installed (a spaCy package, or a GLiNER model in the local
cache): Bastion never downloads one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bastion.privacy.config import NerPolicy
from bastion.privacy.entities import Span
from bastion.privacy.errors import NerBackendUnavailable


class PresidioNerRecognizer:
    """spaCy NER through Presidio's analyzer (its NER results only)."""

    name = "presidio_ner"

    def __init__(self, policy: NerPolicy) -> None:
        try:
            from presidio_analyzer import AnalyzerEngine
            from presidio_analyzer.nlp_engine import NlpEngineProvider
        except ImportError as exc:
            raise NerBackendUnavailable(
                "privacy.ner.backend is 'presidio' but presidio-analyzer is not installed; "
                "install presidio-analyzer and a spaCy model, or remove privacy.ner"
            ) from exc
        try:
            nlp = NlpEngineProvider(
                nlp_configuration={
                    "nlp_engine_name": "spacy",
                    "models": [{"lang_code": "en", "model_name": policy.model}],
                }
            ).create_engine()
        except (OSError, ValueError) as exc:
            raise NerBackendUnavailable(
                f"the spaCy model {policy.model!r} is not installed; install it as a package"
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
    """A GLiNER model already on disk (``model`` is a local path or a cached id)."""

    name = "gliner"

    def __init__(self, policy: NerPolicy) -> None:
        try:
            from gliner import GLiNER  # type: ignore[import-not-found, unused-ignore]
        except ImportError as exc:
            raise NerBackendUnavailable(
                "privacy.ner.backend is 'gliner' but the gliner package is not installed"
            ) from exc
        try:
            self._model: Any = GLiNER.from_pretrained(policy.model, local_files_only=True)
        except Exception as exc:
            raise NerBackendUnavailable(
                f"the GLiNER model {policy.model!r} is not available locally"
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
