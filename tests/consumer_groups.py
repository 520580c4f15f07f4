"""Consumer groups that start where the shared contract topics end now.

Every test of a session shares one broker, and the contract's topics (e.g. mentorloom.matching.v1) collect every
event all earlier tests published. A new group of a ConsumerRunner starts at the earliest record, so a test that
runs a service's consumer would wait behind (and project) everything before it: how long that takes depends on the
order of the tests, and other tests' matches end up in its database.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.messaging.kafka import ensure_topics, seek_past_the_last_record


async def start_group_at_the_end(bootstrap: str, group: str, topics: Sequence[str]) -> None:
    """Commit each partition's current end as the position of ``group`` (a group not yet used), so a consumer of
    that group reads exactly what is published from now on. Call it before the test publishes anything."""
    await ensure_topics(bootstrap, topics)
    # A short fetch wait: the broker answers a fetch of an empty partition (which reports its end) after it.
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, fetch_max_wait_ms=50
    )
    try:
        await consumer.start()
        await consumer.topics()  # the cluster's metadata, which partitions_for_topic reads
        partitions = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        consumer.assign(partitions)  # no group membership: the group's offsets are only written
        await seek_past_the_last_record(consumer, partitions)
        await consumer.commit({partition: await consumer.position(partition) for partition in partitions})
    finally:
        await consumer.stop()
