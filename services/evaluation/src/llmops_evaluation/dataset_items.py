"""Dataset items and how they are read from JSONL and CSV files.

An item is an input (chat messages, template variables or both), an optional reference
answer, optional expected contexts and metadata. A file is read whole before anything
is stored: a bad line is reported with its number and nothing of the file is kept.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

ITEM_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
MAX_ITEMS = 100_000
_MAX_REPORTED_PROBLEMS = 20
_ITEM_ID = re.compile(ITEM_ID_PATTERN)


class InputMessage(BaseModel):
    """One chat message of an item's input."""

    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=100_000)


class DatasetItem(BaseModel):
    """One example to evaluate on: what the candidate is asked and what a good answer is."""

    item_id: str = Field(pattern=ITEM_ID_PATTERN, description="Unique within the version.")
    messages: list[InputMessage] = Field(
        default_factory=list, description="Chat turns sent after the prompt's own messages."
    )
    variables: dict[str, Any] = Field(
        default_factory=dict, description="Prompt template variables, e.g. `question`."
    )
    reference: str | None = Field(None, description="A correct answer, for reference metrics.")
    contexts: list[str] = Field(
        default_factory=list, description="Passages a good retrieval returns (context recall)."
    )
    metadata: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _has_input(self) -> DatasetItem:
        if not self.messages and not self.variables:
            msg = "an item needs an input: `messages`, `variables` or `input`"
            raise ValueError(msg)
        return self

    @field_validator("metadata", mode="before")
    @classmethod
    def _metadata_as_text(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}
        return value

    def question(self) -> str:
        """The text retrieval searches for: the `question` variable, else the last user turn."""
        question = self.variables.get("question")
        if isinstance(question, str) and question:
            return question
        for message in reversed(self.messages):
            if message.role == "user":
                return message.content
        return ""


def conversation_item(
    item_id: str,
    messages: Sequence[InputMessage],
    *,
    reference: str,
    metadata: dict[str, str],
) -> DatasetItem:
    """A recorded conversation as an item: its turns without the system messages (the
    candidate's prompt brings its own), `reference` as the answer to compare with, and the
    user's question as the `question` variable, so that a prompt template can use it."""
    turns = [m for m in messages if m.role != "system"]
    item = DatasetItem(
        item_id=item_id[:128], messages=turns, reference=reference, metadata=metadata
    )
    question = item.question()
    if question:
        item.variables["question"] = question
    return item


class FileProblem(BaseModel):
    """Why one line or row of an uploaded file was refused."""

    line: int
    problem: str


class InvalidDatasetFileError(ValueError):
    """The file cannot become a dataset version; `problems` says where and why."""

    def __init__(self, problems: list[FileProblem], *, total: int | None = None) -> None:
        self.problems = problems[:_MAX_REPORTED_PROBLEMS]
        count = total if total is not None else len(problems)
        first = "; ".join(f"line {p.line}: {p.problem}" for p in self.problems[:3])
        super().__init__(f"{count} problem(s) in the file: {first}")


def parse_items(content: bytes, *, filename: str) -> list[DatasetItem]:
    """Items of a `.jsonl` or `.csv` file (by extension; JSONL otherwise).

    JSONL: one object per line with the `DatasetItem` fields; `input` is shorthand for
    `variables.question` (a string) or `messages` (a list). CSV: columns `item_id`,
    `reference`, `contexts` (a JSON array), `metadata.<key>`; any other column is a
    template variable. Items without `item_id` are numbered `item-<n>`.
    """
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidDatasetFileError([FileProblem(line=0, problem="not UTF-8 text")]) from exc
    rows = _csv_rows(text) if filename.lower().endswith(".csv") else _jsonl_rows(text)
    return _validate(rows)


def items_to_jsonl(items: Iterable[DatasetItem]) -> Iterable[str]:
    """Each item as one JSON line (the upload format, so an export can be uploaded again)."""
    for item in items:
        yield item.model_dump_json(exclude_defaults=True) + "\n"


def _jsonl_rows(text: str) -> list[tuple[int, dict[str, Any] | str]]:
    rows: list[tuple[int, dict[str, Any] | str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            rows.append((number, f"not JSON: {exc.msg} at column {exc.colno}"))
            continue
        if not isinstance(value, dict):
            rows.append((number, "expected a JSON object"))
            continue
        rows.append((number, _expand_input(value)))
    return rows


def _expand_input(value: dict[str, Any]) -> dict[str, Any]:
    if "input" not in value:
        return value
    value = dict(value)
    given = value.pop("input")
    if isinstance(given, list):
        value.setdefault("messages", given)
    else:
        value.setdefault("variables", {}).setdefault("question", given)
    return value


def _csv_rows(text: str) -> list[tuple[int, dict[str, Any] | str]]:
    reader = csv.DictReader(io.StringIO(text))
    rows: list[tuple[int, dict[str, Any] | str]] = []
    for row in reader:
        number = reader.line_num
        item: dict[str, Any] = {"variables": {}, "metadata": {}}
        try:
            for column, cell in row.items():
                if column is None:
                    msg = "more cells than columns"
                    raise ValueError(msg)
                _put_cell(item, column.strip(), cell or "")
        except ValueError as exc:
            rows.append((number, str(exc)))
            continue
        rows.append((number, _expand_input(item)))
    return rows


def _put_cell(item: dict[str, Any], column: str, cell: str) -> None:
    if column in {"item_id", "reference"}:
        if cell:
            item[column] = cell
    elif column == "contexts":
        if cell:
            try:
                contexts = json.loads(cell)
            except json.JSONDecodeError as exc:
                msg = f"`contexts` must be a JSON array of strings: {exc.msg}"
                raise ValueError(msg) from exc
            item["contexts"] = contexts
    elif column.startswith("metadata."):
        item["metadata"][column.removeprefix("metadata.")] = cell
    elif column == "input":
        item["input"] = cell
    elif column:
        item["variables"][column] = cell


def _validate(rows: list[tuple[int, dict[str, Any] | str]]) -> list[DatasetItem]:
    problems: list[FileProblem] = []
    items: list[DatasetItem] = []
    seen: dict[str, int] = {}
    for number, row in rows:
        if isinstance(row, str):
            problems.append(FileProblem(line=number, problem=row))
            continue
        row.setdefault("item_id", f"item-{len(items) + len(problems) + 1}")
        try:
            item = DatasetItem.model_validate(row)
        except ValidationError as exc:
            problems.append(FileProblem(line=number, problem=_first_error(exc)))
            continue
        if item.item_id in seen:
            problem = f"item_id {item.item_id!r} already used on line {seen[item.item_id]}"
            problems.append(FileProblem(line=number, problem=problem))
            continue
        seen[item.item_id] = number
        items.append(item)
    if not items and not problems:
        problems.append(FileProblem(line=0, problem="the file has no items"))
    if len(items) > MAX_ITEMS:
        problems.append(FileProblem(line=0, problem=f"more than {MAX_ITEMS} items"))
    if problems:
        raise InvalidDatasetFileError(problems)
    return items


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])


def valid_item_id(value: str) -> bool:
    return bool(_ITEM_ID.match(value))
