"""The producers the platform makes compress their record batches with zstd (the event JSON shrinks many-fold)."""

from __future__ import annotations

from aiokafka.record.default_records import DefaultRecordBatch

from shared.events import samples
from shared.events.envelope import EventEnvelope, encode
from shared.messaging.kafka import make_producer

ZSTD = 4  # the Kafka protocol's compression codec id


async def test_a_batch_of_events_is_built_zstd_compressed_and_reads_back_intact() -> None:
    producer = make_producer("127.0.0.1:9")  # building a batch needs no broker
    events = [encode(EventEnvelope.wrap(samples.match_proposed())) for _ in range(50)]
    builder = producer.create_batch()
    await producer.stop()  # never started: this only marks it closed (an unclosed one warns when collected)
    for _, key, value, headers in events:
        assert builder.append(key=key, value=value, timestamp=None, headers=headers) is not None
    built = bytes(builder._builder.build())  # what send_batch puts on the wire

    batch = DefaultRecordBatch(built)
    assert batch.compression_type == ZSTD
    assert len(built) < sum(len(value) for _, _, value, _ in events) / 2
    records = list(batch)
    assert [(r.key, r.value) for r in records] == [(key, value) for _, key, value, _ in events]
    assert [list(r.headers) for r in records] == [headers for _, _, _, headers in events]
