"""`llmops tail`: print a topic's events as JSON lines, decoded and validated, as they arrive.

Reads Kafka directly (`$KAFKA_BOOTSTRAP_SERVERS`, topic names with `$KAFKA_TOPIC_PREFIX`)
without a consumer group: partitions are assigned, nothing is committed, so tailing never
moves any service's offsets. Each event is validated with its topic's codec; a record that
does not decode is printed as an object with an `error` field, and the tail goes on.

Exit status: 0 at --max, at the end with --no-follow, or on Ctrl-C; 2 for usage errors,
an unknown topic or an unreachable broker.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import logging
import os
import re
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import NoneType, UnionType
from typing import Any, Union, get_args, get_origin

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from pydantic import BaseModel

from llmops.bus.eventbus import DLQ_HEADERS
from llmops.cli.client import CliError
from llmops.events.base import TopicContract
from llmops.events.catalog import CONTRACTS
from llmops.events.codec import EventCodec, EventDecodeError
from llmops.events.envelope import Envelope
from llmops.settings import WireFormat

BOOTSTRAP_VARIABLE = "KAFKA_BOOTSTRAP_SERVERS"
PREFIX_VARIABLE = "KAFKA_TOPIC_PREFIX"
DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
DLQ_SUFFIX = ".dlq"
_POLL_MS = 500

FILTER_HELP = """\
filters (--filter, repeatable; an event is printed when all of them hold):
  PATH OP VALUE, PATH a dotted path into the printed JSON object, OP one of
    =  !=        equal, not equal (numbers, booleans, `null` and text as such)
    >  >=  <  <= numbers as numbers, times (ISO 8601) as times, other text by text order
    ~            regular expression search in the value's text
  A path through a list matches when any element matches (data.tags=vip,
  data.messages.role=system); an index picks one element (data.messages.0.role=system).
  A missing field is null. Paths are checked against the topic's schema (docs/topics.md).

  examples:
    --filter data.served_model=gpt-4o --filter 'data.latency_ms>500'
    --filter tenant=acme --filter 'data.status!=ok'
    --filter 'data.output~(?i)refund'        (on a .dlq topic: headers.dlq-reason=invalid)

--since takes a duration back from now (30s, 10m, 2h, 1d, 1h30m) or a time
(2026-11-23T10:00:00Z; without a zone, UTC) and starts at the first event Kafka
timestamped at or after it.
"""

_OPERATORS = ("!=", ">=", "<=", "=", ">", "<", "~")
_EXPRESSION = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(!=|>=|<=|=|>|<|~)\s*(.*?)\s*$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}
_MISSING = object()

Emit = Callable[[Mapping[str, Any]], None]


# -- filters ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventFilter:
    """One `PATH OP VALUE` condition on the printed JSON object of an event."""

    text: str
    path: tuple[str, ...]
    operator: str
    value: str
    pattern: re.Pattern[str] | None = None

    @classmethod
    def parse(cls, text: str) -> EventFilter:
        """Parse `data.latency_ms>500`; ValueError saying what is wrong."""
        match = _EXPRESSION.match(text)
        if match is None:
            operators = " ".join(_OPERATORS)
            msg = f"{text!r} is not PATH OP VALUE (OP one of {operators}), e.g. tenant=acme"
            raise ValueError(msg)
        path, operator, value = match.groups()
        parts = tuple(path.split("."))
        if not all(parts):
            msg = f"{text!r}: empty field name in path {path!r}"
            raise ValueError(msg)
        pattern = None
        if operator == "~":
            try:
                pattern = re.compile(value)
            except re.error as exc:
                msg = f"{text!r}: invalid regular expression: {exc}"
                raise ValueError(msg) from None
        return cls(text, parts, operator, _unquote(value), pattern)

    def matches(self, document: Mapping[str, Any]) -> bool:
        candidates = list(_values_at(document, self.path))
        if self.operator == "!=":
            return not any(self._holds(value, "=") for value in candidates)
        return any(self._holds(value, self.operator) for value in candidates)

    def _holds(self, actual: Any, operator: str) -> bool:
        wanted = self.value
        if wanted == "null" and operator == "=":
            return actual is None
        if actual is None:
            return False
        if self.pattern is not None:
            return self.pattern.search(_text(actual)) is not None
        if isinstance(actual, bool):
            return operator == "=" and wanted.lower() == str(actual).lower()
        if isinstance(actual, int | float):
            number = _number(wanted)
            if number is None:
                return False
            return _compare(actual, number, operator)
        if not isinstance(actual, str):
            return operator == "=" and _text(actual) == wanted
        if operator == "=":
            return actual == wanted
        moments = _moment(actual), _moment(wanted)
        if moments[0] is not None and moments[1] is not None:
            return _compare(moments[0], moments[1], operator)
        numbers = _number(actual), _number(wanted)
        if numbers[0] is not None and numbers[1] is not None:
            return _compare(numbers[0], numbers[1], operator)
        return _compare(actual, wanted, operator)


def _compare(actual: Any, wanted: Any, operator: str) -> bool:
    if operator == "=":
        return bool(actual == wanted)
    if operator == ">":
        return bool(actual > wanted)
    if operator == ">=":
        return bool(actual >= wanted)
    if operator == "<":
        return bool(actual < wanted)
    return bool(actual <= wanted)


def _values_at(node: Any, path: Sequence[str]) -> list[Any]:
    """Every value at `path`: a list fans out over its elements unless the step is an index."""
    if not path:
        if isinstance(node, list):
            return list(node) or [None]
        return [None if node is _MISSING else node]
    head, rest = path[0], path[1:]
    if isinstance(node, list):
        if head.isdigit():
            index = int(head)
            return _values_at(node[index] if index < len(node) else _MISSING, rest)
        return [value for item in node for value in _values_at(item, path)] or [None]
    if isinstance(node, dict):
        return _values_at(node.get(head, _MISSING), rest)
    return [None]


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _moment(text: str) -> datetime | None:
    if len(text) < 10 or not text[:4].isdigit() or text[4] != "-":
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def unknown_field(contract: TopicContract[Any], path: Sequence[str]) -> str | None:
    """Why `path` names nothing in the contract's events, or None when it may name something."""
    if path[0] == "kafka":  # --meta
        return None
    model: type[BaseModel] = Envelope[contract.payload]  # type: ignore[name-defined]
    if _known(model, path):
        return None
    data_fields = ", ".join(contract.payload.model_fields)
    return (
        f"{contract.topic} events have no field {'.'.join(path)} "
        f"(envelope: {', '.join(model.model_fields)}; data: {data_fields}; see docs/topics.md)"
    )


