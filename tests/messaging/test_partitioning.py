"""The relay's batch partitioner must agree with aiokafka's DefaultPartitioner key for key."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner, murmur2
from hypothesis import given
from hypothesis import strategies as st

from shared.messaging.partitioning import murmur2 as batch_murmur2
from shared.messaging.partitioning import partitions_for_keys

keys = st.lists(st.binary(min_size=0, max_size=80), min_size=1, max_size=40)


@given(keys)
def test_the_batch_hash_equals_the_java_compatible_murmur2_of_every_key(batch: list[bytes]) -> None:
    assert [int(h) for h in batch_murmur2(batch)] == [murmur2(key) for key in batch]


@given(keys, st.lists(st.integers(min_value=0, max_value=500), min_size=1, max_size=64, unique=True))
def test_every_key_gets_the_partition_the_default_partitioner_would_choose(
    batch: list[bytes], partition_ids: list[int]
) -> None:
    partitions = sorted(partition_ids)
    expected = [DefaultPartitioner()(key, partitions, partitions) for key in batch]
    assert partitions_for_keys(batch, partitions) == expected


def test_keys_of_mixed_lengths_keep_their_own_positions() -> None:
    batch = [b"a", b"match-0001", b"", b"bb", b"match-0002", b"a"]
    assert partitions_for_keys(batch, [0, 1, 2, 3, 4, 5]) == [
        DefaultPartitioner()(key, [0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5]) for key in batch
    ]


def test_an_empty_batch_has_no_partitions() -> None:
    assert partitions_for_keys([], [0, 1]) == []
