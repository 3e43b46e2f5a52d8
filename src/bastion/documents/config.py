"""The policy file's ``documents`` section (the policy schema imports this).

    documents:
      embedding_model: minilm          # a policy model of kind embedding; none: BM25 only
      personal_data: mask              # index | mask | refuse (collections may override)
      chunk_chars: 1200
      overlap_chars: 150
      open_collections: true           # collections not listed: every documents:read role
      collections:
        regulations: {read: ["*"], description: "GDPR and EU AI Act"}
        contracts:
          read: [admin, analyst]       # roles (patterns) that may search and read
          teams: [legal]               # and, when given, only these teams
          write: [admin]               # roles that may ingest and remove
          personal_data: refuse

The ``admin`` role reads and writes every collection. A caller also needs the
``documents:read`` / ``documents:write`` permission (docs/access.md).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

PersonalData = Literal["index", "mask", "refuse"]
CollectionName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CollectionConfig(_Strict):
    read: list[str] = Field(default_factory=lambda: ["*"])
    teams: list[str] | None = None
    write: list[str] = Field(default_factory=lambda: ["admin"])
    personal_data: PersonalData | None = None
    description: str | None = None


class DocumentsPolicy(_Strict):
    embedding_model: str | None = None
    personal_data: PersonalData = "mask"
    chunk_chars: Annotated[int, Field(ge=200, le=20_000)] = 1200
    overlap_chars: Annotated[int, Field(ge=0, le=2_000)] = 150
    open_collections: bool = True
    collections: dict[CollectionName, CollectionConfig] = Field(default_factory=dict)

    def personal_data_for(self, collection: str) -> PersonalData:
        config = self.collections.get(collection)
        if config is not None and config.personal_data is not None:
            return config.personal_data
        return self.personal_data
