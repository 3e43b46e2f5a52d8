"""Progressive delivery: start a canary, an A/B split or a shadow, judge it, move it on.

A rollout compares a *candidate* version with the *baseline* (the version in
production when it started), both serving at the same time. Its state lives in the
``rollouts`` table, so any replica's controller can pick it up after a restart:

- ``running``: the candidate takes ``weight`` percent of requests (shadow: that share
  of requests is also scored by the candidate). Each analysis (see
  :mod:`bastion.delivery.analysis`) passes, holds or fails.
- ``holding``: the last analysis could not decide; the estimate of candidate requests
  still needed is in ``last_analysis`` (Flagger halts silently here; we say why).
- a **fail** rolls back at once: state ``failed``, weight 0, every request back to
  production.
- a **pass** moves to the next step once the step has run its interval and served the
  minimum sample. The last step (100 % for a canary) is not taken by the controller:
  the rollout waits (``passed``) for the registry's promotion of the candidate to
  production, approved by someone other than its requester, with the gates. That
  approval moves the ``production`` alias — the same move the registry records — and
  the next look marks the rollout ``promoted``. The analysis keeps running while it
  waits, and still rolls back on a fail.
- ``paused`` (analysis and steps stop, traffic stays), ``aborted`` (traffic back to
  production); ``bastion models rollback`` aborts the model's rollout too.

Every start, step, verdict (with its numbers and test), hold, pause, resume, abort,
rollback and promotion is a ledger event (``deploy.*``) and a row in
``rollout_decisions``.
"""

from __future__ import annotations

import itertools
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bastion.audit.events import EventIn, Ledger
from bastion.auth.principal import Principal
from bastion.db import Database, utcnow
from bastion.delivery.analysis import Analysis, analyse
from bastion.delivery.errors import (
    InvalidInterval,
    InvalidSteps,
    NoBaseline,
    NotACandidate,
    RolloutActive,
    RolloutFinished,
    RolloutNotFound,
)
from bastion.delivery.models import FINAL, KINDS, RolloutDecisionRow, RolloutRow
from bastion.delivery.repository import DeliveryRepository
from bastion.delivery.schemas import DecisionView, RolloutHistory, RolloutView
from bastion.errors import InvalidInput
from bastion.registry.errors import ModelNotFound
from bastion.registry.repository import RegistryRepository

if TYPE_CHECKING:
    from bastion.delivery.config import DeliveryPolicy, Thresholds
    from bastion.policy import PolicyStore

CONTROLLER = "system:rollout-controller"
LEASE = "rollout-controller"
DEFAULT_STEPS = {"canary": [5, 25, 50, 100], "ab": [50], "shadow": [100]}
#: Which logged arms are the baseline and the candidate, by kind.
ARMS = {
    "canary": (("production",), ("canary",)),
    "ab": (("a",), ("b",)),
    "shadow": (("production",), ("shadow",)),
}
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_INTERVAL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def parse_interval(text: str) -> float:
    """``30s``, ``10m``, ``1h``, ``2d`` or plain seconds → seconds (0 < s ≤ 30 days)."""
    match = _INTERVAL.match(text or "")
    if match is None:
        raise InvalidInterval(f"interval {text!r}: write it as 30s, 10m, 1h or 2d")
    seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if not 0 < seconds <= 30 * 86400:
        raise InvalidInterval(f"interval {text!r}: between 1 s and 30 days")
    return seconds


def parse_steps(value: str | list[int] | None, kind: str) -> list[int]:
    """``5,25,50,100`` → [5, 25, 50, 100]: percentages, strictly rising, 1–100."""
    if value is None:
        return list(DEFAULT_STEPS[kind])
    if isinstance(value, str):
        try:
            steps = [int(part) for part in value.split(",") if part.strip()]
        except ValueError:
            raise InvalidSteps(f"steps {value!r}: give percentages, e.g. 5,25,50,100") from None
    else:
        steps = list(value)
    if not steps or len(steps) > 20:
        raise InvalidSteps("give between 1 and 20 steps, e.g. 5,25,50,100")
    if any(not 1 <= s <= 100 for s in steps):
        raise InvalidSteps("each step is a percentage from 1 to 100")
    if any(b <= a for a, b in itertools.pairwise(steps)):
        raise InvalidSteps("steps must rise: 5,25,50,100")
    if kind != "shadow" and steps[0] == 100:
        raise InvalidSteps(
            "the first step cannot be 100 %: a canary or A/B split starts below it "
            "(the move to 100 % is the approved promotion)"
        )
    return steps


@dataclass(frozen=True)
class Outcome:
    """What one look at a rollout did."""

    rollout_id: str
    action: str  # analysed, advanced, held, rolled_back, promoted, aborted, waiting
    state: str
    weight: int
    analysis: Analysis | None = None


