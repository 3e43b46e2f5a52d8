"""Semantic version labels on model versions (``1.2.0``, ``2.0.0-rc.1``).

MLflow numbers a model's versions 1, 2, 3…; a release process speaks of ``1.2.0``. A
version may carry one label, given at registration and never changed: valid under
Semantic Versioning 2.0.0 (parsed by the ``semver`` library), unique per model, and
higher than every label the model's earlier versions carry, so that the label order
and the registration order agree and "latest" means one thing. Build metadata
(``+build.5``) is kept but, as SemVer says, does not count in the order, so
``1.2.0+a`` after ``1.2.0`` is refused as not higher.
"""

from __future__ import annotations

from collections.abc import Iterable

import semver

from bastion.registry.errors import InvalidSemver, SemverNotIncreasing, SemverTaken

MAX_LENGTH = 100


def parse_semver(text: str) -> semver.Version:
    """A label as a :class:`semver.Version`; :class:`InvalidSemver` with advice."""
    cleaned = text.strip()
    if cleaned[:1] in ("v", "V") and cleaned[1:2].isdigit():
        hint = f" (without the leading {cleaned[0]!r}: {cleaned[1:]!r})"
    else:
        hint = ""
    try:
        if len(cleaned) > MAX_LENGTH:
            raise ValueError
        return semver.Version.parse(cleaned)
    except (ValueError, TypeError):
        raise InvalidSemver(
            f"{text!r} is not a semantic version{hint}: write MAJOR.MINOR.PATCH, such as "
            "1.2.0, optionally with a pre-release (1.2.0-rc.1); see semver.org"
        ) from None


def check_new_label(name: str, label: str, existing: Iterable[tuple[int, str | None]]) -> str:
    """The label, normalised, once it is valid, unused and above every earlier label of
    ``name``; ``existing`` holds (version, label) of the model's versions."""
    new = parse_semver(label)
    highest: tuple[semver.Version, int] | None = None
    for version, other in existing:
        if other is None:
            continue
        parsed = semver.Version.parse(other)
        if parsed == new and parsed.build == new.build:
            raise SemverTaken(
                f"{name} {other} is already version {version}: a label names one version"
            )
        if highest is None or parsed.compare(highest[0]) > 0:
            highest = (parsed, version)
    if highest is not None and new.compare(highest[0]) <= 0:
        raise SemverNotIncreasing(
            f"{name} {new} is not higher than {highest[0]} (version {highest[1]}): a new "
            "version's label must be the highest so far, so that label order and "
            "registration order agree"
        )
    return str(new)
