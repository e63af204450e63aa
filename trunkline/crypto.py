"""Secrets at rest: API token hashes, the secret box for stored credentials, URL signatures.

- API tokens are 256-bit random strings; only an HMAC-SHA-256 digest of a token
  is stored, so a database leak does not reveal usable tokens.
- Signing keys and trunk passwords are sealed with AES-256-GCM under a key
  derived from ``TRUNKLINE_SECRET_KEY`` (or a key generated into the data
  directory on first start).
- Presigned URLs carry an expiry and an HMAC over path and expiry, checked in
  constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from trunkline.data_dir import private_directory

TOKEN_PREFIX = "tl_"
SECRET_FILE_NAME = "secret.key"
_SEALED_PREFIX = "v1:"
_NONCE_BYTES = 12


class MasterKeyError(ValueError):
    """The data directory's ``secret.key`` is not a key: damaged or written by hand."""


class InvalidSecret(Exception):
    """A sealed value that does not open with this key (tampered, or another key)."""


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


TOKEN_DISPLAY_LENGTH = len(TOKEN_PREFIX) + 8


def token_display_prefix(token: str) -> str:
    """The first characters of a token: enough to recognise it in a list, far too few to use it."""
    return token[:TOKEN_DISPLAY_LENGTH]


def hash_token(token: str) -> str:
    """The stored form of an API token (tokens are random, so no per-token salt is needed)."""
    return hmac.new(b"trunkline api token", token.encode(), hashlib.sha256).hexdigest()


def derive_key(master: bytes, purpose: str) -> bytes:
    """A 32-byte key for one purpose, so one master secret never signs two kinds of thing."""
    return hmac.new(master, purpose.encode(), hashlib.sha256).digest()


def load_master_key(secret_key: str, data_dir: Path) -> bytes:
    """The configured secret, or the one generated into the data directory on first use."""
    if secret_key:
        return hashlib.sha256(secret_key.encode()).digest()
    path = data_dir / SECRET_FILE_NAME
    try:
        return _read_key_file(path)
    except FileNotFoundError:
        pass
    private_directory(data_dir)
    generated = secrets.token_bytes(32)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(generated.hex())
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.link(temporary, path)  # fails if another process created it first
    except FileExistsError:
        return _read_key_file(path)
    finally:
        temporary.unlink()
    return generated


def _read_key_file(path: Path) -> bytes:
    text = path.read_text(errors="replace").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise MasterKeyError(
            f"{path} does not hold a key (64 hex digits): restore it from a backup, or set"
            " TRUNKLINE_SECRET_KEY to the secret it was replaced by"
        )
    return key


class SecretBox:
    """Seals short secrets for storage: ``v1:`` + base64(nonce || ciphertext || tag)."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(derive_key(key, "secret box"))

    def encrypt(self, plaintext: str) -> str:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), None)
        return _SEALED_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()

    def decrypt(self, sealed: str) -> str:
        if not sealed.startswith(_SEALED_PREFIX):
            raise InvalidSecret("unknown sealed-value format")
        try:
            raw = base64.urlsafe_b64decode(sealed[len(_SEALED_PREFIX) :])
            return self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], None).decode()
        except (InvalidTag, ValueError) as exc:
            raise InvalidSecret("sealed value does not open with this key") from exc


class UrlSigner:
    """Signs ``path`` + expiry into query parameters and checks them in constant time."""

    def __init__(self, key: bytes) -> None:
        self._key = derive_key(key, "presigned url")

    def _signature(self, path: str, expires: int) -> str:
        message = f"{path}\n{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def sign(self, path: str, expires: int) -> dict[str, str]:
        return {"expires": str(expires), "signature": self._signature(path, expires)}

    def verify(self, path: str, expires: str, signature: str, now: float) -> bool:
        try:
            expires_at = int(expires)
        except ValueError:
            return False
        expected = self._signature(path, expires_at)
        return hmac.compare_digest(expected, signature) and now <= expires_at