class DeliveryService:
    def __init__(self, db: Database, ledger: Ledger, policy: PolicyStore) -> None:
        self.db = db
        self.ledger = ledger
        self.policy = policy

    @property
    def config(self) -> DeliveryPolicy:
        return self.policy.policy.delivery

    def thresholds(self, model: str) -> Thresholds:
        return self.config.thresholds_for(model)

    # reading ---------------------------------------------------------------------------

    def status(self, model: str) -> RolloutView:
        with self.db.session() as session:
            row = DeliveryRepository(session).latest_for(model)
            if row is None:
                raise RolloutNotFound(
                    f"{model} has had no rollout: `bastion deploy canary` starts one"
                )
            return RolloutView.of(row)

    def rollouts(self, model: str | None = None, limit: int = 50) -> list[RolloutView]:
        with self.db.session() as session:
            return [RolloutView.of(r) for r in DeliveryRepository(session).for_model(model, limit)]

    def history(self, model: str) -> RolloutHistory:
        with self.db.session() as session:
            repo = DeliveryRepository(session)
            row = repo.latest_for(model)
            if row is None:
                raise RolloutNotFound(f"{model} has had no rollout")
            return RolloutHistory(
                rollout=RolloutView.of(row),
                decisions=[DecisionView.of(d) for d in repo.decisions(row.id)],
            )

    # acting ----------------------------------------------------------------------------

    def start(
        self,
        actor: Principal,
        model: str,
        version: int,
        *,
        kind: str = "canary",
        steps: str | list[int] | None = None,
        interval: str = "10m",
        reason: str | None = None,
        now: datetime | None = None,
    ) -> RolloutView:
        if kind not in KINDS:
            raise InvalidInput(f"kind {kind!r}: canary, ab or shadow", code="invalid_kind")
        plan = parse_steps(steps, kind)
        interval_s = parse_interval(interval)
        now = now or utcnow()
        thresholds = self.thresholds(model).model_dump()
        with self.db.session() as session:
            reg = RegistryRepository(session)
            if not reg.versions(model):
                raise ModelNotFound(f"no model {model!r} in the registry")
            row = reg.require_version(model, version)
            holder = reg.holder(model, "production")
            if holder is None:
                raise NoBaseline(
                    f"{model} has no version in production to compare with: promote one first"
                )
            if holder.version == version:
                raise NotACandidate(f"{model} v{version} is already in production")
            if row.stage == "archived":
                raise NotACandidate(f"{model} v{version} is archived")
            repo = DeliveryRepository(session)
            if repo.active_for(model) is not None:
                raise RolloutActive(
                    f"{model} already has a rollout in progress: `bastion deploy status {model}`"
                )
            baseline = holder.version
        rollout_id = f"ro_{secrets.token_hex(6)}"
        details = {
            "rollout_id": rollout_id,
            "kind": kind,
            "candidate_version": version,
            "baseline_version": baseline,
            "steps": plan,
            "interval_s": interval_s,
            "thresholds": thresholds,
            "reason": reason,
        }
        self._event(actor.actor, "deploy.start", model, version, details)
        row_new = RolloutRow(
            id=rollout_id,
            model=model,
            active_model=model,
            candidate_version=version,
            baseline_version=baseline,
            kind=kind,
            steps=plan,
            interval_s=interval_s,
            step_index=0,
            weight=plan[0],
            state="running",
            thresholds=thresholds,
            reason=reason,
            created_by=actor.user,
            created_at=now,
            updated_at=now,
            step_started_at=now,
            step_base_count=0,
            next_check_at=now,
        )
        with self.db.session() as session:
            repo = DeliveryRepository(session)
            if repo.active_for(model) is not None:  # a start in between
                raise RolloutActive(f"{model} already has a rollout in progress")
            repo.add(row_new)
            self._decide(repo, row_new, actor.actor, "start", None, details, now)
            return RolloutView.of(row_new)

    def pause(self, actor: Principal, model: str, reason: str | None = None) -> RolloutView:
        return self._manual(actor, model, "pause", reason)

    def resume(self, actor: Principal, model: str, reason: str | None = None) -> RolloutView:
        return self._manual(actor, model, "resume", reason)

    def abort(self, actor: Principal, model: str, reason: str | None = None) -> RolloutView:
        return self._manual(actor, model, "abort", reason)

    def reset_traffic(self, actor: Principal | str, model: str, reason: str) -> RolloutView | None:
        """After ``bastion models rollback``: the model's rollout ends, traffic goes back
        to the (new) production version. None when no rollout was in progress."""
        who = actor if isinstance(actor, str) else actor.actor
        with self.db.session() as session:
            row = DeliveryRepository(session).active_for(model)
            if row is None:
                return None
        return self._end(row.id, who, "abort", "aborted", {"reason": reason}, utcnow())

    def _manual(self, actor: Principal, model: str, verb: str, reason: str | None) -> RolloutView:
        now = utcnow()
        with self.db.session() as session:
            repo = DeliveryRepository(session)
            row = repo.active_for(model)
            if row is None:
                raise RolloutNotFound(f"{model} has no rollout in progress")
            rollout_id, state = row.id, row.state
        if verb == "abort":
            return self._end(rollout_id, actor.actor, "abort", "aborted", {"reason": reason}, now)
        if verb == "pause" and state == "paused":
            raise RolloutFinished(f"{model}'s rollout is already paused")
        if verb == "resume" and state != "paused":
            raise RolloutFinished(f"{model}'s rollout is {state}, not paused")
        new_state = "paused" if verb == "pause" else "running"
        with self.db.session() as session:
            repo = DeliveryRepository(session)
            row = repo.get(rollout_id)
            assert row is not None
            details = {"rollout_id": row.id, "reason": reason, "weight": row.weight}
            self._event(actor.actor, f"deploy.{verb}", row.model, row.candidate_version, details)
            row.state, row.updated_at = new_state, now
            self._decide(repo, row, actor.actor, verb, None, details, now)
            return RolloutView.of(row)

    def _end(
        self,
        rollout_id: str,
        actor: str,
        action: str,
        state: str,
        details: dict[str, Any],
        now: datetime,
        outcome: str = "success",
    ) -> RolloutView:
        with self.db.session() as session:
            repo = DeliveryRepository(session)
            row = repo.get(rollout_id)
            if row is None:
                raise RolloutNotFound(f"no rollout {rollout_id}")
            if row.state in FINAL:
                raise RolloutFinished(f"{row.model}'s rollout is already {row.state}")
            details = {"rollout_id": row.id, "weight_before": row.weight} | details
            self._event(
                actor, f"deploy.{action}", row.model, row.candidate_version, details, outcome
            )
            row.state, row.weight, row.active_model = state, 0, None
            row.finished_at = row.updated_at = now
            if state == "promoted":
                row.weight = 100
            verdict = details.get("verdict")
            self._decide(repo, row, actor, action, str(verdict) if verdict else None, details, now)
            return RolloutView.of(row)

    # the controller's look -------------------------------------------------------------

    def look(self, rollout_id: str, now: datetime | None = None) -> Outcome:
        """Analyse one rollout and act on the verdict (the controller calls this)."""
        now = now or utcnow()
        with self.db.session() as session:
            repo = DeliveryRepository(session)
            row = repo.get(rollout_id)
            if row is None or row.state in FINAL:
                raise RolloutFinished(f"rollout {rollout_id} is not in progress")
            holder = RegistryRepository(session).holder(row.model, "production")
            production = holder.version if holder is not None else None
            model, kind, cand_v, base_v = (
                row.model,
                row.kind,
                row.candidate_version,
                row.baseline_version,
            )
            if production == cand_v:
                promoted = True
            elif production != base_v:
                promoted = False
            else:
                promoted = None
            base_arms, cand_arms = ARMS[kind]
            base = repo.arm_samples(model, base_v, base_arms, row.created_at)
            cand = repo.arm_samples(model, cand_v, cand_arms, row.created_at)
            state, weight = row.state, row.weight
        if promoted is True:
            view = self._end(
                rollout_id, CONTROLLER, "promote", "promoted", {"production_version": cand_v}, now
            )
            return Outcome(rollout_id, "promoted", view.state, view.weight)
        if promoted is False:
            view = self._end(
                rollout_id,
                CONTROLLER,
                "abort",
                "aborted",
                {"reason": f"production moved to v{production} outside the rollout"},
                now,
            )
            return Outcome(rollout_id, "aborted", view.state, view.weight)
        if state == "paused":
            return Outcome(rollout_id, "paused", state, weight)
        result = analyse(base, cand, self.thresholds_of(rollout_id))
        if result.verdict == "fail":
            details = {"verdict": "fail", "analysis": result.as_dict(), "reason": result.reason()}
            view = self._end(rollout_id, CONTROLLER, "rollback", "failed", details, now, "failure")
            return Outcome(rollout_id, "rolled_back", view.state, view.weight, result)
        return self._move_on(rollout_id, result, cand.requests, now)

    def thresholds_of(self, rollout_id: str) -> Thresholds:
        from bastion.delivery.config import Thresholds

        with self.db.session() as session:
            row = DeliveryRepository(session).get(rollout_id)
            assert row is not None
            return Thresholds.model_validate(row.thresholds)

    def _move_on(
        self, rollout_id: str, result: Analysis, cand_requests: int, now: datetime
    ) -> Outcome:
        with self.db.session() as session:
            repo = DeliveryRepository(session)
            row = repo.get(rollout_id)
            assert row is not None
            previous = (row.last_analysis or {}).get("verdict")
            row.last_analysis = result.as_dict() | {"at": now.isoformat()}
            row.updated_at = now
            row.next_check_at = now + timedelta(seconds=self.config.controller_interval_s)
            analysis = result.as_dict()
            if result.verdict != previous:
                self._event(
                    CONTROLLER,
                    "deploy.analysis",
                    row.model,
                    row.candidate_version,
                    {"rollout_id": row.id, "step": row.step_index, "weight": row.weight} | analysis,
                )
                self._decide(repo, row, CONTROLLER, "analysis", result.verdict, analysis, now)
            if result.verdict == "hold":
                if row.state == "running":
                    row.state = "holding"
                return Outcome(rollout_id, "held", row.state, row.weight, result)
            if row.state == "holding":
                row.state = "running"
            if row.state == "passed":
                return Outcome(rollout_id, "waiting", row.state, row.weight, result)
            step_sample = cand_requests - row.step_base_count
            min_sample = int(row.thresholds.get("min_sample", 1))
            ready = now >= row.step_started_at + timedelta(seconds=row.interval_s)
            if not ready or step_sample < min_sample:
                return Outcome(rollout_id, "analysed", row.state, row.weight, result)
            nxt = row.step_index + 1
            last_reached = nxt >= len(row.steps) or (row.kind != "shadow" and row.steps[nxt] >= 100)
            details: dict[str, Any] = {"rollout_id": row.id, "from_weight": row.weight}
            if last_reached:
                row.state = "passed"
                details |= {
                    "needs": f"an approved promotion of v{row.candidate_version} to production "
                    f"(`bastion models request {row.model} {row.candidate_version} "
                    "--to production`, approved by someone else)"
                }
                self._event(
                    CONTROLLER,
                    "deploy.awaiting_approval",
                    row.model,
                    row.candidate_version,
                    details,
                )
                self._decide(repo, row, CONTROLLER, "awaiting_approval", "pass", details, now)
                return Outcome(rollout_id, "waiting", row.state, row.weight, result)
            row.step_index, row.weight = nxt, row.steps[nxt]
            row.step_started_at, row.step_base_count = now, cand_requests
            details |= {"step": nxt, "to_weight": row.weight}
            self._event(CONTROLLER, "deploy.step", row.model, row.candidate_version, details)
            self._decide(repo, row, CONTROLLER, "step", "pass", details, now)
            return Outcome(rollout_id, "advanced", row.state, row.weight, result)

    def due(self, now: datetime) -> list[str]:
        """Rollouts in progress whose next look is due (paused ones too: a promotion or
        an outside move still ends them)."""
        with self.db.session() as session:
            return [r.id for r in DeliveryRepository(session).active() if r.next_check_at <= now]

    def active_id(self, model: str) -> str:
        with self.db.session() as session:
            row = DeliveryRepository(session).active_for(model)
            if row is None:
                raise RolloutNotFound(f"{model} has no rollout in progress")
            return row.id

    # the lease -------------------------------------------------------------------------

    def take_lease(self, holder: str, now: datetime, lease_s: float) -> bool:
        with self.db.session() as session:
            return DeliveryRepository(session).take_lease(
                LEASE, holder, now, now + timedelta(seconds=lease_s)
            )

    def drop_lease(self, holder: str) -> None:
        with self.db.session() as session:
            DeliveryRepository(session).drop_lease(LEASE, holder)

    # records ---------------------------------------------------------------------------

    def _event(
        self,
        actor: str,
        action: str,
        model: str,
        version: int,
        details: dict[str, Any],
        outcome: str = "success",
    ) -> None:
        self.ledger.append(
            EventIn(
                actor=actor,
                action=action,
                resource=f"model:{model}/{version}",
                outcome=outcome,
                details=details,
            )
        )

    @staticmethod
    def _decide(
        repo: DeliveryRepository,
        row: RolloutRow,
        actor: str,
        action: str,
        verdict: str | None,
        details: dict[str, Any],
        now: datetime,
    ) -> None:
        repo.add_decision(
            RolloutDecisionRow(
                rollout_id=row.id,
                at=now,
                actor=actor,
                action=action,
                step_index=row.step_index,
                weight=row.weight,
                state=row.state,
                verdict=verdict,
                details=details,
            )
        )
