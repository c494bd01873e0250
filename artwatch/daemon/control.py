"""Talking to the running supervisord over its Unix control socket (XML-RPC).

Used by `artwatch run` (to watch and stop its children) and `artwatch status` (to show
them). `supervisorctl -c DATA_DIR/run/supervisord.conf status` reads the same socket.
"""

from __future__ import annotations

import socket
import xmlrpc.client
from dataclasses import dataclass
from typing import Any

from artwatch.daemon.config import RunPaths

# supervisord's process states (supervisor.states.ProcessStates)
UP_STATES = {"RUNNING"}
STARTING_STATES = {"STARTING", "BACKOFF"}
DOWN_STATES = {"STOPPED", "STOPPING", "EXITED", "FATAL", "UNKNOWN"}


@dataclass(frozen=True)
class ProcessInfo:
    name: str
    state: str  # RUNNING, STARTING, BACKOFF, STOPPED, EXITED, FATAL, ...
    pid: int
    started: int  # unix time of the last start (0 if never)
    exit_status: int
    description: str

    @classmethod
    def from_rpc(cls, info: dict[str, Any]) -> ProcessInfo:
        return cls(name=info["name"], state=info["statename"], pid=int(info["pid"]),
                   started=int(info["start"]), exit_status=int(info["exitstatus"]),
                   description=info.get("description", ""))


class Supervisor:
    """A thin client of one supervisord's RPC interface."""

    def __init__(self, paths: RunPaths, timeout: float = 10.0) -> None:
        from supervisor.xmlrpc import SupervisorTransport

        self.paths = paths
        self.timeout = timeout
        transport = SupervisorTransport(None, None, paths.server_url)
        self.proxy = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)

    def answering(self) -> bool:
        """True when a supervisord is listening on the socket and running."""
        if not self.paths.socket.exists():
            return False
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(self.timeout)
        try:
            return self.proxy.supervisor.getState()["statename"] == "RUNNING"
        except (OSError, xmlrpc.client.Error):
            return False
        finally:
            socket.setdefaulttimeout(previous)

    def pid(self) -> int:
        return int(self.proxy.supervisor.getPID())

    def processes(self) -> dict[str, ProcessInfo]:
        """Every program but the log listener, by name."""
        infos = [ProcessInfo.from_rpc(i) for i in self.proxy.supervisor.getAllProcessInfo()]
        return {i.name: i for i in infos if i.name != "logs"}

    def stop(self, name: str) -> None:
        """Ask supervisord to stop a child (SIGTERM, then SIGKILL); returns at once."""
        self.proxy.supervisor.stopProcess(name, False)

    def shutdown(self) -> None:
        self.proxy.supervisor.shutdown()
