"""Settings: the only place that reads the environment (prefix ``LEADFLOW_``)."""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
