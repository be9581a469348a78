"""`llmops`: the platform's command line (prompts as code, ingest, keys, eval, tail).

Each command group is a module of this package with an `add_parser` function that
`llmops.cli.main` registers; groups talk to their service through a `ServiceClient`,
except `tail`, which reads Kafka itself.
"""
