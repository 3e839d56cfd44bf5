"""The bench's shared pieces of a suite's run: the order of each round, the servers' lifetime."""

import os
import sys

import pytest

from bench import server
from testsupport.waiting import wait_for


class Script(server.Server):
    """A real process that prints a line, then sleeps or exits."""

    name = "script"

    def __init__(self, group: server.ProcessGroup, code: str):
        super().__init__(group, {"PATH": os.environ["PATH"]})
        self.code = code

    def command(self) -> list[str]:
        return [sys.executable, "-c", self.code]


def test_each_goes_first_in_turn_and_two_alternate():
    assert [server.rotated(("a", "b", "c"), n) for n in range(4)] == [
        ("a", "b", "c"),
        ("b", "c", "a"),
        ("c", "a", "b"),
        ("a", "b", "c"),
    ]
    assert [server.rotated(("rest", "grpc"), n) for n in range(3)] == [
        ("rest", "grpc"),
        ("grpc", "rest"),
        ("rest", "grpc"),
    ]


def test_a_server_that_died_fails_the_suite_with_its_last_lines_and_its_files_are_removed(capsys):
    servers: dict[str, server.Server] = {}
    with server.ProcessGroup() as group:
        with pytest.raises(RuntimeError) as failed, server.serving(servers, "script ({})"):
            servers["alive"] = Script(group, "print('up', flush=True); import time; time.sleep(60)").launch()
            servers["dead"] = Script(group, "print('bye', flush=True)").launch()
            servers["dead"].process.wait(timeout=60)
            wait_for(lambda: "up" in servers["alive"].log_text(), what="the live script's first line")
    assert str(failed.value) == "script (dead) died:\nbye"
    stderr = capsys.readouterr().err
    assert "script (alive)'s last lines:\nup\n" in stderr
    assert "script (dead)'s last lines:\nbye\n" in stderr
    for target in servers.values():
        assert not os.path.exists(target.logfile.name)
        assert not os.path.exists(target.metrics_dir)


def test_servers_that_are_still_up_pass_and_their_files_are_removed(capsys):
    servers: dict[str, server.Server] = {}
    with server.ProcessGroup() as group, server.serving(servers):
        servers["alive"] = Script(group, "import time; time.sleep(60)").launch()
    assert capsys.readouterr().err == ""
    assert not os.path.exists(servers["alive"].logfile.name)


def test_ports_come_from_bench_ports_each_once_and_a_taken_one_is_skipped(monkeypatch):
    import socket

    monkeypatch.setattr(server, "_handed_out", set())
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        monkeypatch.setenv("BENCH_PORTS", f"{port}-{port}")
        with pytest.raises(RuntimeError, match="no free port"):
            server.free_port()
    assert server.free_port() == port
    with pytest.raises(RuntimeError, match="no free port"):
        server.free_port()  # handed out already
