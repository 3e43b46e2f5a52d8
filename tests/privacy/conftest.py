from __future__ import annotations

import pytest

from bastion.privacy import KNOWN_ENTITIES, Analyzer


@pytest.fixture(scope="session")
def analyzer() -> Analyzer:
    """Every built-in type, the URL recognizer included (loaded once: name lists)."""
    a = Analyzer(KNOWN_ENTITIES)
    a.warm()
    return a
