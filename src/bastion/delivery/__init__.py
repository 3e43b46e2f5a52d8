"""Progressive delivery: canary, A/B and shadow rollouts judged by always-valid
statistics, rolled back on their own, promoted through the registry's approval.

Modules: :mod:`~bastion.delivery.statistics` (the tests),
:mod:`~bastion.delivery.analysis` (one comparison of the arms),
:mod:`~bastion.delivery.service` (rollout state and decisions),
:mod:`~bastion.delivery.controller` (the lease and the loop),
:mod:`~bastion.delivery.traffic` (serving's traffic plan). Nothing is imported here,
so the policy schema can import :mod:`~bastion.delivery.config` alone.
"""
