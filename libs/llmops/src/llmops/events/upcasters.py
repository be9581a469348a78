"""Upcasters: functions that turn a payload of an older schema version into the next one.

A new major version vN of a topic's schema (`schemas/<topic>/vN.avsc`) must be backward
compatible with vN-1 under Avro schema resolution (fields added with defaults, promotions
only, ...). When a change cannot be, register an upcaster for `(topic, N - 1)`: it maps a
vN-1 payload dict (the envelope's `data`) to a valid vN payload dict. Consumers apply the
upcasters in sequence (v1 -> v2 -> ... -> current) to events written with older versions,
so handlers only ever see the current payload model.

`python -m llmops.contracts check` and the contract tests accept an incompatible vN only
when its upcaster exists, and then require that the upcaster turns example vN-1 data into
valid vN data. An upcaster must be a pure function: deterministic, no I/O, never mutating
its argument.

Example, for a v2 of `prompts.changed` that renamed `actor` to `changed_by`:

    def _prompts_changed_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
        upcast = {key: value for key, value in data.items() if key != "actor"}
        return {**upcast, "changed_by": data["actor"]}

    UPCASTERS = {("prompts.changed", 1): _prompts_changed_v1_to_v2}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
"""Maps a payload dict of version N-1 to a payload dict of version N."""

UPCASTERS: Mapping[tuple[str, int], Upcaster] = {}
"""`(topic, N - 1)` -> the upcaster from version N-1 to version N. Empty: every topic is at v1."""
