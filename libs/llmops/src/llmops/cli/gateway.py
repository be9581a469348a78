"""The gateway as the command line reaches it: its URL and the API key sent with each call.

The key is read from `$LLMOPS_API_KEY` (or `--api-key`, which leaves it in the shell
history and the process list); its tenant is the tenant every command acts for.
"""

from __future__ import annotations

import argparse
import os

from llmops.cli.client import CliError, ServiceClient, add_url_argument

URL_VARIABLE = "LLMOPS_GATEWAY_URL"
DEFAULT_URL = "http://127.0.0.1:8000"
API_KEY_VARIABLE = "LLMOPS_API_KEY"


class GatewayClient(ServiceClient):
    service = "gateway"
    url_variable = URL_VARIABLE


def add_gateway_arguments(parser: argparse.ArgumentParser) -> None:
    """`--url` and `--api-key`, defaulting to their environment variables (read now)."""
    add_url_argument(parser, "gateway", URL_VARIABLE, DEFAULT_URL)
    parser.add_argument(
        "--api-key",
        default=os.environ.get(API_KEY_VARIABLE),
        help=f"API key to call with (default: ${API_KEY_VARIABLE}, the better place for it)",
    )


def gateway_client(args: argparse.Namespace, *, timeout: float = 30.0) -> GatewayClient:
    """A client that sends the API key of `args` as `Authorization: Bearer`."""
    if not args.api_key:
        msg = (
            f"no API key: set {API_KEY_VARIABLE} (an admin creates keys with `llmops keys create`)"
        )
        raise CliError(msg)
    headers = {"Authorization": f"Bearer {args.api_key}"}
    return GatewayClient(args.url, timeout=timeout, headers=headers)
