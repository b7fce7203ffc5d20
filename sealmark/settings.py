"""Settings: one frozen object, read once at startup from ``SEALMARK_*`` variables and an
optional TOML file (``SEALMARK_CONFIG=path.toml``; environment variables win over the file).

Nothing else in Sealmark reads ``os.environ`` for configuration. A bad value fails at startup
with an error naming the variable, e.g. ``SEALMARK_GRPC_PORT: Input should be a valid integer``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sealmark.errors import InvalidArgument
from sealmark.storage.redis_nodes import parse_nodes

SERVICES = ("issuer", "aggregator", "verifier", "audit")


class Settings(BaseSettings):
    """Every knob Sealmark has. See the configuration table in README.md."""

    model_config = SettingsConfigDict(env_prefix="SEALMARK_", frozen=True, extra="forbid")

    database_url: str | None = Field(
        default=None, description="PostgreSQL DSN; unset = start the embedded server"
    )
    redis_url: str | None = Field(
        default=None, description="Redis URL; unset = start the embedded server"
    )
    redis_cluster_nodes: str | None = Field(
        default=None,
        validate_default=True,
        description="Redis Cluster instead of one server: seed nodes, host:port,host:port"
        " (instead of SEALMARK_REDIS_URL)",
    )
    data_dir: Path = Field(
        default=Path(".sealmark"), description="where the embedded servers keep their data"
    )
    grpc_host: str = Field(default="127.0.0.1", description="gRPC listen address")
    grpc_port: int = Field(default=50051, ge=0, le=65535, description="gRPC port; 0 = any free")
    tls_cert_file: Path | None = Field(
        default=None,
        description="gRPC over TLS: the server's certificate chain (PEM, leaf first);"
        " re-read when the file changes or on SIGHUP",
    )
    tls_key_file: Path | None = Field(
        default=None,
        validate_default=True,
        description="the private key of SEALMARK_TLS_CERT_FILE (unencrypted PEM; keep it mode 600)",
    )
    tls_client_ca_file: Path | None = Field(
        default=None,
        validate_default=True,
        description="mutual TLS: CA certificates (PEM) that every client certificate must chain"
        " to; what a certificate may do is registered with `sealmark certs add`",
    )
    allow_insecure: bool = Field(
        default=False,
        description="UNSAFE: serve plaintext gRPC on a non-loopback SEALMARK_GRPC_HOST",
    )
    http_host: str = Field(default="127.0.0.1", description="HTTP listen address (metrics)")
    metrics_port: int = Field(
        default=9464, ge=0, le=65535, description="Prometheus metrics port; 0 = any free"
    )
    verify_http_host: str = Field(
        default="127.0.0.1", description="consumer page (Verifier HTTP) listen address"
    )
    verify_http_port: int = Field(
        default=8080, ge=0, le=65535, description="consumer page port; 0 = any free"
    )
    verify_http_trust_proxy: bool = Field(
        default=False,
        description="behind a reverse proxy: take the client from X-Forwarded-For (last hop),"
        " the scheme from X-Forwarded-Proto and the region from X-Client-Region",
    )
    dashboard_http_host: str = Field(
        default="127.0.0.1", description="brand dashboard (Audit HTTP) listen address"
    )
    dashboard_http_port: int = Field(
        default=8081, ge=0, le=65535, description="brand dashboard port; 0 = any free"
    )
    tlog_origin: str = Field(
        default="sealmark.local/log",
        pattern=r"^[A-Za-z0-9.-]+(/[A-Za-z0-9._-]+)*$",
        max_length=200,
        description="transparency log identity: checkpoints name '<tlog_origin>/<tenant>';"
        " use a host name you control",
    )
    db_pool_size: int = Field(default=8, ge=1, le=256, description="PostgreSQL connections")
    db_connect_timeout_s: float = Field(default=3.0, gt=0, le=60)
    db_statement_timeout_ms: int = Field(default=5000, ge=100, le=600_000)
    grpc_workers: int = Field(default=16, ge=1, le=1024, description="gRPC handler threads")
    processes: int = Field(
        default=1,
        ge=1,
        le=64,
        description="serving processes sharing the gRPC and consumer-page ports (SO_REUSEPORT,"
        " Linux): more than one uses more cores; each extra one has its own metrics port",
    )
    cpu_affinity: str = Field(
        default="auto",
        pattern=r"^(auto|off|[0-9]{1,4})$",
        description="auto: with SEALMARK_PROCESSES > 1, serving process n runs on the n-th usable"
        " CPU only; off: processes run anywhere; a CPU number: this one process runs there",
    )
    shutdown_grace_s: float = Field(
        default=10.0, ge=0, le=300, description="seconds to drain streams on shutdown"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "console"
    secret_pepper: SecretStr | None = Field(
        default=None,
        min_length=16,
        description="secret pepper for PIN derivation and hashing; required with external servers",
    )
    key_passphrase: SecretStr | None = Field(
        default=None,
        min_length=12,
        description="passphrase encrypting signing keys at rest; required with external servers",
    )
    mac_secret: SecretStr | None = Field(
        default=None,
        min_length=32,
        description="secret the MAC keys of compact-profile products are derived from; unset ="
        " compact codes can be neither issued nor verified (the embedded default makes a dev one)",
    )
    key_backend: Literal["software", "pkcs11"] = Field(
        default="software",
        description="where new signing keys live: software (encrypted at rest) or pkcs11 (HSM)",
    )
    pkcs11_module: str | None = Field(
        default=None,
        validate_default=True,
        description="path of the PKCS#11 module (.so), e.g. libsofthsm2.so",
    )
    pkcs11_token: str | None = Field(
        default=None,
        validate_default=True,
        max_length=32,
        description="label of the PKCS#11 token holding the keys",
    )
    pkcs11_pin: SecretStr | None = Field(
        default=None,
        validate_default=True,
        min_length=4,
        description="user PIN of the PKCS#11 token",
    )
    token: SecretStr | None = Field(
        default=None, description="API token the CLI presents to the services (sealmark issue)"
    )
    mint_processes: int = Field(
        default_factory=lambda: min(64, len(os.sched_getaffinity(0))),
        ge=0,
        le=64,
        description="worker processes that draw and sign codes (software keys); default one per"
        " CPU this process may use; 0 = in-process",
    )
    guess_bound: float = Field(
        default=1e-4, gt=0, le=1e-4, description="max issued/space per GTIN (EU FMD: 1e-4)"
    )
    webhook_dispatch: bool = Field(
        default=True,
        description="the Audit service sends webhook deliveries (off: it only records them)",
    )
    webhook_allow_private: bool = Field(
        default=False,
        description="DEV/TEST ONLY: webhook endpoints may target loopback, private and"
        " link-local addresses (and plain http to loopback)",
    )
    webhook_max_attempts: int = Field(
        default=12, ge=1, le=100, description="attempts before a delivery is a dead letter"
    )
    webhook_backoff_s: float = Field(
        default=10.0, gt=0, le=3600, description="first retry delay; doubles per attempt"
    )
    webhook_backoff_max_s: float = Field(
        default=3600.0, gt=0, le=86_400, description="longest retry delay"
    )
    webhook_timeout_s: float = Field(
        default=10.0, gt=0, le=60, description="per delivery: connect, send and read the answer"
    )
    webhook_poll_s: float = Field(
        default=1.0, gt=0, le=60, description="how often the dispatcher looks for due deliveries"
    )

    @field_validator("database_url")
    @classmethod
    def _check_dsn(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("want a postgresql:// URL")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("want a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("redis_cluster_nodes")
    @classmethod
    def _check_cluster(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if info.data.get("redis_url") is not None:
            raise ValueError("set SEALMARK_REDIS_URL (one server) or this (a cluster), not both")
        parse_nodes(value)
        return value

    @field_validator("tls_key_file", "tls_client_ca_file")
    @classmethod
    def _check_tls(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        has_cert = info.data.get("tls_cert_file") is not None
        if info.field_name == "tls_key_file" and (value is None) == has_cert:
            if value is None:
                raise ValueError("required when SEALMARK_TLS_CERT_FILE is set")
            raise ValueError("set SEALMARK_TLS_CERT_FILE too (the certificate of this key)")
        if info.field_name == "tls_client_ca_file" and value is not None and not has_cert:
            raise ValueError(
                "mutual TLS needs TLS: set SEALMARK_TLS_CERT_FILE and SEALMARK_TLS_KEY_FILE"
            )
        return value

    @field_validator("pkcs11_module", "pkcs11_token", "pkcs11_pin")
    @classmethod
    def _check_pkcs11(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.data.get("key_backend") == "pkcs11":
            raise ValueError("required when SEALMARK_KEY_BACKEND is pkcs11")
        if info.field_name == "pkcs11_module" and value is not None and not Path(value).is_file():
            raise ValueError(f"{value} is not a file (the PKCS#11 module, a .so)")
        return value

    @property
    def embedded(self) -> bool:
        """True when no server is given: ``sealmark serve`` starts private servers."""
        return self.database_url is None and self.redis is None

    @property
    def redis(self) -> str | None:
        """The Redis given (a URL or the cluster's seeds), None for the embedded one."""
        return self.redis_url if self.redis_cluster_nodes is None else self.redis_cluster_nodes


def load_settings(
    environ: Mapping[str, str], overrides: Mapping[str, Any] | None = None
) -> Settings:
    """Build the settings from ``environ`` (and the TOML file it names), then ``overrides``.

    Raises InvalidArgument naming the offending ``SEALMARK_*`` key.
    """
    file_values: dict[str, Any] = {}
    config_path = environ.get("SEALMARK_CONFIG")
    if config_path:
        try:
            file_values = tomllib.loads(Path(config_path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise InvalidArgument("SEALMARK_CONFIG", f"cannot read {config_path}: {exc}") from exc
    env_values = {
        key.removeprefix("SEALMARK_").lower(): value
        for key, value in environ.items()
        if key.startswith("SEALMARK_") and key not in _NOT_SETTINGS
    }
    values = {**file_values, **env_values, **dict(overrides or {})}
    try:
        # init kwargs only: the environment is read here, once, by us (not by pydantic again).
        return _Isolated(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = "SEALMARK_" + str(first["loc"][0]).upper() if first["loc"] else "SEALMARK_CONFIG"
        raise InvalidArgument(key, first["msg"]) from exc


# Variables with the prefix that are not settings (used by tooling and tests).
_NOT_SETTINGS = frozenset(
    {"SEALMARK_CONFIG", "SEALMARK_TEST_DATABASE_URL", "SEALMARK_TEST_REDIS_URL"}
)


class _Isolated(Settings):
    """Settings that take their values only from init arguments, never from the process env."""

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, *args, **kwargs):  # type: ignore[no-untyped-def]
        return (init_settings,)
