from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from stream.config import TOPIC_NAMES, Settings


def test_defaults_derive_client_addresses_from_ports(monkeypatch):
    monkeypatch.setenv("STREAMREC_KAFKA_PORT", "29092")
    monkeypatch.setenv("STREAMREC_REDIS_PORT", "26379")
    s = Settings()
    assert s.bootstrap_servers == "localhost:29092"
    assert s.redis_url == "redis://localhost:26379/0"


def test_explicit_addresses_win(monkeypatch):
    monkeypatch.setenv("STREAMREC_BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    assert Settings(kafka_port=1).bootstrap_servers == "k1:9092,k2:9092"


def test_secrets_never_print(monkeypatch, caplog):
    monkeypatch.setenv("STREAMREC_REDIS_PASSWORD", "s3cret-redis")
    monkeypatch.setenv("STREAMREC_KAFKA_SASL_PASSWORD", "s3cret-kafka")
    s = Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="app")
    with caplog.at_level(logging.INFO):
        logging.getLogger("t").info("settings: %s %r", s, s)
    assert "s3cret" not in caplog.text and "s3cret" not in str(s.model_dump())
    conf = s.kafka_client_config()
    assert conf["sasl.password"] == "s3cret-kafka" and conf["sasl.username"] == "app"
    assert s.redis_kwargs() == {"password": "s3cret-redis"}


def test_plaintext_has_no_sasl_settings():
    assert "sasl.password" not in Settings().kafka_client_config()


def test_settings_are_frozen():
    with pytest.raises(ValidationError):
        Settings().partitions = 8  # type: ignore[misc]


def test_invalid_values_are_refused_with_the_field_name(monkeypatch):
    monkeypatch.setenv("STREAMREC_PARTITIONS", "0")
    with pytest.raises(ValidationError, match="partitions"):
        Settings()


def test_topic_prefix_applies_to_every_topic():
    s = Settings(topic_prefix="test-1.")
    assert [s.topic(t) for t in TOPIC_NAMES][0] == "test-1.clicks"
    assert all(s.topic(t).startswith("test-1.") for t in TOPIC_NAMES)


def test_every_field_documents_its_variable():
    for name, field in Settings.model_fields.items():
        assert f"STREAMREC_{name.upper()}" in (field.description or ""), name


def test_as_env_reproduces_the_settings_in_a_child(monkeypatch):
    monkeypatch.setenv("STREAMREC_TOPIC_PREFIX", "from-parent.")
    s = Settings(topic_prefix="mine.", redis_password="pw", partitions=6)
    env = s.as_env({"PATH": "/bin", "STREAMREC_STRAY": "x"})
    assert env["PATH"] == "/bin" and "STREAMREC_STRAY" not in env
    monkeypatch.delenv("STREAMREC_TOPIC_PREFIX")
    for key, value in env.items():
        if key.startswith("STREAMREC_"):
            monkeypatch.setenv(key, value)
    assert Settings() == s


def test_new_secrets_never_print_and_the_redis_user_is_passed(monkeypatch):
    s = Settings(http_token="s3cret-token", id_key="s3cret-id-key-0123456789", redis_username="worker",
                 redis_password="s3cret-redis")
    assert "s3cret" not in repr(s) and "s3cret" not in str(s.model_dump())
    assert s.redis_kwargs() == {"username": "worker", "password": "s3cret-redis"}
    assert Settings().redis_kwargs() == {}


def test_the_owners_dedupe_window_follows_the_outbox_resend_period(monkeypatch):
    assert Settings().owner_dedupe_seconds == 3600  # max(1 h, 10 x 30 s)
    monkeypatch.setenv("STREAMREC_OUTBOX_RESEND_SECONDS", "600")
    assert Settings().owner_dedupe_seconds == 6000
    monkeypatch.setenv("STREAMREC_OWNER_DEDUPE_SECONDS", "1200")
    assert Settings().owner_dedupe_seconds == 1200
    # a window shorter than two resend periods would forget ids before their resends come
    monkeypatch.setenv("STREAMREC_OWNER_DEDUPE_SECONDS", "1199")
    with pytest.raises(ValidationError, match="STREAMREC_OWNER_DEDUPE_SECONDS"):
        Settings()


def test_a_cluster_needs_a_prefix_with_a_hash_tag(monkeypatch):
    monkeypatch.setenv("STREAMREC_REDIS_CLUSTER", "true")
    with pytest.raises(ValidationError, match="STREAMREC_REDIS_PREFIX 'streamrec' has no hash tag.*{streamrec}"):
        Settings()
    monkeypatch.setenv("STREAMREC_REDIS_PREFIX", "{shop}")
    s = Settings()
    assert s.redis_cluster and s.run_prefix("bench:1") == "{bench:1}"
    untagged = s.model_copy(update={"redis_prefix": "shop"})  # a copy is not validated again: the client checks
    with pytest.raises(ValueError, match="has no hash tag"):
        untagged.redis_client()
    monkeypatch.delenv("STREAMREC_REDIS_CLUSTER")
    assert Settings(redis_prefix="shop").run_prefix("bench:1") == "bench:1"
