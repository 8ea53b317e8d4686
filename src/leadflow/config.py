"""Settings: the only place that reads the environment (prefix ``LEADFLOW_``)."""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# Mail security gateways and image proxies that fetch links and pixels on the recipient's
# behalf (Microsoft Defender/EOP, Mimecast, Proofpoint, Barracuda, Google's image proxy).
# A starting list, meant to be extended per deployment (LEADFLOW_SCANNER_NETWORKS, JSON).
DEFAULT_SCANNER_NETWORKS: tuple[str, ...] = (
    "40.92.0.0/15", "40.107.0.0/16", "52.100.0.0/14", "104.47.0.0/17",  # Microsoft EOP / ATP
    "205.139.110.0/24", "207.211.30.0/24", "185.58.84.0/22",  # Mimecast
    "148.163.128.0/19", "67.231.144.0/20",  # Proofpoint
    "209.222.80.0/21", "64.235.144.0/20",  # Barracuda
    "66.249.80.0/20",  # Google image proxy
)


class Settings(BaseSettings):
    """Process-wide configuration; see docs/configuration.md for every key."""

    model_config = SettingsConfigDict(env_prefix="LEADFLOW_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///./leadflow.db"
    # Signs session cookies and derives form-webhook secrets. When unset, a random key is
    # created once in ``secret_key_file`` so restarts keep sessions valid.
    secret_key: str = ""
    secret_key_file: Path = Path(".leadflow-secret")
    default_region: str = "CN"
    default_timezone: str = "Asia/Shanghai"
    default_locale: str = "en"
    session_max_age_s: int = 14 * 24 * 3600
    https_only_cookies: bool = False
    # Dedup: a candidate pair whose similarity reaches this is merged automatically.
    match_threshold: float = Field(default=0.88, ge=0.5, le=1.0)
    import_chunk_size: int = Field(default=5000, ge=100, le=100_000)
    upload_dir: Path = Path("./var/uploads")
    # PostgreSQL connections per process: size the pool to the threads that write at once
    # (request handlers, in-process workers); waiting for a connection times out after 30 s.
    db_pool_size: int = Field(default=20, ge=1, le=500)
    db_max_overflow: int = Field(default=20, ge=0, le=500)
    # Messaging (see docs/messaging.md). Email goes over SMTP, or to the built-in outbox
    # (stored and shown at /outbox, never sent) when ``email_provider`` is "outbox".
    email_provider: str = Field(default="smtp", pattern="^(smtp|outbox)$")
    smtp_host: str = "localhost"
    smtp_port: int = Field(default=1025, ge=1, le=65535)
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    smtp_timeout_s: float = Field(default=30.0, gt=0)
    mail_from: str = "leadflow <noreply@leadflow.local>"
    # Where leads' mail clients reach the tracking and unsubscribe endpoints.
    public_base_url: str = "http://127.0.0.1:8000"
    # SMS and WeChat go to the outbox unless a webhook URL is set; bodies are signed with
    # ``webhook_secret`` (HMAC-SHA256), derived from the secret key when empty.
    sms_webhook_url: str = ""
    wechat_webhook_url: str = ""
    webhook_secret: str = ""
    # No message reaches a lead in their local night (their time zone, else the default).
    quiet_hours_start: str = Field(default="21:00", pattern=r"^\d{1,2}:\d{2}$")
    quiet_hours_end: str = Field(default="08:00", pattern=r"^\d{1,2}:\d{2}$")
    # Machine traffic: link scanners' and image proxies' networks, a click this soon after
    # delivery, several links clicked within this many seconds.
    scanner_networks: list[str] = Field(default_factory=lambda: list(DEFAULT_SCANNER_NETWORKS))
    machine_after_delivery_s: float = Field(default=10.0, ge=0)
    machine_burst_s: float = Field(default=2.0, ge=0)
    # Delivery: attempts before a message is given up as failed.
    message_max_attempts: int = Field(default=5, ge=1, le=50)

    def resolved_secret_key(self) -> str:
        """Return the configured key, or a persistent random one for the embedded default."""
        if self.secret_key:
            return self.secret_key
        path = self.secret_key_file
        if path.exists():
            return path.read_text().strip()
        key = secrets.token_urlsafe(48)
        path.write_text(key)
        path.chmod(0o600)
        return key


@lru_cache
def get_settings() -> Settings:
    """Return the cached settings object."""
    return Settings()
