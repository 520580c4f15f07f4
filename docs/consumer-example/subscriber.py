"""An example subscriber to Mentorloom's event stream, for systems other than Mentorloom (HR, notifications, BI).

What it shows:
- **its own consumer group** (`--group`): it gets every event, independently of Mentorloom's services. A new group
  starts at the oldest retained event (`--start-from beginning`) or at the end (`--start-from now`); a group that
  has committed offsets always resumes after them;
- **CloudEvents binary mode**: attributes arrive as `ce_*` Kafka headers, the value is the JSON `data`;
- **validation against the published JSON Schemas** (`docs/events/schemas/<ce_type>.json`, plain `jsonschema`),
  so it needs no Mentorloom code at all. As a tolerant reader it ignores fields it does not know (new optional
  fields arrive within v1) and skips event types it does not know (a newer catalogue);
- **records that break the contract are set aside**, never raised: a raise would stop the loop on the same record
  after every restart. Each is written with its topic, partition, offset and reason to the `set_aside` table and
  reported on stderr, for a human to look at (and re-read from Kafka, e.g. after updating the schemas);
- **zstd-compressed batches** (what Mentorloom's producers write): aiokafka reads them with `aiokafka[zstd]` installed;
- **redelivery**: Kafka delivers at least once, so it remembers the `ce_id` of every event it handled and ignores a
  repeat. Here the memory is a SQLite table written in the same transaction as the (example) side effect, and the
  offset is committed only after that transaction: a crash in between redelivers, and the table absorbs it;
- **stopping**: Ctrl-C or SIGTERM finishes the batch in hand, commits it, leaves the group and exits 0.

Run it against the local stack (`./dev up` in another terminal; `./dev mentorloom status` shows the broker):

    .venv/bin/python docs/consumer-example/subscriber.py --bootstrap 127.0.0.1:<port> \\
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
import signal
import sqlite3
import sys
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from aiokafka.helpers import create_ssl_context
from aiokafka.structs import ConsumerRecord
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import best_match

SCHEMAS = Path(__file__).resolve().parents[1] / "events" / "schemas"
TOPICS = ("mentorloom.profiles.v1", "mentorloom.matching.v1", "mentorloom.scheduling.v1", "mentorloom.feedback.v1")

# The formats the schemas use. Availability times are local wall-clock times without an offset, so their schema
# has no format (RFC 3339's "time" requires an offset; docs/events/README.md).
FORMATS = FormatChecker(formats=("uuid", "date", "email"))


@FORMATS.checks("date-time", raises=ValueError)
def _instant(value: object) -> bool:
    # jsonschema checks date-time only with the optional rfc3339-validator installed; the standard library will do.
    return not isinstance(value, str) or ("T" in value.upper() and datetime.fromisoformat(value).tzinfo is not None)


def tolerant(schema: object) -> object:
    """The schema without `additionalProperties: false`: a field added within v1 is ignored, not refused."""
    if isinstance(schema, dict):
        return {k: tolerant(v) for k, v in schema.items() if not (k == "additionalProperties" and v is False)}
    if isinstance(schema, list):
        return [tolerant(v) for v in schema]
    return schema


def known_types() -> list[str]:
    return sorted(path.stem for path in SCHEMAS.glob("*.json"))


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    subject: str
    tenant: str
    data: dict[str, object]


class InvalidRecordError(Exception):
    """A record of a known type that breaks the contract; the message says how."""


class Subscriber:
    """Validates, de-duplicates by `ce_id`, and hands each new event to `handle` (here: a row in `handled`)."""

    def __init__(self, database: Path, types: Iterable[str] = ()) -> None:
        self.types = set(types)
        self.db = sqlite3.connect(database)
        self.db.execute("CREATE TABLE IF NOT EXISTS handled (ce_id TEXT PRIMARY KEY, type TEXT, subject TEXT)")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS set_aside (topic TEXT, kafka_partition INTEGER, kafka_offset INTEGER,"
            " type TEXT, reason TEXT, PRIMARY KEY (topic, kafka_partition, kafka_offset))"
        )
        self.validators = {
            p.stem: Draft202012Validator(tolerant(json.loads(p.read_text())), format_checker=FORMATS)
            for p in SCHEMAS.glob("*.json")
        }
        self.duplicates = 0
        self.invalid = 0

    def receive(self, record: ConsumerRecord[bytes, bytes]) -> None:
        """Handle one Kafka record; one that breaks the contract is set aside, never raised."""
        try:
            event = self.parse(record.headers, record.value)
        except InvalidRecordError as exc:
            self.set_aside_record(record, str(exc))
            return
        if event is not None:
            self.process(event)

    def parse(self, headers: Sequence[tuple[str, bytes | None]], value: bytes | None) -> Event | None:
        """The event in a record, or None for a type this consumer does not know or want; raises `InvalidRecordError`."""
        attributes = {k: (v or b"").decode("utf-8", "replace") for k, v in headers if k.startswith("ce_")}
        ce_type = attributes.get("ce_type", "")
        validator = self.validators.get(ce_type)
        if validator is None or (self.types and ce_type not in self.types):
            return None  # a type this consumer does not know (newer catalogue) or does not want: skip it
        for header in ("ce_id", "ce_tenantid"):
            try:
                uuid.UUID(attributes.get(header, ""))
            except ValueError:
                raise InvalidRecordError(f"header {header} is missing or no UUID") from None
        try:
            data = json.loads(value or b"")
        except (ValueError, RecursionError) as exc:
            raise InvalidRecordError(f"value is not JSON: {type(exc).__name__}") from None
        error = best_match(validator.iter_errors(data))
        if error is not None:
            raise InvalidRecordError(f"{'/'.join(map(str, error.absolute_path)) or 'data'}: {error.message}"[:500])
        if uuid.UUID(attributes["ce_tenantid"]) != uuid.UUID(data["tenant_id"]):
            raise InvalidRecordError("header ce_tenantid differs from data.tenant_id")
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

    def set_aside_record(self, record: ConsumerRecord[bytes, bytes], reason: str) -> None:
        """Keep where the record is and why it was refused (not its value, which may hold personal data)."""
        self.invalid += 1
        ce_type = next((v.decode("utf-8", "replace") for k, v in record.headers if k == "ce_type" and v), "")
        with self.db:
            self.db.execute(
                "INSERT INTO set_aside VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (record.topic, record.partition, record.offset, ce_type, reason),
            )
        print(f"set aside {record.topic}:{record.partition}:{record.offset} {ce_type}: {reason}", file=sys.stderr)

    def handled(self) -> list[tuple[str, str, str]]:
        return list(self.db.execute("SELECT ce_id, type, subject FROM handled ORDER BY rowid"))

    def set_aside(self) -> list[tuple[str, int, int, str, str]]:
        return list(self.db.execute("SELECT * FROM set_aside ORDER BY rowid"))


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
    start_from: str = "beginning",
) -> None:
    consumer = AIOKafkaConsumer(
        *topics,
        **(connection or {}),
        bootstrap_servers=bootstrap,
        group_id=group,  # its own group: it never takes events away from anyone else
        enable_auto_commit=False,  # offsets are committed after the events are handled, never before
        auto_offset_reset="earliest" if start_from == "beginning" else "latest",  # only for a group's first start
    )
    try:
        await consumer.start()
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=500)
            for messages in batches.values():
                for message in messages:
                    subscriber.receive(message)
            if batches:
                await consumer.commit()
    finally:
        await consumer.stop()  # also after a failed start: it closes the connections (and leaves the group)


async def serve(subscriber: Subscriber, args: argparse.Namespace, connection: Mapping[str, object]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def stop_soon(signum: signal.Signals) -> None:
        stop.set()  # the loop ends after the batch in hand; a second signal interrupts at once
        loop.remove_signal_handler(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop_soon, signum)
    await run(subscriber, args.bootstrap, args.group, stop, args.topic or TOPICS, connection, args.start_from)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="environment: KAFKA_SASL_PASSWORD  the SASL password (with the SASL_ protocols)\n"
        "exit codes: 0 stopped by Ctrl-C or SIGTERM, 1 Kafka or the database failed, 2 usage error",
    )
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers (mentorloom status shows them)")
    parser.add_argument("--group", default="example-subscriber", help="this system's own consumer group (%(default)s)")
    parser.add_argument(
        "--database",
        type=Path,
        default=Path("example-subscriber.sqlite3"),
        help="SQLite file of handled ce_ids and set-aside records (%(default)s)",
    )
    parser.add_argument("--type", action="append", default=[], help="only this ce_type (repeat); default: all")
    parser.add_argument(
        "--topic", action="append", default=[], help=f"only this topic (repeat); default: {', '.join(TOPICS)}"
    )
    parser.add_argument(
        "--start-from",
        choices=["beginning", "now"],
        default="beginning",
        help="where a new group starts: the oldest retained event or the end (%(default)s); "
        "a group with committed offsets resumes after them",
    )
    parser.add_argument(
        "--security-protocol",
        default="PLAINTEXT",
        choices=["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"],
        help="how to talk to the brokers: SSL encrypts, SASL_ authenticates (%(default)s)",
    )
    parser.add_argument(
        "--sasl-mechanism", choices=["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"], help="with the SASL_ protocols"
    )
    parser.add_argument("--sasl-username", help="with the SASL_ protocols; the password is read from the environment")
    parser.add_argument("--ca-file", type=Path, help="the brokers' CA certificate (PEM); default: the system's CAs")
    return parser


def main() -> None:
    parser = make_parser()
    args = parser.parse_args()
    unknown = [t for t in args.type if t not in known_types()]
    if unknown:
        parser.error(f"unknown --type {', '.join(map(repr, unknown))}; the catalogue has: {', '.join(known_types())}")
    try:
        connection = connection_options(
            args.security_protocol,
            sasl_mechanism=args.sasl_mechanism,
            sasl_username=args.sasl_username,
            ca_file=args.ca_file,
        )
    except OSError as exc:  # ssl.SSLError is one too: a file that is no PEM certificate
        parser.error(f"--ca-file {args.ca_file}: {exc.strerror or exc}")
    try:
        subscriber = Subscriber(args.database, args.type)
    except sqlite3.Error as exc:
        raise SystemExit(f"subscriber: cannot open the database {args.database}: {exc}") from None
    try:
        with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C while the first one stops the loop
            asyncio.run(serve(subscriber, args, connection))
    except KafkaError as exc:
        raise SystemExit(f"subscriber: Kafka at {args.bootstrap} failed: {exc}") from None


if __name__ == "__main__":
    main()
