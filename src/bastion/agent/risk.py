"""``risk_check``: personal data, deny-listed terms, and the EU AI Act risk category.

The category follows the Act's structure: **prohibited** practices (Article 5),
**high-risk** uses (Article 6 with the areas of Annex III), **limited** risk with
transparency duties (Article 50), otherwise **minimal**. The topic is matched against
the practices and areas those articles name (word stems, so "scoring" matches "social
scoring"); the first category whose terms match wins, in that order of severity. The
evidence is the article of the corpus the category rests on, found by searching the
caller's collections for it (when a collection holds the AI Act), so the verdict cites
the text rather than this table. Deterministic: a table and string matching, no model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from bastion.privacy import PrivacyGuard

#: (category, the article that defines it, the practices or areas it names)
CATEGORIES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "prohibited",
        "Article 5",
        (
            "subliminal",
            "manipulative",
            "exploit vulnerabilit",
            "social scor",
            "social credit",
            "predictive policing",
            "predict the risk of a natural person committing a criminal offence",
            "untargeted scraping",
            "facial recognition database",
            "emotion recognition in the workplace",
            "emotion recognition in education",
            "emotions of a natural person in the areas of workplace",
            "biometric categorisation",
            "real-time remote biometric identification",
        ),
    ),
    (
        "high",
        "Article 6 and Annex III",
        (
            "biometric",
            "critical infrastructure",
            "education",
            "vocational training",
            "admission",
            "exam",
            "recruit",
            "hiring",
            "employment",
            "worker",
            "job applica",
            "cv screening",
            "credit scor",
            "creditworth",
            "essential public",
            "public assistance benefit",
            "life and health insurance",
            "emergency call",
            "law enforcement",
            "migration",
            "asylum",
            "border control",
            "administration of justice",
            "judicial",
            "election",
            "voting",
        ),
    ),
    (
        "limited",
        "Article 50",
        (
            "chatbot",
            "interact with natural persons",
            "conversational",
            "deep fake",
            "deepfake",
            "synthetic audio",
            "synthetic image",
            "generated content",
            "generative",
            "emotion recognition",
        ),
    ),
)


@dataclass(frozen=True)
class RiskResult:
    category: str
    article: str | None
    matched: tuple[str, ...]
    personal_data: dict[str, int] = field(default_factory=dict)
    denylist: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "ai_act_category": self.category,
            "article": self.article,
            "matched_terms": list(self.matched),
            "personal_data": dict(self.personal_data),
            "denylist": list(self.denylist),
        }


def _normal(text: str) -> str:
    return " " + " ".join(re.findall(r"[a-z0-9]+", text.lower())) + " "


def classify(text: str) -> tuple[str, str | None, tuple[str, ...]]:
    normal = _normal(text)
    for category, article, phrases in CATEGORIES:
        matched = tuple(p for p in phrases if f" {_normal(p).strip()}" in normal)
        if matched:
            return category, article, matched
    return "minimal", None, ()


def risk_check(text: str, guard: PrivacyGuard) -> RiskResult:
    """PII types found (counts, never values), deny-list labels hit, the AI Act category."""
    found: dict[str, int] = {}
    for span in guard.analyze(text):
        found[span.entity_type] = found.get(span.entity_type, 0) + 1
    hits = tuple(sorted({hit.label for hit in guard.denylist.scan(text)}))
    category, article, matched = classify(text)
    return RiskResult(category, article, matched, dict(sorted(found.items())), hits)
