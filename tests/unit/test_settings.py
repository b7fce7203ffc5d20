from __future__ import annotations

import os
from pathlib import Path

import pytest

from sealmark.errors import InvalidArgument
from sealmark.settings import load_settings
from sealmark.storage.redis_client import parse_nodes


def test_defaults_mean_embedded() -> None:
    settings = load_settings({})
    assert settings.embedded
    assert settings.grpc_port == 50051
    assert settings.data_dir == Path(".sealmark")


def test_environment_values_are_typed() -> None:
    settings = load_settings(
        {
            "SEALMARK_GRPC_PORT": "0",
            "SEALMARK_DATABASE_URL": "postgresql://u@h/db",
            "SEALMARK_REDIS_URL": "redis://h:6379/0",
            "SEALMARK_SHUTDOWN_GRACE_S": "2.5",
        }
    )
    assert settings.grpc_port == 0
    assert settings.shutdown_grace_s == 2.5
    assert not settings.embedded


def test_settings_are_frozen() -> None:
    settings = load_settings({})
    with pytest.raises(Exception, match="frozen"):
        settings.grpc_port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"SEALMARK_GRPC_PORT": "eighty"}, "SEALMARK_GRPC_PORT"),
        ({"SEALMARK_GRPC_PORT": "70000"}, "SEALMARK_GRPC_PORT"),
        ({"SEALMARK_DATABASE_URL": "mysql://x"}, "SEALMARK_DATABASE_URL"),
        ({"SEALMARK_REDIS_URL": "http://x"}, "SEALMARK_REDIS_URL"),
        ({"SEALMARK_LOG_LEVEL": "LOUD"}, "SEALMARK_LOG_LEVEL"),
        ({"SEALMARK_NO_SUCH_THING": "1"}, "SEALMARK_NO_SUCH_THING"),
    ],
)
def test_bad_values_name_the_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        load_settings(env)
    assert caught.value.field == key


def test_toml_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    config = tmp_path / "sealmark.toml"
    config.write_text('grpc_port = 6000\nmetrics_port = 6001\nlog_format = "json"\n')
    settings = load_settings({"SEALMARK_CONFIG": str(config), "SEALMARK_GRPC_PORT": "7000"})
    assert settings.grpc_port == 7000
    assert settings.metrics_port == 6001
    assert settings.log_format == "json"


def test_unreadable_toml_names_the_config_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("grpc_port = = 1")
    with pytest.raises(InvalidArgument) as caught:
        load_settings({"SEALMARK_CONFIG": str(bad)})
    assert caught.value.field == "SEALMARK_CONFIG"


def test_process_environment_is_not_read_behind_our_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SEALMARK_GRPC_PORT", "1234")
    assert load_settings({}).grpc_port == 50051


@pytest.mark.parametrize(
    ("env", "key", "message"),
    [
        ({}, "SEALMARK_PKCS11_MODULE", "required when SEALMARK_KEY_BACKEND is pkcs11"),
        ({"SEALMARK_PKCS11_MODULE": "/no/such.so"}, "SEALMARK_PKCS11_MODULE", "not a file"),
        ({"SEALMARK_PKCS11_MODULE": __file__}, "SEALMARK_PKCS11_TOKEN", "required"),
        (
            {"SEALMARK_PKCS11_MODULE": __file__, "SEALMARK_PKCS11_TOKEN": "t"},
            "SEALMARK_PKCS11_PIN",
            "required",
        ),
    ],
)
def test_pkcs11_backend_needs_module_token_and_pin(
    env: dict[str, str], key: str, message: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        load_settings({"SEALMARK_KEY_BACKEND": "pkcs11", **env})
    assert caught.value.field == key
    assert message in str(caught.value)


def test_pkcs11_backend_complete() -> None:
    settings = load_settings(
        {
            "SEALMARK_KEY_BACKEND": "pkcs11",
            "SEALMARK_PKCS11_MODULE": __file__,
            "SEALMARK_PKCS11_TOKEN": "brand-keys",
            "SEALMARK_PKCS11_PIN": "123456",
        }
    )
    assert settings.key_backend == "pkcs11"
    assert "123456" not in repr(settings)


def test_redis_cluster_seeds_instead_of_a_url() -> None:
    settings = load_settings(
        {
            "SEALMARK_DATABASE_URL": "postgresql://u@h/db",
            "SEALMARK_REDIS_CLUSTER_NODES": "10.0.0.1:7000, 10.0.0.2:7000,[::1]:7001",
        }
    )
    assert not settings.embedded
    assert settings.redis == "10.0.0.1:7000, 10.0.0.2:7000,[::1]:7001"
    assert parse_nodes(settings.redis) == (
        None,
        [("10.0.0.1", 7000), ("10.0.0.2", 7000), ("::1", 7001)],
    )
    with_tls = "rediss://:pw@10.0.0.1:7000?ssl_ca_certs=/ca.crt,10.0.0.2:7000"
    assert parse_nodes(with_tls) == (
        "rediss://:pw@10.0.0.1:7000?ssl_ca_certs=/ca.crt",
        [("10.0.0.2", 7000)],
    )


@pytest.mark.parametrize(
    ("nodes", "why"),
    [
        ("10.0.0.1", "'10.0.0.1' is not host:port"),
        ("10.0.0.1:7000,:7001", "':7001' is not host:port"),
        ("h:0", "'h:0' is not host:port"),
        ("h:70000", "'h:70000' is not host:port"),
        ("h:port", "'h:port' is not host:port"),
        ("redis://:secret@a:1,redis://b:2", "at most one entry may be a URL"),
        ("redis://:secret@a:1/3", "'a:1/3': want rediss://"),
    ],
)
def test_bad_cluster_seeds_name_the_setting(nodes: str, why: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        load_settings({"SEALMARK_REDIS_CLUSTER_NODES": nodes})
    assert caught.value.field == "SEALMARK_REDIS_CLUSTER_NODES"
    assert why in caught.value.reason
    assert "secret" not in caught.value.reason


def test_a_url_and_cluster_seeds_are_one_too_many() -> None:
    with pytest.raises(InvalidArgument, match="not both") as caught:
        load_settings(
            {"SEALMARK_REDIS_URL": "redis://h:6379/0", "SEALMARK_REDIS_CLUSTER_NODES": "h:7000"}
        )
    assert caught.value.field == "SEALMARK_REDIS_CLUSTER_NODES"


def test_minting_processes_default_to_one_per_usable_cpu() -> None:
    assert load_settings({}).mint_processes == min(64, len(os.sched_getaffinity(0)))
    assert load_settings({"SEALMARK_MINT_PROCESSES": "0"}).mint_processes == 0
    assert load_settings({"SEALMARK_MINT_PROCESSES": "3"}).mint_processes == 3


@pytest.mark.parametrize("value", ["-1", "65", "two", "1.5"])
def test_minting_processes_out_of_bounds_name_the_key(value: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        load_settings({"SEALMARK_MINT_PROCESSES": value})
    assert caught.value.field == "SEALMARK_MINT_PROCESSES"
