"""Password hashing (argon2id), password policy, JWT access tokens and opaque refresh tokens."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from backend.config import get_settings
from backend.db import utcnow
from backend.errors import AppError

ALGORITHM = "HS256"


@lru_cache
def _hasher() -> PasswordHasher:
    # argon2id with the library's RFC 9106 "low memory" profile; tests lower the cost through settings.
    s = get_settings()
    return PasswordHasher(time_cost=s.argon2_time_cost, memory_cost=s.argon2_memory_kib, parallelism=1)


def hash_password(password: str) -> str:
    """An argon2id hash of ``password``."""
    return _hasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches; never raises on a malformed hash."""
    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


#: A real hash to verify against when the username is unknown, so timing does not reveal which exist.
@lru_cache
def dummy_hash() -> str:
    """A fixed hash for constant-time failure on unknown usernames."""
    return hash_password(secrets.token_urlsafe(16))


def check_password_policy(password: str, username: str) -> None:
    """Refuse weak passwords: at least 10 characters, letters and digits, not the username."""
    problems: list[str] = []
    if len(password) < 10:
        problems.append("too_short")
    if not any(c.isalpha() for c in password) or not any(c.isdigit() for c in password):
        problems.append("needs_letters_and_digits")
    if username and username.lower() in password.lower():
        problems.append("contains_username")
    if len(password) > 128:
        problems.append("too_long")
    if problems:
        raise AppError(
            422,
            "weak_password",
            "密码不符合要求：至少 10 位，须同时包含字母和数字，且不得包含用户名",
            "password too weak: at least 10 characters, letters and digits, not containing the username",
            {"problems": problems},
        )


@dataclass(frozen=True)
class AccessClaims:
    """What a valid access token says about its bearer."""

    account_id: int
    role: str
    jurisdiction_code: str | None
    operator_id: int | None


def create_access_token(claims: AccessClaims, now: datetime | None = None) -> str:
    """A short-lived signed JWT."""
    s = get_settings()
    issued = now or utcnow()
    payload = {
        "sub": str(claims.account_id),
        "role": claims.role,
        "jur": claims.jurisdiction_code,
        "op": claims.operator_id,
        "iat": int(issued.timestamp()),
        "exp": int((issued + timedelta(minutes=s.access_token_minutes)).timestamp()),
        "typ": "access",
    }
    return jwt.encode(payload, s.secret_key, algorithm=ALGORITHM)


def decode_access_token(token: str) -> AccessClaims:
    """Validate signature, expiry and type; raise a 401 AppError otherwise."""
    try:
        payload = jwt.decode(
            token, get_settings().secret_key, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]}
        )
    except jwt.ExpiredSignatureError as exc:
        raise unauthorized("token_expired", "登录已过期，请重新登录", "access token expired") from exc
    except jwt.PyJWTError as exc:
        raise unauthorized("invalid_token", "访问令牌无效", "invalid access token") from exc
    if payload.get("typ") != "access" or not str(payload.get("sub", "")).isdigit():
        raise unauthorized("invalid_token", "访问令牌无效", "invalid access token")
    op = payload.get("op")
    return AccessClaims(
        int(payload["sub"]), str(payload.get("role")), payload.get("jur"), int(op) if op else None
    )


def unauthorized(code: str, zh: str, en: str) -> AppError:
    """A 401 with the bearer challenge."""
    return AppError(401, code, zh, en, headers={"WWW-Authenticate": "Bearer"})


def new_opaque_token() -> tuple[str, str]:
    """A random token for the client and the SHA-256 we store (a leaked table yields no usable token)."""
    token = secrets.token_urlsafe(32)
    return token, token_digest(token)


def token_digest(token: str) -> str:
    """The stored form of an opaque token."""
    return hashlib.sha256(token.encode()).hexdigest()
