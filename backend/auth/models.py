"""Accounts, roles, refresh-token families, login throttling and operator activation codes."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Final

from sqlalchemy import Column, DateTime
from sqlmodel import Field, SQLModel

from backend.db import enum_type, utcnow


class Role(StrEnum):
    """Who an account is; what it may do follows from this and its jurisdiction or operator."""

    admin = "admin"
    staff = "staff"  # 市场监管部门工作人员, bound to a jurisdiction
    auditor = "auditor"  # 审计员: reads what staff of its jurisdiction read, never writes
    supervisor = "supervisor"  # 计量诚信监督员 (Art. 17), appointed for a jurisdiction with a term
    operator = "operator"  # 经营者 user, bound to one operator
    institution = "institution"  # 法定计量技术机构 (Art. 15)
    association = "association"  # 行业组织 (Art. 16)
    department = "department"  # partner department, read-only (Art. 21)
    consumer = "consumer"  # registered consumer
    consumer_device = "consumer_device"  # the app's anonymous device credential


#: Roles bound to a jurisdiction that read what its bureau reads: staff act on it, auditors only read.
BUREAU_READERS: Final = frozenset({Role.staff, Role.auditor})
#: Roles whose token only reads: any other method is refused with 403 before the route runs.
READ_ONLY_ROLES: Final = frozenset({Role.auditor})
#: What a read-only account may still do: the requests that read, and ending its own sign-in.
READ_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})


class Account(SQLModel, table=True):
    """A person, organisation or device that signs in."""

    __tablename__ = "account"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True)
    password_hash: str = Field(max_length=255)
    role: Role = Field(sa_type=enum_type(Role), index=True)
    display_name: str = Field(default="", max_length=100)
    jurisdiction_code: str | None = Field(
        default=None, foreign_key="jurisdiction.code", index=True, max_length=6
    )
    operator_id: int | None = Field(default=None, foreign_key="operator.id", index=True)
    organisation: str | None = Field(default=None, max_length=120)
    locale: str = Field(default="zh-CN", max_length=8)
    timezone: str = Field(default="Asia/Shanghai", max_length=40)
    is_active: bool = True
    term_starts_on: date | None = None
    term_ends_on: date | None = None
    appointed_by_id: int | None = Field(default=None, foreign_key="account.id")
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class RefreshToken(SQLModel, table=True):
    """One issued refresh token; tokens rotated from one login form a family revoked together on reuse."""

    __tablename__ = "refresh_token"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    family_id: str = Field(max_length=32, index=True)
    issued_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    used_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class LoginThrottle(SQLModel, table=True):
    """Failed sign-ins per (username, address) digest (known usernames or not), for growing delays that do not
    reveal which exist and do not lock the owner out from an address that has not failed."""

    __tablename__ = "login_throttle"

    key: str = Field(primary_key=True, max_length=64)
    failures: int = 0
    blocked_until: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class ActivationCode(SQLModel, table=True):
    """A one-time code staff issue so an operator's user can create its account."""

    __tablename__ = "activation_code"

    id: int | None = Field(default=None, primary_key=True)
    code_hash: str = Field(max_length=64, unique=True)
    operator_id: int = Field(foreign_key="operator.id", index=True)
    issued_by_id: int = Field(foreign_key="account.id")
    issued_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    used_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    account_id: int | None = Field(default=None, foreign_key="account.id")
