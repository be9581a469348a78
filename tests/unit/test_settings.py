"""Settings read the shared and per-service variables and fail fast with readable errors."""

from __future__ import annotations

import pytest

from llmops.settings import ConfigurationError, Environment, WireFormat, load_settings
from llmops_gateway.settings import GatewaySettings
from llmops_indexer.settings import IndexerSettings


def test_shared_variables_are_unprefixed_and_service_ones_prefixed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-1:9092,kafka-2:9092")
    monkeypatch.setenv("EVENT_WIRE_FORMAT", "avro")
    monkeypatch.setenv("GATEWAY_PORT", "9100")
    monkeypatch.setenv("INDEXER_PORT", "9200")

    gateway = load_settings(GatewaySettings)
    indexer = load_settings(IndexerSettings)

    assert gateway.kafka_bootstrap_servers == "kafka-1:9092,kafka-2:9092"
    assert gateway.event_wire_format is WireFormat.AVRO
    assert (gateway.port, indexer.port) == (9100, 9200)
    assert gateway.consumer_group == "gateway"


def test_each_service_has_its_own_default_port() -> None:
    assert GatewaySettings().port == 8000
    assert IndexerSettings().port == 8002


@pytest.mark.parametrize(
    ("variable", "value", "complaint"),
    [
        ("KAFKA_BOOTSTRAP_SERVERS", "not a host", "KAFKA_BOOTSTRAP_SERVERS"),
        ("MONGODB_URL", "postgres://db", "MONGODB_URL"),
        ("GATEWAY_PORT", "70000", "PORT"),
        ("EVENT_WIRE_FORMAT", "xml", "EVENT_WIRE_FORMAT"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL"),
    ],
)
def test_bad_values_stop_start_up_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, complaint: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(ConfigurationError) as failure:
        load_settings(GatewaySettings)

    message = str(failure.value.code)
    assert "invalid configuration for gateway" in message
    assert complaint in message


def test_production_refuses_local_infrastructure_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPS_ENV", "production")
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("MONGODB_URL", raising=False)

    with pytest.raises(ConfigurationError) as failure:
        load_settings(GatewaySettings)

    assert "KAFKA_BOOTSTRAP_SERVERS, MONGODB_URL" in str(failure.value.code)

    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    monkeypatch.setenv("MONGODB_URL", "mongodb://db:27017")
    monkeypatch.setenv("GATEWAY_ADMIN_KEY", "a-long-random-admin-key-0123456789")
    assert load_settings(GatewaySettings).environment is Environment.PRODUCTION


@pytest.mark.parametrize("admin_key", [None, "", "short-key", "sk-llmops-dev-admin"])
def test_production_refuses_a_weak_gateway_admin_key(
    monkeypatch: pytest.MonkeyPatch, admin_key: str | None
) -> None:
    monkeypatch.setenv("LLMOPS_ENV", "production")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    monkeypatch.setenv("MONGODB_URL", "mongodb://db:27017")
    if admin_key is None:
        monkeypatch.delenv("GATEWAY_ADMIN_KEY", raising=False)
    else:
        monkeypatch.setenv("GATEWAY_ADMIN_KEY", admin_key)

    with pytest.raises(ConfigurationError) as failure:
        load_settings(GatewaySettings)

    assert "GATEWAY_ADMIN_KEY of at least 32 characters" in str(failure.value.code)
