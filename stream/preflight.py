"""Checks that Kafka and Redis can be used with these settings, failing in one clear line.

A wrong password, a wrong CA or a missing password must not show up as a hang, a stack trace
or pages of client logs. ``streamrec worker``, ``streamrec-produce`` and ``streamrec-consume``
call :func:`check_kafka` (and the worker :func:`check_redis`) before they start, and print a
:class:`ServiceError` as one line; the SDKs' clients report the same errors through
:class:`KafkaErrorWatch` instead of waiting out their timeouts.

Examples
--------
>>> from stream.config import Settings
>>> kafka_settings_problem(Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="app"))
'STREAMREC_KAFKA_SECURITY_PROTOCOL is SASL_SSL but STREAMREC_KAFKA_SASL_PASSWORD is empty: set the password of SASL user app'
>>> redis_address("redis://:pw@cache.example:6380/2")
'cache.example:6380/2'
"""

from __future__ import annotations

import os
import re
import time
from typing import Any
from urllib.parse import urlsplit

from stream.config import Settings

__all__ = ["ServiceError", "KafkaErrorWatch", "check_kafka", "check_redis", "kafka_settings_problem",
           "redis_address"]


class ServiceError(RuntimeError):
    """Kafka or Redis cannot be used: the message is one line saying where, what and what to check."""


def kafka_settings_problem(settings: Settings) -> str | None:
    """What is missing from the Kafka security settings, or None (no connection is made)."""
    protocol = settings.kafka_security_protocol
    if protocol.startswith("SASL"):
        if not settings.kafka_sasl_username:
            return (f"STREAMREC_KAFKA_SECURITY_PROTOCOL is {protocol} but STREAMREC_KAFKA_SASL_USERNAME is empty: "
                    "set the SASL user")
        if not settings.kafka_sasl_password.get_secret_value():
            return (f"STREAMREC_KAFKA_SECURITY_PROTOCOL is {protocol} but STREAMREC_KAFKA_SASL_PASSWORD is empty: "
                    f"set the password of SASL user {settings.kafka_sasl_username}")
    if protocol.endswith("SSL") and settings.kafka_ssl_cafile and not os.access(settings.kafka_ssl_cafile, os.R_OK):
        return f"STREAMREC_KAFKA_SSL_CAFILE {settings.kafka_ssl_cafile} is not a readable file"
    return None


def _tls_reason(text: str) -> str:
    """The OpenSSL reason inside a librdkafka TLS error ("certificate verify failed", ...)."""
    match = re.search(r"SSL handshake failed: (?:error:[0-9A-F]+:[^:]*:[^:]*:)?([^:(]+)", text)
    return match.group(1).strip() if match else text.split(": ", 1)[-1][:160]


class KafkaErrorWatch:
    """A confluent-kafka ``error_cb``: keeps the first error that retrying will not cure (a refused
    login, a failed TLS handshake) and the last error of any kind.

    Parameters
    ----------
    settings
        What the client was configured with, to name in the message.
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self.fatal: Any = None
        self.last: Any = None

    def __call__(self, err) -> None:
        from confluent_kafka import KafkaError

        self.last = err
        auth = {KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED,
                KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED}
        is_tls = err.code() == KafkaError._SSL or "SSL handshake failed" in err.str()
        if self.fatal is None and (err.code() in auth or is_tls or err.fatal()):
            self.fatal = err

    def message(self, err=None) -> str:
        """One line for ``err`` (default the fatal one, else the last one)."""
        from confluent_kafka import KafkaError

        s = self.settings
        err = err or self.fatal or self.last
        where = f"Kafka at {s.bootstrap_servers} ({s.kafka_security_protocol})"
        if err is None:
            return f"{where} did not answer"
        text = err.str()
        if err.code() == KafkaError._SSL or "SSL handshake failed" in text:
            ca = s.kafka_ssl_cafile or "the system's CAs"
            return (f"{where}: the TLS handshake failed ({_tls_reason(text)}): check STREAMREC_KAFKA_SSL_CAFILE "
                    f"({ca}) and that the broker's certificate names the host")
        if err.code() in (KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED):
            return (f"{where} refused the {s.kafka_sasl_mechanism} login of user {s.kafka_sasl_username!r}: "
                    "check STREAMREC_KAFKA_SASL_USERNAME, STREAMREC_KAFKA_SASL_PASSWORD and "
                    "STREAMREC_KAFKA_SASL_MECHANISM")
        if err.code() in (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED):
            return f"{where}: user {s.kafka_sasl_username!r} is not authorised: {err.name()}"
        return f"{where} is unreachable: {err.name()} ({text.splitlines()[0][:200]})"

    def check(self) -> None:
        """Raise :class:`ServiceError` if an error that retrying will not cure was seen."""
        if self.fatal is not None:
            raise ServiceError(self.message(self.fatal))


def _silent_logger():
    import logging

    logger = logging.getLogger("stream.preflight.librdkafka")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    return logger


# librdkafka's own log lines (one per failed connection attempt, every second) would bury the one
# line the check prints; its errors reach KafkaErrorWatch all the same.
_SILENT = _silent_logger()


def quiet_kafka_config(settings: Settings, watch: KafkaErrorWatch) -> dict[str, Any]:
    """Client settings whose errors go to ``watch`` and whose librdkafka logs stay off stderr."""
    return {**settings.kafka_client_config(), "error_cb": watch, "logger": _SILENT}


def check_kafka(settings: Settings, timeout: float = 15.0) -> None:
    """A metadata request to the brokers; raises :class:`ServiceError` with one line on failure.

    A refused login or a failed TLS handshake ends the check at once; an unreachable broker
    after ``timeout`` seconds.
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    problem = kafka_settings_problem(settings)
    if problem:
        raise ServiceError(problem)
    watch = KafkaErrorWatch(settings)
    admin = AdminClient(quiet_kafka_config(settings, watch))
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin.list_topics(timeout=min(1.0, max(deadline - time.monotonic(), 0.1)))
            return
        except KafkaException as exc:
            watch.last = watch.last or exc.args[0]
        admin.poll(0)
        watch.check()
        if time.monotonic() >= deadline:
            raise ServiceError(f"{watch.message()}; no answer within {timeout:.0f} s: check "
                               "STREAMREC_BOOTSTRAP_SERVERS and STREAMREC_KAFKA_SECURITY_PROTOCOL")


