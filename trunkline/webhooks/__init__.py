"""Webhook signatures (and ``verify_webhook`` for agent authors) and outbound URL safety."""

from trunkline.webhooks.signing import new_signing_key, sign_headers, verify_webhook

__all__ = ["new_signing_key", "sign_headers", "verify_webhook"]
