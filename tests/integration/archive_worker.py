"""A Parquet archive process for the archive crash test.

With ARCHIVE_STALL_COMMIT_AT=<offset> it never commits an offset at or past that one: it
writes the files, then waits in the commit to be killed, so the test SIGKILLs it between
the rename of a file and the commit of its offsets. SIGTERM stops it cleanly.
"""

from __future__ import annotations

import asyncio
import os
import signal

from aiokafka import TopicPartition

from llmops.settings import load_settings
from llmops.telemetry import configure_logging
from llmops_monitoring.archive import ParquetArchive
from llmops_monitoring.settings import MonitoringSettings


class StallingArchive(ParquetArchive):
    def __init__(self, settings: MonitoringSettings, stall_at: int | None) -> None:
        super().__init__(settings)
        self._stall_at = stall_at

    async def _commit(self, tp: TopicPartition, offset: int) -> bool:
        if self._stall_at is not None and offset >= self._stall_at:
            await asyncio.Event().wait()  # never returns: the offset stays uncommitted
        return await super()._commit(tp, offset)


async def main() -> None:
    settings = load_settings(MonitoringSettings)
    configure_logging("archive-worker", "INFO")
    stall_at = os.environ.get("ARCHIVE_STALL_COMMIT_AT")
    archive = StallingArchive(settings, int(stall_at) if stall_at else None)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await archive.start()
    await stop.wait()
    await archive.stop()


if __name__ == "__main__":
    asyncio.run(main())
