"""Building the gateway from the runtime's settings (keys, counters)."""

from __future__ import annotations

from bastion.gateway.counters import create_counters
from bastion.gateway.service import Gateway, derive_key
from bastion.privacy import PrivacyKeys
from bastion.runtime import Runtime, secret_key


def privacy_keys(runtime: Runtime) -> PrivacyKeys:
    settings = runtime.settings
    root = secret_key(settings)
    hmac_key = (
        bytes.fromhex(settings.privacy_hmac_key.get_secret_value())
        if settings.privacy_hmac_key
        else derive_key(root, "bastion/privacy/hmac")
    )
    enc_key = (
        bytes.fromhex(settings.privacy_encryption_key.get_secret_value())
        if settings.privacy_encryption_key
        else derive_key(root, "bastion/privacy/aes")
    )
    return PrivacyKeys(hmac_key=hmac_key, encryption_key=enc_key)


def build_gateway(runtime: Runtime) -> Gateway:
    settings = runtime.settings
    counters = create_counters(
        settings.redis_url,
        key_prefix=settings.redis_prefix,
        socket_timeout_s=settings.counters_timeout_s,
    )
    return Gateway(runtime, counters, privacy_keys=privacy_keys(runtime))