def redis_address(url: str) -> str:
    """``host:port/db`` of a Redis URL, without any credentials it may carry."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 6379}{parts.path or '/0'}"


def check_redis(settings: Settings, timeout: float = 5.0) -> None:
    """PING, then one read under STREAMREC_REDIS_PREFIX (an ACL user may be limited to its keys);
    raises :class:`ServiceError` with one line on failure."""
    import redis

    where = f"Redis at {redis_address(settings.redis_url)}"
    user = settings.redis_username or "default"
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = None
    try:
        # no retries: redis-py counts a refused login as a connection error and retries it for seconds;
        # a cluster client connects here already
        client = settings.redis_client(socket_connect_timeout=timeout, socket_timeout=timeout,
                                       retry=Retry(NoBackoff(), 0))
        client.ping()
        if not settings.redis_cluster and _mode(client.execute_command("HELLO")) == "cluster":
            raise ServiceError(f"{where} is a node of a Redis Cluster: set STREAMREC_REDIS_CLUSTER=true, and a "
                               "STREAMREC_REDIS_PREFIX with a hash tag, for example {streamrec}")
        client.exists(f"{settings.redis_prefix}:stats")
    except redis.exceptions.RedisClusterException as exc:
        raise ServiceError(f"{where} did not answer as a Redis Cluster, and STREAMREC_REDIS_CLUSTER is set "
                           f"({exc}): unset it for a single Redis; on a cluster, user {user} needs CLUSTER SLOTS "
                           "(stream.stack.redis.worker_acl allows it)") from None
    except redis.AuthenticationError as exc:
        if not settings.redis_password.get_secret_value():
            raise ServiceError(f"{where} asks for a password and STREAMREC_REDIS_PASSWORD is empty "
                               f"(user {user}): set it") from None
        raise ServiceError(f"{where} refused the login of user {user} ({exc}): check STREAMREC_REDIS_USERNAME "
                           "and STREAMREC_REDIS_PASSWORD") from None
    except redis.exceptions.NoPermissionError as exc:
        raise ServiceError(f"{where}: user {user} may not use keys under STREAMREC_REDIS_PREFIX "
                           f"{settings.redis_prefix!r} ({exc}): check its ACL") from None
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise ServiceError(f"{where} is unreachable ({exc}): check STREAMREC_REDIS_URL") from None
    except redis.exceptions.ClusterDownError as exc:
        raise ServiceError(f"{where} says the cluster is down ({exc}): a cluster still forming, or a node "
                           "away; start the worker again once CLUSTER INFO shows cluster_state:ok on every "
                           "node") from None
    except redis.ResponseError as exc:
        raise ServiceError(f"{where} answered an error ({exc})") from None
    finally:
        if client is not None:
            client.close()


def _mode(hello) -> str:
    """The server's mode in a HELLO reply ("standalone", "cluster", "sentinel"), as a dict or a flat list."""
    if not isinstance(hello, dict):
        hello = dict(zip(hello[::2], hello[1::2]))
    mode = {(k.decode() if isinstance(k, bytes) else k): v for k, v in hello.items()}.get("mode", "")
    return mode.decode() if isinstance(mode, bytes) else str(mode)
