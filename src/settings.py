"""Settings: every JOBCAST_* environment variable, with its default, in one Struct."""

import re
from collections.abc import Mapping
from typing import Annotated

import msgspec
from msgspec import Meta

PREFIX = "JOBCAST_"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

ORIGIN_PATTERN = r"https?://[^/\s,]+"
Positive = Annotated[float, Meta(gt=0)]
Count = Annotated[int, Meta(ge=1)]


# After a worker's heartbeat expires: a reconciler pass, a fresh job, a worker polling for it.
RECOVERY_MARGIN_S = 3.0


class SettingsError(ValueError):
    """An environment variable could not be read as its setting."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Read once at start-up and passed in; nothing reads the environment at import."""

    auth: bool = True
    redis_url: str | None = None
    redis_server: str | None = None
    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=0, le=65535)] = 8000
    data_dir: str = ".jobcast"
    log_level: Annotated[str, Meta(pattern="(?i)^(debug|info|warning|error|critical)$")] = "INFO"
    max_body_bytes: Count = 1024 * 1024
    progress_hz: Positive = 10.0
    cancel_grace_s: Positive = 5.0
    idempotency_ttl_s: Count = 24 * 3600
    worker_concurrency: Count = 10
    poll_s: Positive = 0.2
    heartbeat_s: Positive = 1.0
    heartbeat_ttl_s: Positive = 5.0
    recovery_s: Positive = 10.0
    shutdown_grace_s: Annotated[int, Meta(ge=0)] = 8
    retention_s: Count = 7 * 24 * 3600
    history_max: Count = 1000
    retry_backoff_s: Annotated[float, Meta(ge=0)] = 1.0
    retry_backoff_max_s: Annotated[float, Meta(ge=0)] = 60.0
    ws_buffer: Count = 1000
    ws_max_subscriptions: Count = 1000
    ws_max_frame_bytes: Count = 64 * 1024
    ws_ping_s: Positive = 20.0
    ws_ping_timeout_s: Positive = 20.0
    ws_max_connections: Count = 100
    ws_compression: bool = False
    allowed_origins: str = ""
    submit_rate: Count = 100
    max_parameters_bytes: Count = 256 * 1024
    max_parameters_depth: Count = 32

    def __post_init__(self) -> None:
        for origin in self.origins():
            if not re.fullmatch(ORIGIN_PATTERN, origin):
                raise ValueError(
                    f"JOBCAST_ALLOWED_ORIGINS: {origin!r} is not an origin like https://app.example.com"
                )
        if self.heartbeat_s >= self.heartbeat_ttl_s:
            raise ValueError("JOBCAST_HEARTBEAT_S must be shorter than JOBCAST_HEARTBEAT_TTL_S")
        if self.heartbeat_ttl_s + RECOVERY_MARGIN_S > self.recovery_s:
            raise ValueError(
                f"JOBCAST_RECOVERY_S must be at least JOBCAST_HEARTBEAT_TTL_S + {RECOVERY_MARGIN_S:g}: "
                "a lost worker is noticed once its heartbeat expires, then its tasks need time to restart"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> "Settings":
        """Build settings from JOBCAST_* variables; unknown JOBCAST_* names are an error."""
        fields = set(cls.__struct_fields__)
        values: dict[str, str] = {}
        for name, value in environ.items():
            if not name.startswith(PREFIX):
                continue
            field = name[len(PREFIX) :].lower()
            if field not in fields:
                raise SettingsError(f"{name} is not a jobcast setting")
            values[field] = value
        try:
            return msgspec.convert(values, cls, strict=False)
        except msgspec.ValidationError as error:
            message, _, where = str(error).partition(" - at `$.")
            name = PREFIX + where.rstrip("`").upper() if where else f"a {PREFIX}* variable"
            raise SettingsError(f"{name}: {message}") from error

    def origins(self) -> frozenset[str]:
        """The browser origins allowed besides the API's own (JOBCAST_ALLOWED_ORIGINS)."""
        listed = (origin.strip().rstrip("/") for origin in self.allowed_origins.split(","))
        return frozenset(origin for origin in listed if origin)

    def redis_url_or_default(self) -> str:
        """The Redis to use when none was started for us."""
        return self.redis_url or DEFAULT_REDIS_URL
