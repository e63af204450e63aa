"""The Inkbox signature scheme: known vectors, tampering, time window, SDK interop."""

from __future__ import annotations

import hashlib
import hmac
import time

import pytest
from inkbox.signing_keys import verify_webhook as sdk_verify_webhook

from trunkline.webhooks import new_signing_key, sign_headers, verify_webhook

KEY = "whsec_" + "ab" * 32
BODY = b'{"id":"evt_1","event_type":"call.ended"}'


def test_signature_is_the_documented_hmac() -> None:
    headers = sign_headers(KEY, "evt_1", BODY, 1_700_000_000)
    expected = hmac.new(
        ("ab" * 32).encode(), b"evt_1.1700000000." + BODY, hashlib.sha256
    ).hexdigest()
    assert headers == {
        "X-Inkbox-Request-ID": "evt_1",
        "X-Inkbox-Timestamp": "1700000000",
        "X-Inkbox-Signature": f"sha256={expected}",
    }


def test_verify_accepts_fresh_signatures_in_any_header_case() -> None:
    now = int(time.time())
    headers = {k.lower(): v for k, v in sign_headers(KEY, "evt_1", BODY, now).items()}
    assert verify_webhook(headers, BODY, KEY)
    assert verify_webhook(headers, BODY.decode(), KEY.removeprefix("whsec_"))


def test_the_inkbox_sdk_verifies_trunkline_signatures() -> None:
    headers = sign_headers(KEY, "evt_2", BODY, int(time.time()))
    assert sdk_verify_webhook(payload=BODY, headers=headers, secret=KEY)
    assert not sdk_verify_webhook(payload=BODY + b" ", headers=headers, secret=KEY)


def _flip_last(signature: str) -> str:
    """The same signature with its last hex digit changed (never to itself)."""
    return signature[:-1] + ("1" if signature.endswith("0") else "0")


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h, b: (h, b + b"x"),
        lambda h, b: ({**h, "X-Inkbox-Request-ID": "evt_other"}, b),
        lambda h, b: ({**h, "X-Inkbox-Timestamp": str(int(h["X-Inkbox-Timestamp"]) + 1)}, b),
        lambda h, b: ({**h, "X-Inkbox-Signature": _flip_last(h["X-Inkbox-Signature"])}, b),
        lambda h, b: ({k: v for k, v in h.items() if k != "X-Inkbox-Signature"}, b),
        lambda h, b: ({**h, "X-Inkbox-Signature": "sha1=abc"}, b),
        lambda h, b: ({**h, "X-Inkbox-Timestamp": "soon"}, b),
    ],
)
def test_tampering_is_detected(tamper) -> None:  # type: ignore[no-untyped-def]
    headers, body = tamper(sign_headers(KEY, "evt_1", BODY, int(time.time())), BODY)
    assert not verify_webhook(headers, body, KEY)


def test_wrong_key_and_stale_or_future_timestamps_are_refused() -> None:
    now = 1_800_000_000
    assert not verify_webhook(sign_headers(new_signing_key(), "e", BODY, now), BODY, KEY, now=now)
    assert verify_webhook(sign_headers(KEY, "e", BODY, now - 299), BODY, KEY, now=now)
    assert not verify_webhook(sign_headers(KEY, "e", BODY, now - 301), BODY, KEY, now=now)
    assert not verify_webhook(sign_headers(KEY, "e", BODY, now + 301), BODY, KEY, now=now)
    assert verify_webhook(sign_headers(KEY, "e", BODY, now - 900), BODY, KEY, 1000, now=now)


def test_new_keys_are_distinct_and_prefixed() -> None:
    keys = {new_signing_key() for _ in range(50)}
    assert len(keys) == 50 and all(k.startswith("whsec_") and len(k) == 70 for k in keys)
