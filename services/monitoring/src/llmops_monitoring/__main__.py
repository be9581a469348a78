"""Run the monitoring service: `python -m llmops_monitoring`."""

from llmops.service import serve
from llmops_monitoring.app import create_app
from llmops_monitoring.settings import MonitoringSettings


def main() -> None:
    serve(MonitoringSettings, create_app)


if __name__ == "__main__":
    main()
