"""An example subscriber to Mentorloom's event stream, for systems other than Mentorloom (HR, notifications, BI).

What it shows, in about a hundred lines:
- **its own consumer group** (`--group`): it gets every event, independently of Mentorloom's services;
- **CloudEvents binary mode**: attributes arrive as `ce_*` Kafka headers, the value is the JSON `data`;
- **validation against the published JSON Schemas** (`docs/events/schemas/<ce_type>.json`, plain `jsonschema`),
  so it needs no Mentorloom code at all; events of types it does not know are skipped, not failed;
- **zstd-compressed batches** (what Mentorloom's producers write): aiokafka reads them with `aiokafka[zstd]` installed;
- **redelivery**: Kafka delivers at least once, so it remembers the `ce_id` of every event it handled and ignores a
  repeat. Here the memory is a SQLite table written in the same transaction as the (example) side effect, and the
  offset is committed only after that transaction: a crash in between redelivers, and the table absorbs it.

Run it against the local stack (`./dev up` in another terminal; `./dev mentorloom status` shows the broker):

    .venv/bin/python docs/consumer-example/subscriber.py --bootstrap 127.0.0.1:<port> \
        --type org.mentorloom.match.accepted.v1

Against a secured cluster add `--security-protocol SASL_SSL --sasl-mechanism SCRAM-SHA-512 --sasl-username hr
--ca-file ca.crt` with the password in `KAFKA_SASL_PASSWORD` (never on the command line, where `ps` shows it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from aiokafka.helpers import create_ssl_context
from jsonschema import Draft202012Validator, ValidationError

SCHEMAS = Path(__file__).resolve().parents[1] / "events" / "schemas"
TOPICS = ("mentorloom.profiles.v1", "mentorloom.matching.v1", "mentorloom.scheduling.v1", "mentorloom.feedback.v1")


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    subject: str
    tenant: str
    data: dict[str, object]


class Subscriber:
    """Validates, de-duplicates by `ce_id`, and hands each new event to `handle` (here: a row in `handled`)."""

    def __init__(self, database: Path, types: Iterable[str] = ()) -> None:
        self.types = set(types)
        self.db = sqlite3.connect(database)
        self.db.execute("CREATE TABLE IF NOT EXISTS handled (ce_id TEXT PRIMARY KEY, type TEXT, subject TEXT)")
        self.validators = {p.stem: Draft202012Validator(json.loads(p.read_text())) for p in SCHEMAS.glob("*.json")}
        self.duplicates = 0
        self.invalid = 0

    def parse(self, headers: Iterable[tuple[str, bytes]], value: bytes | None) -> Event | None:
        attributes = {k: v.decode() for k, v in headers if k.startswith("ce_")}
        ce_type = attributes.get("ce_type", "")
        validator = self.validators.get(ce_type)
        if validator is None or (self.types and ce_type not in self.types):
            return None  # a type this consumer does not know (newer catalogue) or does not want: skip it
        try:
            data = json.loads(value or b"")
            validator.validate(data)
        except (ValueError, ValidationError):
            self.invalid += 1  # a real system would park it somewhere for a human; never crash the loop on it
            return None
        return Event(attributes["ce_id"], ce_type, attributes.get("ce_subject", ""), attributes["ce_tenantid"], data)

    def process(self, event: Event) -> bool:
        """Handle `event` exactly once; False when it was a redelivery."""
        with self.db:  # one transaction: the idempotency record and the side effect commit together
            inserted = self.db.execute(
                "INSERT INTO handled (ce_id, type, subject) VALUES (?, ?, ?) ON CONFLICT (ce_id) DO NOTHING",
                (event.id, event.type, event.subject),
            ).rowcount
            if not inserted:
                self.duplicates += 1
                return False
            self.handle(event)
        return True

    def handle(self, event: Event) -> None:
        """The example's side effect; replace with yours (it runs inside the de-duplication transaction)."""
        print(f"{event.type} {event.subject}")

    def handled(self) -> list[tuple[str, str, str]]:
        return list(self.db.execute("SELECT ce_id, type, subject FROM handled ORDER BY rowid"))


def connection_options(
    protocol: str = "PLAINTEXT",
    *,
    sasl_mechanism: str | None = None,
    sasl_username: str | None = None,
    ca_file: Path | None = None,
    environ: Mapping[str, str] = os.environ,
) -> dict[str, object]:
    """aiokafka's keyword arguments for the cluster's security: TLS (SSL, SASL_SSL) verifies the brokers against
    `ca_file` (the system's CAs without it); SASL takes the password from KAFKA_SASL_PASSWORD."""
    options: dict[str, object] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = create_ssl_context(cafile=str(ca_file) if ca_file else None)
    if protocol.startswith("SASL_"):
        password = environ.get("KAFKA_SASL_PASSWORD")
        if not (sasl_mechanism and sasl_username and password):
            raise SystemExit(f"{protocol} needs --sasl-mechanism, --sasl-username and KAFKA_SASL_PASSWORD")
        options |= {"sasl_mechanism": sasl_mechanism, "sasl_plain_username": sasl_username}
        options["sasl_plain_password"] = password
    return options


async def run(
    subscriber: Subscriber,
    bootstrap: str,
    group: str,
    stop: asyncio.Event,
    topics: Iterable[str] = TOPICS,
    connection: Mapping[str, object] | None = None,
) -> None:
    consumer = AIOKafkaConsumer(
        *topics,
        **(connection or {}),
        bootstrap_servers=bootstrap,
        group_id=group,  # its own group: it never takes events away from anyone else
        enable_auto_commit=False,  # offsets are committed after the events are handled, never before
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=500)
            for messages in batches.values():
                for message in messages:
                    event = subscriber.parse(message.headers, message.value)
                    if event is not None:
                        subscriber.process(event)
            if batches:
                await consumer.commit()
    finally:
        await consumer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers (mentorloom status shows them)")
    parser.add_argument("--group", default="example-subscriber", help="this system's own consumer group")
    parser.add_argument("--database", type=Path, default=Path("example-subscriber.sqlite3"))
    parser.add_argument("--type", action="append", default=[], help="only these ce_types (repeat)")
    parser.add_argument(
        "--security-protocol", default="PLAINTEXT", choices=["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
    )
    parser.add_argument("--sasl-mechanism", choices=["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
    parser.add_argument("--sasl-username")
    parser.add_argument("--ca-file", type=Path, help="the brokers' CA certificate (PEM); default: the system's CAs")
    args = parser.parse_args()
    connection = connection_options(
        args.security_protocol,
        sasl_mechanism=args.sasl_mechanism,
        sasl_username=args.sasl_username,
        ca_file=args.ca_file,
    )
    stop = asyncio.Event()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(Subscriber(args.database, args.type), args.bootstrap, args.group, stop, connection=connection))


if __name__ == "__main__":
    main()
