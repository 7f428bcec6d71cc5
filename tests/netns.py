"""Network hosts for tests: `ip netns` namespaces on this machine, each joined to the root
namespace by a veth pair of its own and nothing else (no default route, so a host reaches only
the root side of its own link)."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

# Names carry the test process's pid: concurrent tests do not collide, and namespaces left by
# a process that was killed before its cleanup are recognised and removed by the next one.
PREFIX = "tbhost"
STALE = re.compile(rf"^{PREFIX}(\d+)n\d+$")
SUBNETS = range(1, 255)  # third octets of 10.213.X.0/24


class NamespacesUnavailable(Exception):
    """This machine or user cannot create network namespaces."""


def ip(*args: str) -> str:
    """Run `ip ARGS`; its output, or an error that quotes what it printed."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


@dataclass(frozen=True)
class Host:
    """A namespace whose veth end holds `address`; the root side of its link holds `gateway`."""

    namespace: str
    outside: str  # the veth end in the root namespace
    inside: str  # the veth end in the namespace
    address: str
    gateway: str

    def command(self, *argv: str) -> list[str]:
        """`argv` run inside this host (`ip netns exec` execs it: same pid, no wrapper)."""
        return ["ip", "netns", "exec", self.namespace, *argv]

    def set_link(self, *, up: bool) -> None:
        """Plug or unplug this host's cable, at the root side."""
        ip("link", "set", self.outside, "up" if up else "down")

    def connects(self, host: str, port: int, timeout: float = 2.0) -> str:
        """Try a TCP connection from inside this host: 'connected', or the error's text."""
        probe = (
            "import socket, sys\n"
            "try:\n"
            f"    socket.create_connection(({host!r}, {port}), timeout={timeout}).close()\n"
            "    print('connected')\n"
            "except OSError as exc:\n"
            "    print(exc)\n"
        )
        done = subprocess.run(
            self.command(sys.executable, "-c", probe),
            capture_output=True,
            text=True,
            timeout=timeout + 30,
        )
        return (done.stdout + done.stderr).strip()


def namespaces() -> list[str]:
    return [line.split()[0] for line in ip("netns", "list").splitlines() if line.strip()]


def remove_stale() -> None:
    """Delete namespaces of ours whose test process is gone (their veth pairs go with them)."""
    for name in namespaces():
        match = STALE.match(name)
        if match and not os.path.exists(f"/proc/{match.group(1)}"):
            with contextlib.suppress(RuntimeError):
                ip("netns", "delete", name)


def free_subnets(count: int) -> list[int]:
    """Third octets of 10.213.X.0/24 that no address or route of this machine uses."""
    used = ip("-4", "-o", "addr", "show") + ip("-4", "route", "show", "table", "all")
    start = os.getpid() % len(SUBNETS)
    candidates = [SUBNETS[(start + i) % len(SUBNETS)] for i in range(len(SUBNETS))]
    free = [x for x in candidates if f"10.213.{x}." not in used]
    if len(free) < count:
        raise RuntimeError("no free 10.213.X.0/24 subnets left")
    return free[:count]


def check_available() -> None:
    """Raise NamespacesUnavailable, saying why, unless this process can make namespaces."""
    if os.geteuid() != 0:
        raise NamespacesUnavailable("network namespaces need root (`ip netns add`)")
    probe = f"{PREFIX}{os.getpid()}n0"
    try:
        ip("netns", "add", probe)
    except (OSError, RuntimeError) as exc:
        raise NamespacesUnavailable(f"cannot create a network namespace: {exc}") from None
    ip("netns", "delete", probe)


def make_host(index: int, subnet: int) -> Host:
    pid = os.getpid()
    host = Host(
        namespace=f"{PREFIX}{pid}n{index}",
        outside=f"tb{pid}o{index}",  # interface names: 15 characters at most
        inside=f"tb{pid}i{index}",
        address=f"10.213.{subnet}.2",
        gateway=f"10.213.{subnet}.1",
    )
    ip("netns", "add", host.namespace)
    return host


def wire(host: Host) -> None:
    """Give `host` its veth pair, its two addresses and a working loopback."""
    ip("link", "add", host.outside, "type", "veth", "peer", "name", host.inside)
    ip("link", "set", host.inside, "netns", host.namespace)
    ip("addr", "add", f"{host.gateway}/24", "dev", host.outside)
    ip("link", "set", host.outside, "up")
    ip("-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", host.inside)
    ip("-n", host.namespace, "link", "set", host.inside, "up")
    ip("-n", host.namespace, "link", "set", "lo", "up")


def remove(host: Host) -> None:
    """Delete the namespace (which deletes the veth pair), and the pair if it outlived it.
    Processes still inside keep a namespace alive: stop them first."""
    with contextlib.suppress(RuntimeError):
        ip("netns", "delete", host.namespace)
    with contextlib.suppress(RuntimeError):  # "Cannot find device": gone with the namespace
        ip("link", "delete", host.outside)


@contextlib.contextmanager
def hosts(count: int) -> Iterator[list[Host]]:
    """`count` wired hosts, removed on exit whatever happened inside (NamespacesUnavailable
    when this process cannot make them)."""
    check_available()
    remove_stale()
    made: list[Host] = []
    try:
        for index, subnet in enumerate(free_subnets(count), start=1):
            made.append(make_host(index, subnet))
            wire(made[-1])
        yield made
    finally:
        for host in made:
            remove(host)
