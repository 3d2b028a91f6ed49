"""The one place Faust apps are configured: the worker's (stream/app.py) and the benchmark's
no-op app (stream/benchmark/noop.py) are both built here, with the same Faust settings, so the
no-op agent is a fair reference for the worker; and the one command line that runs them."""

from __future__ import annotations

import logging
import ssl
import sys
from typing import Any

import faust

from stream.config import Settings

__all__ = ["StreamrecApp", "build_app", "faust_settings", "worker_argv"]

log = logging.getLogger(__name__)


def _credentials(s: Settings) -> Any:
    """Faust's broker credentials for the security settings (None for PLAINTEXT). TLS contexts
    verify the broker's certificate and host name against STREAMREC_KAFKA_SSL_CAFILE, or the
    system's CAs when it is empty."""
    if s.kafka_security_protocol == "PLAINTEXT":
        return None
    context = None
    if s.kafka_security_protocol.endswith("SSL"):
        context = ssl.create_default_context(cafile=s.kafka_ssl_cafile or None)
    if s.kafka_security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=s.kafka_sasl_username,
            password=s.kafka_sasl_password.get_secret_value(),
            mechanism=s.kafka_sasl_mechanism,
            ssl_context=context,
        )
    return faust.SSLCredentials(context)


def faust_settings(s: Settings) -> dict[str, Any]:
    """The Faust settings (``faust.App`` keyword arguments) of every streamrec Faust app.

    Examples
    --------
    >>> conf = faust_settings(Settings(kafka_port=19092, worker_id="w1", faust_cython=True))
    >>> conf["broker"], conf["consumer_group_instance_id"], conf["cython_optimizations"]
    (['kafka://localhost:19092'], 'w1', True)
    >>> faust_settings(Settings(faust_monitor="quiet"))["Monitor"]
    'stream.faustapp.monitor:QuietMonitor'
    """
    return dict(
        broker=[f"kafka://{host.strip()}" for host in s.bootstrap_servers.split(",") if host.strip()],
        broker_credentials=_credentials(s),
        datadir=str(s.datadir_path),
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=s.partitions,
        topic_replication_factor=s.replication_factor,
        topic_disable_leader=True,
        web_host=s.web_host,
        web_bind=s.web_host,  # bind where we advertise (Faust binds 0.0.0.0 otherwise)
        web_port=s.web_port,
        # Faust's own /router and /table views: no tables here, and /router shows every worker's URL.
        web_router_enabled=False,
        web_tables_enabled=False,
        # 500 records a poll avoids the wait_empty hangs seen with larger polls.
        broker_max_poll_records=500,
        # aiokafka drains a fetch partition by partition: small fetches keep the topics close in event time
        consumer_max_fetch_size=s.consumer_fetch_bytes,
        consumer_auto_offset_reset="earliest",
        consumer_group_instance_id=s.worker_id or None,
        broker_session_timeout=s.session_timeout_seconds,
        broker_heartbeat_interval=min(3.0, s.session_timeout_seconds / 3),
        producer_linger=0.005,
        cython_optimizations=s.faust_cython,
        Monitor="stream.faustapp.monitor:QuietMonitor" if s.faust_monitor == "quiet" else "faust.sensors:Monitor",
    )


class StreamrecApp(faust.App):
    """``faust.App`` whose consumer is :class:`stream.faustapp.drain.LeanConsumer` when
    ``lean_drain`` is on and the installed Faust is the one that shim was written for."""

    def __init__(self, id: str, *, lean_drain: bool = False, **options: Any) -> None:
        self.lean_drain = lean_drain
        super().__init__(id, **options)

    def _new_transport(self) -> Any:
        if self.lean_drain:
            from stream.faustapp.drain import LeanTransport, why_not_applicable

            reason = why_not_applicable()
            if reason is None:
                return LeanTransport(self.conf.broker_consumer, self)
            log.warning("STREAMREC_FAUST_LEAN_DRAIN is on but %s: using Faust's own fetch loop", reason)
        return super()._new_transport()


def build_app(app_id: str, s: Settings, **extra: Any) -> StreamrecApp:
    """A Faust app with streamrec's Faust settings; ``extra`` adds app-specific ones
    (autodiscovery, origin), never a Faust performance setting."""
    return StreamrecApp(app_id, lean_drain=s.faust_lean_drain, **faust_settings(s), **extra)


def worker_argv(s: Settings, app_module: str) -> list[str]:
    """The command line that runs a Faust app module as a worker with these settings.

    >>> worker_argv(Settings(event_loop="uvloop", web_port=6070, datadir="/tmp/w"), "stream.app")[2:]
    ['faust', '-A', 'stream.app', '--loop', 'uvloop', '--datadir', '/tmp/w', 'worker', '-l', 'info', '--web-port', '6070']
    """
    return [sys.executable, "-m", "faust", "-A", app_module, "--loop", s.event_loop, "--datadir", str(s.datadir_path),
            "worker", "-l", s.log_level, "--web-port", str(s.web_port)]
