"""Usage rollups: gateway calls counted per day, team, model and outcome, for the
dashboard's overview, ``GET /api/usage`` and ``bastion usage``.

    UsageError (InvalidInput, 400)
    ├── BadPeriod        invalid_period   (end before start, unreadable dates)
    └── PeriodTooLong    period_too_long  (more days than one request may cover)
"""

from bastion.usage.refresh import Progress, Refresher

__all__ = ["Progress", "Refresher"]
