"""Hosts on one machine (tools/netns.py), the ground the three-host drills stand on: each host
a network namespace on a switch, the operator's seat in the machine's own namespace. What
crosses the LAN crosses it for real; a cut host is unreachable both ways and reachable again
once reconnected; a throttled link carries data at its cap; destroying the lab leaves no
namespace and no interface behind. Timings are printed, never asserted (a lower bound set by
the link's own rate is not a timing of this machine)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from hastack.errors import HastackError
from hastack.tools.netns import NETNS_DIR, HostLan, LanHost, Throttle

SUBNET = "10.213.77.0/24"
HOSTS = [LanHost(f"h{i}", f"10.213.77.{i}") for i in (1, 2, 3)]
PORT = 7777

ECHO = f"""
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("{HOSTS[0].address}", {PORT}))
s.listen(16)
while True:
    c, _ = s.accept()
    data = c.recv(1 << 20)
    while data:
        c.sendall(data)
        data = c.recv(1 << 20)
    c.close()
"""

ROUND_TRIP = f"""
import socket, sys, time
n = int(sys.argv[1])
t = time.monotonic()
s = socket.create_connection(("{HOSTS[0].address}", {PORT}), timeout=3)
s.sendall(b"x" * n)
got = 0
while got < n:
    got += len(s.recv(1 << 20))
print(time.monotonic() - t)
"""


@pytest.fixture(scope="module")
def lab() -> Iterator[HostLan]:
    lan = HostLan("it-lab", SUBNET, HOSTS)
    lan.destroy()  # an interrupted run's
    lan.create()
    echo = subprocess.Popen([*lan.exec_argv("h1"), sys.executable, "-c", ECHO])
    try:
        deadline = time.monotonic() + 10
        while _round_trip(lan, "h2", 1) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        yield lan
    finally:
        echo.kill()
        echo.wait()
        lan.destroy()


def _round_trip(lan: HostLan, source: str | None, size: int) -> float | None:
    """Seconds to send `size` bytes to h1's echo and read them back (from `source`'s
    namespace, or the operator's seat); None when it cannot connect."""
    prefix = lan.exec_argv(source) if source else []
    done = subprocess.run(
        [*prefix, sys.executable, "-c", ROUND_TRIP, str(size)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return float(done.stdout) if done.returncode == 0 else None


def test_hosts_reach_each_other_and_the_operator_reaches_every_host(lab: HostLan) -> None:
    assert _round_trip(lab, "h2", 1) is not None
    assert _round_trip(lab, "h3", 1) is not None
    assert _round_trip(lab, None, 1) is not None
    # Each host sees only its own address and loopback.
    shown = subprocess.run(
        [*lab.exec_argv("h2"), "/usr/sbin/ip", "-o", "-4", "addr"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert HOSTS[1].address in shown and HOSTS[0].address not in shown


def test_a_cut_host_is_unreachable_until_reconnected(lab: HostLan) -> None:
    lab.cut("h1")
    try:
        assert _round_trip(lab, "h2", 1) is None
        assert _round_trip(lab, None, 1) is None
    finally:
        lab.reconnect("h1")
    back = _round_trip(lab, "h2", 1)
    assert back is not None


def test_a_throttled_link_carries_data_at_its_rate(lab: HostLan) -> None:
    size = 100_000
    fast = _round_trip(lab, "h2", size)
    lab.throttle("h1", Throttle(rate_kbit=2000, loss_percent=2.0))
    try:
        slow = _round_trip(lab, "h2", size)
    finally:
        lab.unthrottle("h1")
    again = _round_trip(lab, "h2", size)
    print(
        f"\n100 kB echoed: {fast} s at full speed, {slow} s at 2 Mbit/s, 2 % lost; {again} s after"
    )
    assert fast is not None and slow is not None and again is not None
    # 100 kB through a 2 Mbit/s link cannot take less than 0.4 s (the echo flows back while
    # the rest arrives, so the two ways overlap): a bound set by the cap, not by this machine.
    assert slow >= size * 8 / 2_000_000


def test_loss_falls_on_the_cable_never_on_a_hosts_own_loopback(lab: HostLan) -> None:
    """Everything lost on the way in or out, yet a host still reaches its own address (the
    kernel carries that over loopback, as between two programs of one real host)."""
    lab.throttle("h1", Throttle(rate_kbit=100_000, loss_percent=100.0))
    try:
        assert _round_trip(lab, "h2", 1) is None
        assert _round_trip(lab, "h1", 1) is not None
    finally:
        lab.unthrottle("h1")
    assert _round_trip(lab, "h2", 1) is not None


def test_bad_input_is_refused_and_nothing_is_left_half_made() -> None:
    outside = HostLan("it-bad", SUBNET, [LanHost("x", "10.9.9.9")])
    with pytest.raises(HastackError, match=r"is not in 10\.213\.77\.0/24"):
        outside.create()
    assert not outside.exists()
    with pytest.raises(HastackError, match="no host nope"):
        HostLan("it-bad", SUBNET, HOSTS).cut("nope")


def test_destroy_leaves_nothing(lab: HostLan) -> None:
    second = HostLan("it-lab2", "10.213.78.0/24", [LanHost("a", "10.213.78.1")])
    second.create()
    with pytest.raises(HastackError, match="exists already"):
        second.create()
    assert sorted(second.destroy()) == ["hs-it-lab2-a", "hs-it-lab2-switch"]
    assert not [p for p in NETNS_DIR.iterdir() if p.name.startswith("hs-it-lab2-")]
    links = subprocess.run(
        ["/usr/sbin/ip", "-o", "link"], capture_output=True, text=True, check=True
    ).stdout
    assert f"h{second.tag}op" not in links
