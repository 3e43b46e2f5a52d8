"""Errors of progressive delivery.

::

    BastionError
    ├── InvalidInput
    │   ├── InvalidSteps             invalid_steps               400
    │   └── InvalidInterval          invalid_interval            400
    ├── NotFound
    │   └── RolloutNotFound          rollout_not_found           404
    └── Conflict
        ├── RolloutActive            rollout_active              409
        ├── RolloutFinished          rollout_finished            409
        ├── NoBaseline               no_baseline                 409
        └── NotACandidate            not_a_candidate             409
"""

from __future__ import annotations

from bastion.errors import Conflict, InvalidInput, NotFound


class InvalidSteps(InvalidInput):
    code = "invalid_steps"


class InvalidInterval(InvalidInput):
    code = "invalid_interval"


class RolloutNotFound(NotFound):
    code = "rollout_not_found"


class RolloutActive(Conflict):
    code = "rollout_active"


class RolloutFinished(Conflict):
    code = "rollout_finished"


class NoBaseline(Conflict):
    code = "no_baseline"


class NotACandidate(Conflict):
    code = "not_a_candidate"
