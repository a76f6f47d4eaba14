"""Security sections of the Kafka and Redis settings: consistency rules, client arguments, and
secrets that come only from the environment or a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from pydantic import SecretStr, ValidationError

from runtime.kafka import KafkaSettings, _common
from runtime.kafka_security import KafkaSecurity
from runtime.redis import RedisSecurity, RedisState
from runtime.secrets import SecretFileError, read_secret
from runtime.settings import load_settings, settings_options


def test_defaults_are_plaintext_with_nothing_extra() -> None:
    assert KafkaSecurity().client_config() == {"security_protocol": "PLAINTEXT"}


def test_sasl_ssl_maps_to_kafka_python_arguments(tmp_path: Path) -> None:
    password = tmp_path / "password"
    password.write_text("s3cret\n")
    security = KafkaSecurity(
        protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-256",
        username="detector",
        password_file=password,
        ca_file=tmp_path / "ca.crt",
        check_hostname=False,
    )
    assert security.client_config() == {
        "security_protocol": "SASL_SSL",
        "ssl_cafile": str(tmp_path / "ca.crt"),
        "ssl_certfile": None,
        "ssl_keyfile": None,
        "ssl_check_hostname": False,
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "detector",
        "sasl_plain_password": "s3cret",
    }


def test_every_client_factory_gets_the_security_arguments(tmp_path: Path) -> None:
    settings = KafkaSettings(
        security=KafkaSecurity(
            protocol="SSL", cert_file=tmp_path / "c.crt", key_file=tmp_path / "c.key"
        )
    )
    common = _common(settings, "client")
    assert common["security_protocol"] == "SSL"
    assert common["ssl_certfile"] == str(tmp_path / "c.crt")


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ({"protocol": "SASL_SSL"}, "needs username and password"),
        ({"protocol": "SASL_SSL", "username": "u"}, "needs username and password"),
        ({"username": "u", "password": "p"}, "used only by SASL_"),
        ({"protocol": "SSL", "cert_file": "c.crt"}, "cert_file and key_file go together"),
        ({"ca_file": "ca.crt"}, "used only by SSL and SASL_SSL"),
        (
            {"protocol": "SASL_SSL", "username": "u", "password": "p", "password_file": "f"},
            "not both",
        ),
        ({"protocol": "TLS"}, "Input should be"),
    ],
)
def test_inconsistent_kafka_security_is_refused(given: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        KafkaSecurity.model_validate(given)


def test_a_secret_never_shows_in_a_repr_or_a_dump() -> None:
    security = KafkaSecurity(protocol="SASL_SSL", username="u", password=SecretStr("hunter2"))
    settings = KafkaSettings(security=security)
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in settings.model_dump_json()


def test_a_missing_secret_file_is_one_readable_line(tmp_path: Path) -> None:
    with pytest.raises(SecretFileError, match=r"password_file .*/absent: No such file"):
        read_secret(None, tmp_path / "absent", "password")


def test_kafka_security_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MASKWATCH_KAFKA_SECURITY__PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("MASKWATCH_KAFKA_SECURITY__USERNAME", "aggregator")
    monkeypatch.setenv("MASKWATCH_KAFKA_SECURITY__PASSWORD", "from-env")
    security = load_settings(KafkaSettings, {}).security
    assert security.protocol == "SASL_SSL"
    assert security.client_config()["sasl_plain_password"] == "from-env"


def test_a_misspelt_security_variable_names_the_right_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's example: one underscore where the section delimiter has two."""
    monkeypatch.setenv("MASKWATCH_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    with pytest.raises(click.UsageError, match="did you mean MASKWATCH_KAFKA_SECURITY__PROTOCOL"):
        load_settings(KafkaSettings, {})


def test_the_password_is_no_command_line_option() -> None:
    @click.command()
    @settings_options(KafkaSettings)
    def command(**values: Any) -> None:
        click.echo("ran")

    help_text = CliRunner().invoke(command, ["--help"]).output
    assert "--security-password-file" in help_text
    assert "--security-password " not in help_text and "--security-password\n" not in help_text
    refused = CliRunner().invoke(command, ["--security-password", "x"])
    assert refused.exit_code == 2
    assert "No such option" in refused.output


def test_redis_tls_options_only_for_rediss(tmp_path: Path) -> None:
    password = tmp_path / "pw"
    password.write_text("redis-secret")
    plain = RedisState(redis_security=RedisSecurity(password_file=password))
    assert plain.redis_options() == {"username": None, "password": "redis-secret"}
    tls = RedisState(
        redis_url="rediss://cache:6380/0",
        redis_security=RedisSecurity(username="agg", ca_file=tmp_path / "ca.crt"),
    )
    assert tls.redis_options() == {
        "username": "agg",
        "password": None,
        "ssl_ca_certs": str(tmp_path / "ca.crt"),
        "ssl_certfile": None,
        "ssl_keyfile": None,
        "ssl_check_hostname": True,
        "ssl_cert_reqs": "required",
    }


@pytest.mark.parametrize(
    ("url", "security", "problem"),
    [
        ("redis://:pw@cache:6379/0", {}, "no password in redis_url"),
        ("redis://cache:6379/0", {"ca_file": "ca.crt"}, "need a rediss:// URL"),
        ("http://cache:6379/0", {}, "must start with redis://"),
        ("rediss://cache:6379/0", {"cert_file": "c.crt"}, "go together"),
    ],
)
def test_inconsistent_redis_settings_are_refused(
    url: str, security: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValidationError, match=problem):
        RedisState(redis_url=url, redis_security=RedisSecurity.model_validate(security))
