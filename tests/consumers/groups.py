"""Which consumer groups hold committed offsets on a topic (proof that a reader is read-only)."""

from __future__ import annotations

from runtime.kafka import KafkaSettings, make_admin


def groups_with_offsets_on(settings: KafkaSettings) -> set[str]:
    """Groups with committed offsets on the test's results topic. The broker is shared, so
    other tests' groups come and go; only a group that read this topic has offsets on it."""
    admin = make_admin(settings)
    try:
        found = set()
        for group in (g["group_id"] for g in admin.list_groups()):
            offsets = admin.list_group_offsets(group)  # {group: {TopicPartition: offset}}
            if any(tp.topic == settings.results_topic for tp in offsets.get(group, {})):
                found.add(group)
        return found
    finally:
        admin.close()
