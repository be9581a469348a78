"""Event contract tooling: `schemas/` (Avro) is the source of truth for every topic.

Loads and validates the schemas, checks that versions evolve compatibly, makes example
data, and generates `llmops/events/catalog.py` and `docs/topics.md`. Run it as
`python -m llmops.contracts generate | check`. Runtime code imports the generated catalog,
never this package.
"""

from llmops.contracts.compat import backward_problems, compatibility_problems, fastavro_problems
from llmops.contracts.loading import SchemaSet, load_schemas
from llmops.contracts.samples import example_datum, example_payload, minimal_datum

__all__ = [
    "SchemaSet",
    "backward_problems",
    "compatibility_problems",
    "example_datum",
    "example_payload",
    "fastavro_problems",
    "load_schemas",
    "minimal_datum",
]
