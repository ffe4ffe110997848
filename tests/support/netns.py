"""Network namespaces as hosts, for tests that need a real network between processes.

    with Lab(["redis", "scheduler", "worker-1"]) as lab:
        proc = lab.popen("redis", ["redis-server", "--bind", lab.address("redis")], log)
        lab.cut("redis")   # the host's cable is pulled: packets to and from it are dropped
        lab.heal("redis")

Each host is a namespace with its own address on one /24 (10.X.Y.0/24, chosen at random
among those this machine does not route yet), wired by a veth pair to a Linux bridge. The
bridge lives in a namespace of its own, so the host's firewall (Docker's FORWARD policy,
br_netfilter) never sees the bridged traffic; one more veth pair gives the root namespace,
where the test runs, address .1 on the same segment. Cutting a host sets its port on the
bridge down: its connections stall (no reset), as when a cable or a switch port fails.

Names carry the owning pid (`wbt-<pid>-<run>-<host>`): a lab whose process died (kill -9 of
pytest) is removed by the next one, a lab of a live process (another test run) is left alone.
Leaving the block kills every process in the lab's namespaces and deletes them, which takes
their veth pairs and the bridge with them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

PREFIX = "wbt"
_NAME = re.compile(rf"^{PREFIX}-(\d+)-([0-9a-f]+)-")


class NetnsUnavailable(RuntimeError):
    """Namespaces cannot be made here (not root, no iproute2, no CAP_SYS_ADMIN)."""


def unavailable_reason() -> str | None:
    """Why this machine cannot host a lab, or None if it looks like it can."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "network namespaces need root (CAP_SYS_ADMIN and CAP_NET_ADMIN)"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is missing: apt-get install iproute2"
    return None


def ip(*args: str, check: bool = True) -> str:
    """Run `ip ARGS`; NetnsUnavailable with its message if it fails and `check`."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise NetnsUnavailable(f"`ip {' '.join(args)}` failed: {done.stderr.strip()}")
    return done.stdout


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_namespace(netns: str) -> None:
    """SIGKILL every process in `netns`, then delete it."""
    for _ in range(50):  # a dying parent may fork once more: look again until it is empty
        pids = [int(p) for p in ip("netns", "pids", netns, check=False).split()]
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    ip("netns", "del", netns, check=False)


def namespaces() -> list[str]:
    """Every namespace `ip netns` knows, by name."""
    return [line.split()[0] for line in ip("netns", "list", check=False).splitlines() if line]


def remove_stale() -> list[str]:
    """Delete the labs of processes that are gone; returns the namespaces removed."""
    stale = []
    for netns in namespaces():
        found = _NAME.match(netns)
        if found and not _pid_alive(int(found.group(1))):
            _kill_namespace(netns)
            stale.append(netns)
    return stale


def _free_subnet() -> ipaddress.IPv4Network:
    """A 10.X.Y.0/24 that no route or address of this machine's root namespace uses yet."""
    routes = ip("-4", "route", "show", "table", "all") + ip("-4", "-o", "addr", "show")
    used = {
        ipaddress.IPv4Network(m, strict=False)
        for m in re.findall(r"\d+\.\d+\.\d+\.\d+/\d+", routes)
    }
    for _ in range(100):
        subnet = ipaddress.IPv4Network(
            f"10.{random.randint(200, 254)}.{random.randint(0, 255)}.0/24"
        )
        if not any(subnet.overlaps(u) and u.prefixlen >= 16 for u in used):
            return subnet
    raise NetnsUnavailable("no free 10.X.Y.0/24 subnet for the lab")


@dataclass(frozen=True)
class Host:
    name: str
    netns: str
    address: str
    port: str  # its veth end on the bridge (in the bridge's namespace)


class Lab:
    """Hosts in namespaces on one bridge; the root namespace reaches them all at `.1`."""

    def __init__(self, hosts: Iterable[str]) -> None:
        self.run_id = secrets.token_hex(3)
        base = f"{PREFIX}-{os.getpid()}-{self.run_id}"
        self.bridge_netns = f"{base}-bridge"
        self.subnet = _free_subnet()
        addresses = list(self.subnet.hosts())
        self.gateway = str(addresses[0])
        self.root_link = f"wbv{self.run_id}"  # the root end; 15 characters at most
        self.hosts: dict[str, Host] = {
            name: Host(name, f"{base}-{name}", str(addresses[n + 1]), f"p{n}")
            for n, name in enumerate(hosts)
        }
        self._procs: list[subprocess.Popen[Any]] = []

    # -- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> Lab:
        remove_stale()
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _build(self) -> None:
        prefix = self.subnet.prefixlen
        ip("netns", "add", self.bridge_netns)
        self._in(self.bridge_netns, "link", "set", "lo", "up")
        self._in(self.bridge_netns, "link", "add", "br0", "type", "bridge")
        self._in(self.bridge_netns, "link", "set", "br0", "up")
        # The root namespace's leg: .1 here, its peer a port of the bridge.
        ip(
            "link",
            "add",
            self.root_link,
            "type",
            "veth",
            "peer",
            "name",
            "uplink",
            "netns",
            self.bridge_netns,
        )
        ip("addr", "add", f"{self.gateway}/{prefix}", "dev", self.root_link)
        ip("link", "set", self.root_link, "up")
        self._attach("uplink")
        for host in self.hosts.values():
            ip("netns", "add", host.netns)
            self._in(host.netns, "link", "set", "lo", "up")
            self._in(
                self.bridge_netns,
                "link",
                "add",
                host.port,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                host.netns,
            )
            self._in(host.netns, "addr", "add", f"{host.address}/{prefix}", "dev", "eth0")
            self._in(host.netns, "link", "set", "eth0", "up")
            self._attach(host.port)

    def _attach(self, port: str) -> None:
        self._in(self.bridge_netns, "link", "set", port, "master", "br0")
        self._in(self.bridge_netns, "link", "set", port, "up")

    @staticmethod
    def _in(netns: str, *args: str) -> str:
        return ip("-n", netns, *args)

    def close(self) -> None:
        """Kill every process of the lab and delete its namespaces (idempotent)."""
        for proc in self._procs:  # their groups first: children that left the namespace
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        for host in self.hosts.values():
            _kill_namespace(host.netns)
        _kill_namespace(self.bridge_netns)  # takes the bridge and every veth pair with it
        ip("link", "del", self.root_link, check=False)  # normally gone with its peer already
        for proc in self._procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        self._procs.clear()

    # -- using it ------------------------------------------------------------------------------
    def address(self, host: str) -> str:
        return self.hosts[host].address

    def popen(
        self,
        host: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start `argv` on `host` (`ip netns exec` execs it: the pid is the program's), in its
        own process group, stdout and stderr appended to `log_path`."""
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", self.hosts[host].netns, *argv],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
            )
        self._procs.append(proc)
        return proc

    def cut(self, host: str) -> None:
        """Pull the host's cable: its bridge port goes down, its packets are dropped."""
        self._in(self.bridge_netns, "link", "set", self.hosts[host].port, "down")

    def heal(self, host: str) -> None:
        self._in(self.bridge_netns, "link", "set", self.hosts[host].port, "up")

    def block(self, host: str, peer: str) -> None:
        """A partial partition: `host` can no longer send to `peer` (a blackhole route: its
        packets vanish, its connections stall); everything else still reaches it."""
        self._in(self.hosts[host].netns, "route", "add", "blackhole", f"{self.address(peer)}/32")

    def unblock(self, host: str, peer: str) -> None:
        self._in(self.hosts[host].netns, "route", "del", "blackhole", f"{self.address(peer)}/32")
