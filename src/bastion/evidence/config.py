"""The policy's ``evidence:`` section: thresholds of response monitoring, access
anomalies and legal-clock alerts. Every field has a default, so the section is optional::

    evidence:
      responses: {latency_s: 5, refusal_finish_reasons: [content_filter]}
      access: {baseline_days: 14, volume_factor: 5, min_calls: 50, new_model: true,
               unusual_hours: true, new_source: true, record_source: true,
               source_prefix_v4: 24, source_prefix_v6: 48}
      clocks: {warn_days: 3}
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ResponseChecks(_Model):
    latency_s: float = Field(5.0, gt=0, description="a call slower than this is flagged")
    refusal_finish_reasons: list[str] = Field(default_factory=lambda: ["content_filter"])


class AccessChecks(_Model):
    baseline_days: int = Field(14, ge=1, le=365, description="history a key is compared with")
    volume_factor: float = Field(5.0, gt=1, description="last day's calls vs. the daily mean")
    min_calls: int = Field(50, ge=1, description="no volume alert below this many calls a day")
    new_model: bool = True
    unusual_hours: bool = True
    new_source: bool = Field(
        True, description="alert when a key is used from a network it was never used from"
    )
    record_source: bool = Field(
        True, description="record each call's source network, as a keyed digest, in the ledger"
    )
    source_prefix_v4: int = Field(
        24, ge=8, le=32, description="IPv4 prefix a source is counted by (32: the address)"
    )
    source_prefix_v6: int = Field(
        48, ge=16, le=128, description="IPv6 prefix a source is counted by (128: the address)"
    )


class ClockChecks(_Model):
    warn_days: float = Field(3.0, ge=0, description="alert this long before a deadline")


class EvidencePolicy(_Model):
    responses: ResponseChecks = Field(default_factory=ResponseChecks)
    access: AccessChecks = Field(default_factory=AccessChecks)
    clocks: ClockChecks = Field(default_factory=ClockChecks)
