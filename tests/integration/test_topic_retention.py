"""Retention of the topics that name users is a setting of ensure_topics: set when a topic is
created, changed on an existing topic when the setting changes, and left alone on the compacted
ones."""

from __future__ import annotations

import pytest

from tests.helpers import wait_for

pytestmark = pytest.mark.integration


def _retention(settings, names, config="retention.ms") -> dict[str, tuple[str, bool]]:
    """topic -> (its ``config``, whether it is set on the topic itself)."""
    from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, ResourceType

    admin = AdminClient(settings.kafka_client_config())
    futures = admin.describe_configs([ConfigResource(ResourceType.TOPIC, settings.topic(n)) for n in names])
    out = {}
    for resource, future in futures.items():
        entry = future.result(30)[config]
        out[resource.name.removeprefix(settings.topic_prefix)] = (
            entry.value, entry.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    return out


def test_retention_is_set_at_creation_and_follows_the_settings(isolated):
    from stream.topics import ensure_topics

    names = ["clicks", "dwell", "skips", "impressions", "purchases", "rec-requests", "recommendations", "events.dlq",
             "users", "items", "item-factors"]
    created = _retention(isolated, names)  # `isolated` created them with the defaults: 7 days
    for name in names[:8]:
        assert created[name] == ("604800000", True), name
    for name in names[8:]:
        assert not created[name][1], f"{name} is compacted: no retention of its own"

    changed = isolated.model_copy(update={"event_retention_hours": 2.0, "recommendation_retention_hours": 24.0,
                                          "dlq_retention_hours": 0.5})
    assert ensure_topics(changed, quiet=True) == []  # nothing created: the existing topics changed
    wanted = {**{n: "7200000" for n in names[:6]}, "recommendations": "86400000", "events.dlq": "1800000"}
    # the change goes through the broker's metadata log: visible within moments
    now = wait_for(lambda: (r := _retention(isolated, names)) and {n: r[n][0] for n in names[:8]} == wanted and r,
                   10, "the new retention on every topic that names users")
    assert all(not now[n][1] for n in names[8:])
    segments = _retention(isolated, names, "segment.ms")
    assert {n: segments[n] for n in names[:8]} == {n: (ms, True) for n, ms in wanted.items()}
