"""Topic configs: compaction and the retention settings of the topics that name users."""

from stream.config import TOPIC_NAMES, Settings
from stream.topics import COMPACTED, RETENTION, topic_specs


def test_every_topic_kept_by_time_that_names_users_has_a_retention_setting():
    s = Settings(topic_prefix="x.", event_retention_hours=1, recommendation_retention_hours=2, dlq_retention_hours=3)
    specs = topic_specs(s)
    assert set(specs) == {f"x.{n}" for n in TOPIC_NAMES}
    for name in ("clicks", "dwell", "skips", "impressions", "purchases", "rec-requests", "user-erasures"):
        assert specs[f"x.{name}"] == {"retention.ms": "3600000", "segment.ms": "3600000"}
    assert specs["x.recommendations"] == {"retention.ms": "7200000", "segment.ms": "7200000"}
    assert specs["x.events.dlq"] == {"retention.ms": "10800000", "segment.ms": "10800000"}
    # a segment is rolled within the retention (at most Kafka's default week), so it can be deleted
    long = topic_specs(Settings(event_retention_hours=24 * 90))["clicks"]
    assert long == {"retention.ms": str(90 * 86_400_000), "segment.ms": str(7 * 86_400_000)}
    for name in COMPACTED:
        assert specs[f"x.{name}"] == {"cleanup.policy": "compact"}
    assert not set(RETENTION) & set(COMPACTED)


def test_every_interaction_type_has_a_topic_kept_by_event_retention():
    from stream.contract import INTERACTION_TYPES, TOPIC_OF

    assert TOPIC_OF["purchase"] == "purchases"
    for event_type in INTERACTION_TYPES:
        assert TOPIC_OF[event_type] in TOPIC_NAMES and RETENTION[TOPIC_OF[event_type]] == "event_retention_hours"