def _known(annotation: Any, path: Sequence[str]) -> bool:
    if not path:
        return True
    origin = get_origin(annotation)
    if origin in (Union, UnionType):
        return any(_known(arg, path) for arg in get_args(annotation) if arg is not NoneType)
    if origin is list:
        (item,) = get_args(annotation)
        return _known(item, path[1:] if path[0].isdigit() else path)
    if origin is dict:
        return len(path) == 1
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        field = annotation.model_fields.get(path[0])
        return field is not None and _known(field.annotation, path[1:])
    return False


# -- where to start -------------------------------------------------------------------------------


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """`10m`, `1h30m`, `2d` back from now, or an ISO 8601 time (UTC if it names no zone)."""
    compact = text.strip().replace(" ", "")
    parts = _DURATION_PART.findall(compact)
    if parts and "".join(number + unit for number, unit in parts) == compact:
        span = sum((float(number) * _UNITS[unit] for number, unit in parts), timedelta())
        return (now or datetime.now(UTC)) - span
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        msg = f"{text!r} is neither a duration (30s, 10m, 2h, 1d, 1h30m) nor an ISO 8601 time"
        raise ValueError(msg) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# -- the command ------------------------------------------------------------------------------


def add_parser(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `llmops tail`."""
    topics = ", ".join(sorted(contract.topic for contract in CONTRACTS.values()))
    tail = groups.add_parser(
        "tail",
        help="print a topic's events as JSON lines (filters, from a time or the beginning)",
        description=textwrap.fill(
            "Print every event of a catalog topic, or of its dead-letter topic (TOPIC.dlq), "
            "as one JSON line: the validated envelope with its data; for a .dlq topic, the "
            "raw value with its headers (dlq-reason, dlq-error-message, ...). Records that "
            'do not decode are printed as {"error": ...} and the tail goes on. No consumer '
            "group is joined and no offset committed. Starts at the end (new events only) "
            f"unless --from-beginning or --since. Topics: {topics}.",
            width=88,
        ),
        epilog=FILTER_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tail.add_argument("topic", metavar="TOPIC", help="e.g. llm.completions or llm.completions.dlq")
    tail.add_argument(
        "-f",
        "--filter",
        dest="filters",
        action="append",
        default=[],
        type=_filter_argument,
        metavar="EXPR",
        help="PATH OP VALUE, e.g. data.served_model=gpt-4o (repeatable; see below)",
    )
    start = tail.add_mutually_exclusive_group()
    start.add_argument(
        "--from-beginning", action="store_true", help="start at the oldest retained event"
    )
    start.add_argument(
        "--since",
        type=_since_argument,
        metavar="DURATION|TIME",
        help="start at events from this time on: 10m, 2h, 1d, or 2026-11-23T10:00:00Z",
    )
    tail.add_argument(
        "-n", "--max", type=_positive, metavar="N", help="stop after printing N events"
    )
    tail.add_argument(
        "--no-follow",
        action="store_true",
        help="stop at the end of the topic (as it was at the start) instead of waiting",
    )
    tail.add_argument(
        "--meta",
        action="store_true",
        help="add a `kafka` object to each event: partition, offset, timestamp, key",
    )
    default_bootstrap = os.environ.get(BOOTSTRAP_VARIABLE) or DEFAULT_BOOTSTRAP
    tail.add_argument(
        "--bootstrap",
        "--bootstrap-servers",
        dest="bootstrap",
        default=default_bootstrap,
        metavar="HOST:PORT[,...]",
        help=f"Kafka brokers (default: ${BOOTSTRAP_VARIABLE} or {DEFAULT_BOOTSTRAP}; "
        f"now {default_bootstrap})",
    )
    tail.add_argument(
        "--prefix",
        default=os.environ.get(PREFIX_VARIABLE, ""),
        help=f"topic name prefix of the deployment (default: ${PREFIX_VARIABLE})",
    )
    tail.set_defaults(handler=_tail, error_status=2)


def _filter_argument(text: str) -> EventFilter:
    try:
        return EventFilter.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _since_argument(text: str) -> datetime:
    try:
        return parse_since(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        msg = f"{text!r} is not a positive integer"
        raise argparse.ArgumentTypeError(msg)
    return number


@dataclass(frozen=True)
class TailRequest:
    """What to read and print: resolved from the command line."""

    contract: TopicContract[Any]
    dead_letters: bool
    kafka_topic: str
    bootstrap: str
    filters: tuple[EventFilter, ...] = ()
    from_beginning: bool = False
    since: datetime | None = None
    max_events: int | None = None
    follow: bool = True
    meta: bool = False


def resolve_topic(name: str) -> tuple[TopicContract[Any], bool]:
    """The contract of a catalog topic or of the topic whose `.dlq` `name` is."""
    by_name = {contract.topic: contract for contract in CONTRACTS.values()}
    base = name.removesuffix(DLQ_SUFFIX)
    contract = by_name.get(base)
    if contract is None:
        listed = ", ".join(sorted(by_name))
        msg = f"unknown topic {name!r}; topics: {listed} (and each one's .dlq)"
        raise CliError(msg)
    return contract, name.endswith(DLQ_SUFFIX)


def _tail(args: argparse.Namespace) -> int:
    contract, dead_letters = resolve_topic(args.topic)
    filters: tuple[EventFilter, ...] = tuple(args.filters)
    if not dead_letters:
        for condition in filters:
            problem = unknown_field(contract, condition.path)
            if problem is not None:
                raise CliError(f"--filter {condition.text!r}: {problem}")
    request = TailRequest(
        contract=contract,
        dead_letters=dead_letters,
        kafka_topic=f"{args.prefix}{args.topic}",
        bootstrap=args.bootstrap,
        filters=filters,
        from_beginning=args.from_beginning,
        since=args.since,
        max_events=args.max,
        follow=not args.no_follow,
        meta=args.meta,
    )
    # The client's own log lines (connection retries) would interleave with the output;
    # what matters reaches the user as a CliError.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    printed = 0

    def emit(document: Mapping[str, Any]) -> None:
        sys.stdout.write(json.dumps(document, ensure_ascii=False, separators=(",", ":")) + "\n")
        sys.stdout.flush()

    try:
        printed = asyncio.run(tail(request, emit))
    except KeyboardInterrupt:
        print("llmops tail: stopped", file=sys.stderr)
        return 0
    except BrokenPipeError:  # `llmops tail ... | head`: the reader is gone, not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    print(f"llmops tail: {printed} events", file=sys.stderr)
    return 0


# -- reading ----------------------------------------------------------------------------------


async def tail(request: TailRequest, emit: Emit) -> int:
    """Print (through `emit`) what `request` asks for; returns the number of events printed."""
    numbers = await partitions_of(request.kafka_topic, request.bootstrap)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=request.bootstrap,
        group_id=None,
        enable_auto_commit=False,
        client_id="llmops-tail",
    )
    try:
        await consumer.start()
    except KafkaError as exc:
        await consumer.stop()
        msg = f"Kafka is not reachable at {request.bootstrap} ({exc})"
        raise CliError(msg) from None
    try:
        partitions = [TopicPartition(request.kafka_topic, number) for number in numbers]
        await _assign(consumer, request, partitions)
        ends = await consumer.end_offsets(partitions) if not request.follow else {}
        start = (
            "the beginning"
            if request.from_beginning
            else f"{request.since.isoformat()}"
            if request.since
            else "the end (new events)"
        )
        print(
            f"llmops tail: {request.kafka_topic}, {len(partitions)} partition(s), "
            f"from {start}; Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )
        return await _print_records(consumer, request, emit, ends)
    finally:
        await consumer.stop()


async def partitions_of(topic: str, bootstrap: str) -> list[int]:
    """The partition numbers of `topic`; CliError when Kafka or the topic is not there."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="llmops-tail")
    try:
        await admin.start()
    except KafkaError as exc:
        await admin.close()
        msg = f"Kafka is not reachable at {bootstrap} ({exc})"
        raise CliError(msg) from None
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    numbers = sorted(
        partition["partition"]
        for info in described
        if info["topic"] == topic and info["error_code"] == 0
        for partition in info["partitions"]
    )
    if not numbers:
        msg = (
            f"topic {topic!r} does not exist on {bootstrap} "
            f"(is the prefix right? ${PREFIX_VARIABLE} / --prefix)"
        )
        raise CliError(msg)
    return numbers


async def _assign(
    consumer: AIOKafkaConsumer, request: TailRequest, partitions: list[TopicPartition]
) -> None:
    consumer.assign(partitions)
    if request.from_beginning:
        await consumer.seek_to_beginning(*partitions)
    elif request.since is not None:
        since_ms = int(request.since.timestamp() * 1000)
        found = await consumer.offsets_for_times(dict.fromkeys(partitions, since_ms))
        for tp in partitions:
            offset = found.get(tp)
            if offset is None:  # nothing that recent: wait for new events
                await consumer.seek_to_end(tp)
            else:
                consumer.seek(tp, offset.offset)
    else:
        await consumer.seek_to_end(*partitions)
    for tp in partitions:  # resolve the positions now, not at the first fetch
        await consumer.position(tp)


async def _print_records(
    consumer: AIOKafkaConsumer,
    request: TailRequest,
    emit: Emit,
    ends: Mapping[TopicPartition, int],
) -> int:
    codec = EventCodec(request.contract, WireFormat.JSON)  # reads either wire format
    printed = 0
    while True:
        if ends and await _at_end(consumer, ends):
            return printed
        polled = await consumer.getmany(timeout_ms=_POLL_MS)
        for tp in sorted(polled, key=lambda tp: tp.partition):
            for record in polled[tp]:
                if ends and record.offset >= ends[tp]:
                    continue
                document, is_event = render(record, codec, request)
                if is_event and not all(f.matches(document) for f in request.filters):
                    continue
                emit(document)
                if is_event:
                    printed += 1
                    if request.max_events is not None and printed >= request.max_events:
                        return printed


async def _at_end(consumer: AIOKafkaConsumer, ends: Mapping[TopicPartition, int]) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return False
    return True


def render(
    record: ConsumerRecord[Any, Any], codec: EventCodec[Any], request: TailRequest
) -> tuple[dict[str, Any], bool]:
    """The JSON object printed for `record`, and whether it is an event (else an error)."""
    headers = {name: value.decode(errors="replace") for name, value in record.headers}
    value: bytes = record.value or b""
    coordinates = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": _kafka_time(record.timestamp),
        "key": record.key.decode(errors="replace") if record.key is not None else None,
    }
    if request.dead_letters:
        document: dict[str, Any] = {
            **{name: coordinates[name] for name in ("partition", "offset", "timestamp", "key")},
            "headers": {name: headers[name] for name in DLQ_HEADERS if name in headers}
            | {name: text for name, text in headers.items() if name not in DLQ_HEADERS},
            **_raw_value(value),
        }
        # The value is shown raw above; most dead letters do not decode, some (handler
        # failures) do, and their decoded event is added.
        with contextlib.suppress(EventDecodeError):
            document["event"] = codec.decode(value, headers).model_dump(mode="json")
        return document, True
    try:
        event = codec.decode(value, headers)
    except EventDecodeError as exc:
        return {"error": str(exc), **coordinates, **_raw_value(value)}, False
    document = event.model_dump(mode="json")
    if request.meta:
        document["kafka"] = coordinates
    return document, True


def _raw_value(value: bytes) -> dict[str, str]:
    try:
        return {"value": value.decode()}
    except UnicodeDecodeError:  # Avro binary, or worse
        return {"value_base64": base64.b64encode(value).decode()}


def _kafka_time(timestamp_ms: int | None) -> str | None:
    if timestamp_ms is None or timestamp_ms < 0:
        return None
    moment = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
