"""Password hashing (argon2), API token digests and derived webhook secrets."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
TOKEN_PREFIX = "lf_"
# A constant hash to verify against when the user does not exist, so a login for an
# unknown email costs the same time as one for a known email.
_DUMMY_HASH = _hasher.hash("leadflow-dummy-password")


def hash_password(password: str) -> str:
    """Argon2id hash of ``password``."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; constant-ish time for missing users."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def new_api_token() -> str:
    """A fresh random bearer token (shown once, never stored)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """SHA-256 of a token. Tokens carry 256 random bits, so a slow hash adds nothing."""
    return hashlib.sha256(token.encode()).hexdigest()


def form_secret(app_secret: str, form_key: str, nonce: str) -> str:
    """The HMAC signing secret of a web form, derived rather than stored."""
    msg = f"form:{form_key}:{nonce}".encode()
    return hmac.new(app_secret.encode(), msg, hashlib.sha256).hexdigest()


def sign_body(secret: str, body: bytes) -> str:
    """The signature header value a form sender must send: ``sha256=<hex>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """Constant-time check of a ``sha256=<hex>`` signature header."""
    if not header:
        return False
    return hmac.compare_digest(sign_body(secret, body), header.strip())
