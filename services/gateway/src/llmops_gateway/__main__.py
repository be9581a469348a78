"""Run the gateway service: `python -m llmops_gateway`."""

from llmops.service import serve
from llmops_gateway.app import create_app
from llmops_gateway.settings import GatewaySettings


def main() -> None:
    serve(GatewaySettings, create_app)


if __name__ == "__main__":
    main()
