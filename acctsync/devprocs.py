"""The processes a `make run` started, as recorded in its devstack.json, and how to find them
again: a `make run` killed with SIGKILL (or a closed terminal) leaves Azurite and the simulator
running in sessions of their own, and the next `make run` must know them from strangers.

A pid alone does not say it: once a process has gone, another may get its number. A process is
the recorded one when its pid and its start time (psutil's create_time, fixed at fork and kept
across exec) both match.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

import psutil

logger = logging.getLogger(__name__)
# create_time comes from the kernel's start tick (10 ms) and the boot time: read twice, it may
# differ in its last digits; two processes of one pid within this are not possible.
SAME_START_S = 0.5
STOP_WAIT_S = 10.0


class Role(StrEnum):
    HOST = "host"
    AZURITE = "azurite"
    SIMULATOR = "simulator"

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    Role.HOST: "the local host",
    Role.AZURITE: "Azurite",
    Role.SIMULATOR: "the Dataverse simulator",
}


@dataclass(frozen=True)
class RecordedProcess:
    pid: int
    started: float  # psutil create_time: seconds since the epoch

    @classmethod
    def of(cls, pid: int) -> RecordedProcess:
        return cls(pid=pid, started=psutil.Process(pid).create_time())

    def running(self) -> psutil.Process | None:
        """The process when it still runs and is the one recorded; None when it has gone."""
        try:
            process = psutil.Process(self.pid)
            if (
                abs(process.create_time() - self.started) < SAME_START_S
                and process.status() != psutil.STATUS_ZOMBIE
            ):
                return process
        except psutil.Error:  # gone, or no longer ours to see
            pass
        return None


def stop_process(process: psutil.Process) -> None:
    """Stop as Ctrl-C of `make run` would (terminate: Azurite writes its data out), and kill
    what does not stop within STOP_WAIT_S."""
    try:
        process.terminate()
        process.wait(timeout=STOP_WAIT_S)
    except psutil.TimeoutExpired:
        logger.debug("pid %s did not stop on SIGTERM: killed", process.pid)
        process.kill()
        process.wait(timeout=STOP_WAIT_S)
    except psutil.NoSuchProcess:
        pass
