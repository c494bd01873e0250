"""supervisord event listener: every child's output in one file, the child's name on each line.

supervisord sends each chunk a child writes as a PROCESS_LOG event, and every state change
(started, exited, backing off, fatal) as a PROCESS_STATE event. This listener speaks
supervisor's event-listener protocol (READY / header line / payload / RESULT) on
stdin/stdout, in bytes, since the `len` header counts bytes, and writes

    2026-11-29 14:05:35 matcher-cpu | [2026-11-29 14:05:35,012: INFO/MainProcess] ready.
    2026-11-29 14:05:41 beat        | (supervisor) EXITED from RUNNING, pid 4711, expected 0

to the combined log (rotated at 50 MB, 3 backups). A chunk may end mid-line: the rest of
the line is kept until the child writes it (or the child's next state change flushes it).

Run by supervisord only: `python -m artwatch.daemon.listener LOGFILE`.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
import time
from typing import BinaryIO

NAME_WIDTH = 14


def parse_headers(line: bytes) -> dict[str, str]:
    """`a:1 b:2` -> {"a": "1", "b": "2"} (supervisor's header format)."""
    return dict(part.split(":", 1) for part in line.decode("utf-8", "replace").split())


class CombinedLog:
    """Lines of many children, each with its name, into one rotated file."""

    def __init__(self, path: str) -> None:
        handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=50 * 1024 * 1024, backupCount=3, encoding="utf-8"
        )
        handler.setFormatter(logging.Formatter("%(message)s"))
        self.log = logging.getLogger("artwatch.combined")
        self.log.propagate = False
        self.log.setLevel(logging.INFO)
        self.log.addHandler(handler)
        self.partial: dict[str, str] = {}

    def line(self, name: str, text: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self.log.info("%s %-*s | %s", stamp, NAME_WIDTH, name, text.rstrip("\r"))

    def output(self, name: str, data: str) -> None:
        text = self.partial.pop(name, "") + data
        *complete, rest = text.split("\n")
        for line in complete:
            self.line(name, line)
        if rest:
            self.partial[name] = rest

    def flush(self, name: str) -> None:
        if self.partial.get(name):
            self.line(name, self.partial.pop(name))

    def event(self, event: str, payload: bytes) -> None:
        head, _, data = payload.partition(b"\n")
        headers = parse_headers(head)
        name = headers.get("processname", "?")
        if event.startswith("PROCESS_LOG"):
            self.output(name, data.decode("utf-8", "replace"))
        elif event.startswith("PROCESS_STATE_"):
            self.flush(name)
            state = event.removeprefix("PROCESS_STATE_")
            detail = f"{state} from {headers.get('from_state', '?')}"
            if "pid" in headers:
                detail += f", pid {headers['pid']}"
            if "expected" in headers:
                detail += f", expected exit {headers['expected']}"
            self.line(name, f"(supervisor) {detail}")


def serve(path: str, stdin: BinaryIO, stdout: BinaryIO) -> None:
    log = CombinedLog(path)
    while True:
        stdout.write(b"READY\n")
        stdout.flush()
        header = stdin.readline()
        if not header:
            return  # supervisord went away
        headers = parse_headers(header)
        payload = stdin.read(int(headers.get("len", "0")))
        try:
            log.event(headers.get("eventname", ""), payload)
        except Exception as exc:  # a bad event must not stop everyone's logging
            print(f"listener: event not logged: {exc!r}", file=sys.stderr)
        stdout.write(b"RESULT 2\nOK")
        stdout.flush()


if __name__ == "__main__":
    serve(sys.argv[1], sys.stdin.buffer, sys.stdout.buffer)
