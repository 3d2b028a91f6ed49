"""The one-line errors for Kafka and Redis settings and connections (no broker needed here; the
real refusals are in tests/integration/test_security_kafka.py and test_security_redis.py)."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError

from stream.config import Settings
from stream.preflight import KafkaErrorWatch, ServiceError, check_kafka, check_redis, kafka_settings_problem
from stream.stack.process import free_port

SASL = dict(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username="app",
            kafka_sasl_password="pw")


def test_missing_sasl_settings_are_named():
    assert kafka_settings_problem(Settings(**SASL)) is None
    assert "STREAMREC_KAFKA_SASL_PASSWORD is empty" in kafka_settings_problem(Settings(**{**SASL, "kafka_sasl_password": ""}))
    assert "STREAMREC_KAFKA_SASL_USERNAME is empty" in kafka_settings_problem(Settings(**{**SASL, "kafka_sasl_username": ""}))
    assert "not a readable file" in kafka_settings_problem(Settings(**SASL, kafka_ssl_cafile="/nonexistent/ca.pem"))
    assert kafka_settings_problem(Settings()) is None


def test_refused_logins_and_tls_failures_are_fatal_and_said_plainly():
    s = Settings(**SASL, bootstrap_servers="broker:9093", kafka_ssl_cafile="/etc/ca.pem")
    watch = KafkaErrorWatch(s)
    watch(KafkaError(KafkaError._TRANSPORT, "broker:9093/bootstrap: Connect failed: Connection refused"))
    assert watch.fatal is None
    watch.check()  # retrying may cure a refused connection
    watch(KafkaError(KafkaError._AUTHENTICATION, "SASL authentication error: Authentication failed"))
    with pytest.raises(ServiceError, match=r"refused the SCRAM-SHA-512 login of user 'app'"):
        watch.check()
    tls = KafkaErrorWatch(s)
    tls(KafkaError(KafkaError._SSL, "sasl_ssl://broker:9093/bootstrap: SSL handshake failed: error:0A000086:SSL "
                                    "routines::certificate verify failed: broker certificate could not be verified"))
    assert tls.message() == ("Kafka at broker:9093 (SASL_SSL): the TLS handshake failed (certificate verify failed): "
                             "check STREAMREC_KAFKA_SSL_CAFILE (/etc/ca.pem) and that the broker's certificate names "
                             "the host")
    assert "pw" not in tls.message().replace("/etc", "")


def test_an_unreachable_broker_ends_in_one_line_after_the_timeout():
    started = time.monotonic()
    with pytest.raises(ServiceError) as err:
        check_kafka(Settings(bootstrap_servers=f"127.0.0.1:{free_port()}"), timeout=2)
    assert time.monotonic() - started < 10
    assert "is unreachable" in str(err.value) and "\n" not in str(err.value)


def test_an_unreachable_redis_ends_in_one_line_without_credentials():
    port = free_port()
    with pytest.raises(ServiceError) as err:
        check_redis(Settings(redis_url=f"redis://:urlpw@127.0.0.1:{port}/0", redis_password="pw"), timeout=2)
    assert str(err.value).startswith(f"Redis at 127.0.0.1:{port}/0 is unreachable")
    assert "urlpw" not in str(err.value) and "\n" not in str(err.value)


def test_a_cluster_that_is_down_is_said_to_be_down(monkeypatch):
    """CLUSTERDOWN at start (a cluster still forming, a node away) is named, with what to do."""
    import redis

    class Down:
        def ping(self):
            raise redis.exceptions.ClusterDownError("Command # 1 (EXISTS {p}:stats) of pipeline caused error: "
                                                    "The cluster is down")

        def close(self):
            pass

    monkeypatch.setattr(Settings, "redis_client", lambda self, **kwargs: Down())
    with pytest.raises(ServiceError, match=r"says the cluster is down .*cluster_state:ok on every node"):
        check_redis(Settings(redis_cluster=True, redis_prefix="{p}"), timeout=2)
