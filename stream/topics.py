"""Creating streamrec's topics with the right partitions, cleanup policies and retention.

Retention (``retention.ms``) is set on the topics whose records name users and are kept by time:
the interaction event topics (clicks, dwell, skips, impressions, purchases), rec-requests and user-erasures (STREAMREC_EVENT_RETENTION_HOURS), recommendations
(STREAMREC_RECOMMENDATION_RETENTION_HOURS) and the dead-letter topic
(STREAMREC_DLQ_RETENTION_HOURS). Kafka deletes whole segments, once a segment's newest record is
older than the retention, and rolls a quiet topic's segment only after ``segment.ms``: so
``segment.ms`` is set to the retention too (at most Kafka's default 7 days), and a record is
gone at most about twice the retention after it was written (plus the broker's 5-minute check).
:func:`ensure_topics` sets both on the topics it creates and changes them on existing ones whose
values differ, so a new setting applies at the next ``streamrec topics`` or worker start. The
compacted topics keep each key's last record.

>>> from stream.config import Settings
>>> specs = topic_specs(Settings(event_retention_hours=24, dlq_retention_hours=0.5))
>>> specs["clicks"], specs["users"]
({'retention.ms': '86400000', 'segment.ms': '86400000'}, {'cleanup.policy': 'compact'})
>>> topic_specs(Settings(recommendation_retention_hours=24 * 30))["recommendations"]
{'retention.ms': '2592000000', 'segment.ms': '604800000'}
"""

from __future__ import annotations

import sys
import time

from stream.config import TOPIC_NAMES, Settings
from stream.contract import INTERACTION_TYPES, TOPIC_OF

__all__ = ["ensure_topics", "drop_topics", "COMPACTED", "RETENTION", "topic_specs"]

#: Latest value per key is all that matters: profiles, the catalogue, the item rows of the model.
COMPACTED = ("users", "items", "item-factors")

#: Topics kept by time whose records name users -> the setting of their retention, in hours.
RETENTION = {
    **{name: "event_retention_hours" for name in (*(TOPIC_OF[t] for t in INTERACTION_TYPES), "rec-requests",
                                                  "user-erasures")},
    "recommendations": "recommendation_retention_hours",
    "events.dlq": "dlq_retention_hours",
}


_DEFAULT_SEGMENT_MS = 7 * 24 * 3_600_000


def topic_specs(settings: Settings) -> dict[str, dict[str, str]]:
    """Real topic name -> topic config."""
    specs: dict[str, dict[str, str]] = {}
    for name in TOPIC_NAMES:
        conf = {"cleanup.policy": "compact"} if name in COMPACTED else {}
        if name in RETENTION:
            ms = round(getattr(settings, RETENTION[name]) * 3_600_000)
            conf["retention.ms"] = str(ms)
            conf["segment.ms"] = str(min(ms, _DEFAULT_SEGMENT_MS))
        specs[settings.topic(name)] = conf
    return specs


def ensure_topics(settings: Settings, *, timeout: float = 30.0, quiet: bool = False) -> list[str]:
    """Create the topics that do not exist yet; returns the ones created."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(settings.kafka_client_config())
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = topic_specs(settings)
    new = [
        NewTopic(name, num_partitions=settings.partitions, replication_factor=settings.replication_factor, config=conf)
        for name, conf in wanted.items()
        if name not in existing
    ]
    created = []
    for name, fut in (admin.create_topics(new, operation_timeout=timeout).items() if new else []):
        try:
            fut.result(timeout)
            created.append(name)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    _wait_for_leaders(admin, list(wanted), settings.partitions, timeout)
    changed = _align_retention(admin, {n: c for n, c in wanted.items() if n in existing}, timeout)
    if created and not quiet:
        print(f"created topics: {', '.join(sorted(created))}", file=sys.stderr)
    if changed and not quiet:
        print(f"retention changed: {', '.join(f'{n} {ms} ms' for n, ms in sorted(changed.items()))}", file=sys.stderr)
    return created


def _align_retention(admin, existing: dict[str, dict[str, str]], timeout: float) -> dict[str, str]:
    """Set ``retention.ms`` and ``segment.ms`` on existing topics where they differ from the
    wanted values; returns topic -> the retention set."""
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

    names = ("retention.ms", "segment.ms")
    wanted = {name: {k: conf[k] for k in names} for name, conf in existing.items() if "retention.ms" in conf}
    if not wanted:
        return {}
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in wanted]
    current = {res.name: fut.result(timeout) for res, fut in admin.describe_configs(resources).items()}
    stale = {name: conf for name, conf in wanted.items()
             if any(current[name].get(k) is None or current[name][k].value != v for k, v in conf.items())}
    if stale:
        alters = [ConfigResource(ResourceType.TOPIC, name, incremental_configs=[
            ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in conf.items()])
            for name, conf in stale.items()]
        for fut in admin.incremental_alter_configs(alters).values():
            fut.result(timeout)
    return {name: conf["retention.ms"] for name, conf in stale.items()}


def _wait_for_leaders(admin, names: list[str], partitions: int, timeout: float) -> None:
    """Wait until every topic's partitions have leaders: a consumer that joins its group before
    that can be handed an empty assignment and keep it (seen with a freshly started broker)."""
    deadline = time.monotonic() + timeout
    while True:
        meta = admin.list_topics(timeout=timeout).topics
        pending = [n for n in names
                   if n not in meta or meta[n].error is not None or len(meta[n].partitions) < partitions
                   or any(p.leader < 0 for p in meta[n].partitions.values())]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics without leaders after {timeout:.0f} s: {', '.join(sorted(pending))}")
        time.sleep(0.2)


def drop_topics(settings: Settings) -> None:
    """Delete a namespace's topics (``topic_prefix``) and the Faust app's internal ones (a
    throw-away run's, a test's); a broker that is down has nothing to clean."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    if not settings.topic_prefix:
        raise ValueError("drop_topics: refusing to drop topics without a topic_prefix (that would be every topic)")
    admin = AdminClient(settings.kafka_client_config())
    try:
        topics = admin.list_topics(timeout=10).topics
    except KafkaException:
        return
    names = [t for t in topics if t.startswith(settings.topic_prefix) or t.startswith(f"{settings.app_id}-")]
    if names:
        for future in admin.delete_topics(names, operation_timeout=30).values():
            try:
                future.result()
            except Exception:  # already gone, or the broker is stopping: nothing to keep
                pass
