"""`llmops`: the platform's command line (prompts as code now; ingest, eval and tail later).

Each command group is a module of this package with an `add_parser` function that
`llmops.cli.main` registers; groups talk to their service through a `ServiceClient`.
"""
