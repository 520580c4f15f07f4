"""Decoding cost per event against how many decoded events a consumer holds at once (no servers needed).

    python -m benchmarks.consumer_decode [--events 30000] [--rounds 3] [--parts-rounds 15]

Why the consumer decodes a fetched batch in slices (`shared.messaging.consumer.APPLY_SLICE`): a decoded
MatchProposed is ~7 KB of Python objects, and decoding into memory that is still held, instead of into memory just
freed, misses the core's cache. Each way decodes the same encoded events with the contract's `decode` and keeps the
decoded events as long as the consumer would; the CPU per event is the median of the rounds. Baseline: the
consumer's former way, a whole 1,000-event batch decoded while the previous batch (in flight) was still held.

A second table splits one event's serialisation into its parts, against the floor of parsing its JSON with orjson
(no validation): how much of a decode the contract's validation is, and how much the envelope around it.
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc
from collections.abc import Callable, Sequence

import orjson

from benchmarks.messaging_throughput import sample_event
from benchmarks.report import machine_line, write_section
from shared.events.envelope import EventEnvelope, decode, encode, encode_data
from shared.events.models import EventData, MatchProposed
from shared.messaging.outbox import message_for
from shared.service import tune_garbage_collector

Message = tuple[Sequence[tuple[str, bytes]], bytes]

# (label, events decoded and held together, whether the previous group is still held while the next is decoded)
WAYS = [
    ("whole batch of 1,000, the previous batch still held (former pipeline; baseline)", 1000, True),
    ("whole batch of 1,000, nothing else held", 1000, False),
    ("slices of 500", 500, True),
    ("slices of 250, the previous slice held while it is applied (the consumer now)", 250, True),
    ("slices of 100", 100, True),
]


def decode_cpu_us(messages: Sequence[Message], group: int, hold_previous: bool) -> float:
    """CPU µs per event to decode every message, `group` at a time, holding each group as a consumer would."""
    previous: list[EventEnvelope[EventData]] | None = None
    started = time.process_time()
    for start in range(0, len(messages), group):
        current = [decode(headers, value) for headers, value in messages[start : start + group]]
        previous = current if hold_previous else None
        del current
    elapsed = time.process_time() - started
    del previous
    return elapsed / len(messages) * 1e6


def serialisation_parts(messages: Sequence[Message], rounds: int) -> list[tuple[str, float, float]]:
    """(label, min, median) CPU µs per event of each part of one event's serialisation, in interleaved rounds."""
    events = [decode(headers, value) for headers, value in messages]
    parts: list[tuple[str, Callable[[], object]]] = [
        (
            "parse the data's JSON only (`orjson.loads`, no validation; the floor)",
            lambda: [orjson.loads(v) for _, v in messages],
        ),
        (
            "validate the data (`MatchProposed.model_validate_json`)",
            lambda: [MatchProposed.model_validate_json(v) for _, v in messages],
        ),
        (
            "decode: headers, envelope and data (`decode`, what the consumer runs)",
            lambda: [decode(h, v) for h, v in messages],
        ),
        (
            "write the data's JSON with pydantic (`model_dump_json`; the baseline of the next row)",
            lambda: [e.data.model_dump_json().encode() for e in events],
        ),
        (
            "write the data's JSON (`encode_data`: orjson over the model's fields, byte for byte the row above)",
            lambda: [encode_data(e.data) for e in events],
        ),
        (
            "encode: wrap the data in an envelope and encode it (`message_for`, what the outbox writer runs)",
            lambda: [message_for(EventEnvelope.wrap(e.data)) for e in events],
        ),
    ]
    samples: dict[str, list[float]] = {label: [] for label, _ in parts}
    for _ in range(rounds):
        for label, part in parts:
            started = time.process_time()
            part()
            samples[label].append((time.process_time() - started) / len(messages) * 1e6)
    return [(label, min(values), statistics.median(values)) for label, values in samples.items()]


def decoded_bytes_per_event(messages: Sequence[Message]) -> float:
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    held = [decode(headers, value) for headers, value in messages[:1000]]
    size = (tracemalloc.get_traced_memory()[0] - before) / len(held)
    tracemalloc.stop()
    return size


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parts-rounds", type=int, default=15, help="interleaved rounds of the parts table")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    messages: list[Message] = []
    for _ in range(args.events):
        _, _, value, headers = encode(EventEnvelope.wrap(sample_event()))
        messages.append((headers, value))
    size = decoded_bytes_per_event(messages)
    tune_garbage_collector()  # as every service process does
    # Rounds interleave the ways, so a noisy moment of the machine hits all of them alike.
    samples: dict[str, list[float]] = {label: [] for label, _, _ in WAYS}
    for _ in range(args.rounds):
        for label, group, hold in WAYS:
            samples[label].append(decode_cpu_us(messages, group, hold))
    parts = serialisation_parts(messages[:5000], args.parts_rounds)
    floor = parts[0][1]
    parts_rows = "\n".join(
        f"| {label} | {low:.1f} | {median:.1f} | {low / floor:.1f}× |" for label, low, median in parts
    )
    pydantic_json, fast_json = parts[3], parts[4]  # the two rows writing the data's JSON
    medians = {label: statistics.median(values) for label, values in samples.items()}
    baseline = medians[WAYS[0][0]]
    rows = "\n".join(f"| {label} | {medians[label]:.1f} | {baseline / medians[label]:.2f}× |" for label, _, _ in WAYS)
    md = f"""{machine_line()}
{args.events:,} MatchProposed events (encoded by the contract) decoded with `shared.events.envelope.decode`; one
decoded event holds {size / 1024:.1f} KiB of Python objects. Median of {args.rounds} interleaved rounds.
Command: `python -m benchmarks.consumer_decode --events {args.events}`.

| decoded together | CPU µs per event | speed vs baseline |
|---|---:|---:|
{rows}

In the consumer itself the gain is smaller than here, because the fetched records (~2.5 KB each, the whole batch)
stay in memory too: see the Messaging section.

Where one event's serialisation goes (5,000 events, {args.parts_rounds} interleaved rounds; the minimum is the least
disturbed round on a shared machine):

| part | CPU µs per event, min | median | × the JSON parse |
|---|---:|---:|---:|
{parts_rows}

Writing the data's JSON: `encode_data` {fast_json[1]:.1f} µs against pydantic's `model_dump_json` {pydantic_json[1]:.1f} µs
(minimum rounds), {pydantic_json[1] / fast_json[1]:.2f}× as fast; tests/contract/test_envelope.py checks the bytes are the same.
"""
    print(md)
    if not args.no_write:
        write_section("Consumer: decoding a batch in slices", md)


if __name__ == "__main__":
    main()
