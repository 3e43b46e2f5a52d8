"""Errors raised by :mod:`bastion.registry`.

BastionError (bastion.errors)
├── NotFound
│   ├── ModelNotFound            model_not_found             404
│   ├── VersionNotFound          model_version_not_found     404
│   ├── RunNotFound              mlflow_run_not_found        404
│   └── RequestNotFound          promotion_request_not_found 404
├── InvalidInput
│   ├── InvalidModelName         invalid_model_name          400
│   ├── ArtifactNotFound         model_artifact_not_found    400
│   ├── ArtifactIncomplete       model_artifact_incomplete   400
│   ├── InvalidEvidence          invalid_evidence            400
│   ├── InvalidCard              invalid_card                400
│   ├── InvalidTransition        invalid_stage_transition    400
│   ├── JustificationRequired    justification_required      400
│   └── InvalidSemver            invalid_semver              400
├── Forbidden
│   ├── SelfApproval             self_approval               403
│   └── OverrideNotAllowed       override_not_allowed        403
├── Conflict
│   ├── GatesFailed              gates_failed                409
│   ├── RequestNotPending        request_not_pending         409
│   ├── PromotionPending         promotion_pending           409
│   ├── RunFailed                mlflow_run_failed           409
│   ├── NoRollbackTarget         no_rollback_target          409
│   ├── RegistrationInProgress   registration_in_progress    409
│   ├── ClaimLost                claim_lost                  409
│   ├── SemverTaken              semver_taken                409
│   └── SemverNotIncreasing      semver_not_increasing       409
└── Unavailable
    └── MlflowUnavailable        mlflow_unavailable          503
"""

from __future__ import annotations

from bastion.errors import Conflict, Forbidden, InvalidInput, NotFound, Unavailable


class ModelNotFound(NotFound):
    code = "model_not_found"


class VersionNotFound(NotFound):
    code = "model_version_not_found"


class RunNotFound(NotFound):
    code = "mlflow_run_not_found"


class RequestNotFound(NotFound):
    code = "promotion_request_not_found"


class InvalidModelName(InvalidInput):
    code = "invalid_model_name"


class ArtifactNotFound(InvalidInput):
    code = "model_artifact_not_found"


class ArtifactIncomplete(InvalidInput):
    code = "model_artifact_incomplete"


class InvalidEvidence(InvalidInput):
    code = "invalid_evidence"


class InvalidCard(InvalidInput):
    code = "invalid_card"


class InvalidTransition(InvalidInput):
    code = "invalid_stage_transition"


class JustificationRequired(InvalidInput):
    code = "justification_required"


class InvalidSemver(InvalidInput):
    code = "invalid_semver"


class SelfApproval(Forbidden):
    code = "self_approval"


class OverrideNotAllowed(Forbidden):
    code = "override_not_allowed"


class GatesFailed(Conflict):
    code = "gates_failed"


class RequestNotPending(Conflict):
    code = "request_not_pending"


class PromotionPending(Conflict):
    code = "promotion_pending"


class RunFailed(Conflict):
    code = "mlflow_run_failed"


class NoRollbackTarget(Conflict):
    code = "no_rollback_target"


class RegistrationInProgress(Conflict):
    code = "registration_in_progress"


class ClaimLost(Conflict):
    """An approval or registration ran past ``registry.recover_after_s`` and another
    process settled it as one that had died."""

    code = "claim_lost"


class SemverTaken(Conflict):
    code = "semver_taken"


class SemverNotIncreasing(Conflict):
    code = "semver_not_increasing"


class MlflowUnavailable(Unavailable):
    code = "mlflow_unavailable"
