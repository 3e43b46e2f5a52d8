"""Where a call came from, as the ledger may hold it: a keyed digest, never the address.

The source of an authenticated call is its client address (``request.client.host``;
behind a proxy, start uvicorn with ``--forwarded-allow-ips`` so it is the caller's). The
policy's ``evidence.access`` section says how much of it counts: by default the network
(``/24`` for IPv4, ``/48`` for IPv6), so a caller whose address changes inside its
network keeps one source, and the ledger learns less about them. The network is
recorded as a keyed digest (:meth:`bastion.audit.events.ChainKey.digest_of`, a key that
is not in the database), so the ledger can tell one source from another without
holding an address; ``source_prefix_v4: 32`` / ``source_prefix_v6: 128`` digest the
whole address, ``record_source: false`` records nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from bastion.evidence.config import AccessChecks

#: Digests of sources seen lately (a server sees few networks); bounded.
_CACHE_MAX = 10_000


class SourceDigester:
    """``digest(host)``: the keyed digest of a client address's network, or None."""

    def __init__(self, digest_of: Callable[[str], str]) -> None:
        self._digest_of = digest_of
        self._cache: dict[tuple[str, int, int], str | None] = {}

    def digest(self, host: str | None, cfg: AccessChecks) -> str | None:
        if not cfg.record_source or not host:
            return None
        key = (host, cfg.source_prefix_v4, cfg.source_prefix_v6)
        if key in self._cache:
            return self._cache[key]
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            found = None  # not an address (a test client, a unix socket): nothing to record
        else:
            if address.version == 6 and address.ipv4_mapped is not None:
                address = address.ipv4_mapped
            prefix = cfg.source_prefix_v4 if address.version == 4 else cfg.source_prefix_v6
            network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
            found = "src:" + self._digest_of(f"bastion-source:{network}")[:16]
        if len(self._cache) < _CACHE_MAX:
            self._cache[key] = found
        return found
