"""The policy file's ``serving:`` section: what the prediction log keeps of the inputs,
and how soon a moved alias is noticed. Example::

    serving:
      features: full            # full | digest | [age, hours_per_week]  (the default)
      alias_ttl_s: 2            # aliases are re-read from MLflow this often
      models:
        adult-income:
          features: [age, education_num, hours_per_week]   # this model's own rule

``digest`` keeps only the SHA-256 of each row (always kept as ``features_digest``);
then a logged prediction cannot be explained again or checked for drift.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

FeatureRule = Literal["full", "digest"] | list[str]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelServing(_Strict):
    features: FeatureRule = "full"


class ServingPolicy(_Strict):
    features: FeatureRule = "full"
    alias_ttl_s: float = Field(2.0, gt=0, le=3600)
    models: dict[str, ModelServing] = Field(default_factory=dict)

    def features_for(self, model: str) -> FeatureRule:
        own = self.models.get(model)
        return own.features if own is not None else self.features
