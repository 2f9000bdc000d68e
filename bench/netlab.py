#!/usr/bin/env python3
"""A venue network in a box: network namespaces, veth pairs and nftables/tbf conditions.

Root only. Server5K runs in one namespace (``s5k-srv-<id>``), the virtual judges in another
(``s5k-cli-<id>``), joined by a veth pair; a judge on a slow link gets a namespace and veth pair
of its own (``s5k-slw<k>-<id>``) shaped with ``tbf``. The kernel this runs on has no ``netem``, so
every condition is made of nftables drops and tbf queues:

* random loss both ways: ``meta protocol ip numgen random mod 100 < N drop`` on the *ingress* of
  both veth ends (netdev family). Dropping on ingress, not on output, matters: a packet dropped
  by an output hook is reported to the sending socket (``connect: Operation not permitted``),
  while one dropped at the far end's ingress just vanishes, as on Wi-Fi;
* a blackhole: packets from (server side) and to (client side) a set of judge addresses are
  dropped on ingress: no RST, no ICMP, nothing;
* the whole link down: every packet dropped on both ingresses;
* a slow link: ``tbf`` on both ends of the slow judge's own veth pair.

Neighbour entries are static (``nud permanent``) and ARP is never dropped, so a link that
comes back does not wait for address resolution and an outage never turns into a local
"no route to host" error: packets simply vanish, then flow again.

Addresses (the same in every run: each run has namespaces of its own, so nothing clashes):
the server is 10.55.0.1, the client namespace 10.55.0.2, judge ``i`` 10.55.16.0/20 + i (one /32
each, so a judge can be targeted by its source address), slow judge ``k`` 10.55.200.(k + 1).

    python bench/netlab.py check      # build a lab, prove every condition works, tear it down
    python bench/netlab.py cleanup    # remove what crashed runs left (s5k-* namespaces)

Nothing here knows Server5K: it is plumbing for ``bench/venue.py`` and ``tests/test_venue.py``.
"""

import ipaddress
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import store  # noqa: E402  (whether a namespace's owner is alive)

PREFIX = "s5k-"
SERVER_ADDR = "10.55.0.1"
CLIENT_ADDR = "10.55.0.2"
JUDGE_NET = ipaddress.ip_network("10.55.16.0/20")
SLOW_BASE = ipaddress.ip_address("10.55.200.1")
SERVER_DEV, CLIENT_DEV = "s5k0", "s5k1"  # veth ends, each inside its own namespace
TABLE = "s5k"


class LabError(RuntimeError):
    pass


def sh(argv, input=None, check=True, timeout=30):
    """Run a command; LabError (with its stderr) if it fails and ``check``."""
    result = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise LabError("%s failed (%d): %s" % (" ".join(argv), result.returncode,
                                                result.stderr.strip() or result.stdout.strip()))
    return result


def unavailable():
    """Why namespaces cannot be built here (a sentence), or None when they can.

    Checks for root, ``ip``, ``nft`` and ``tc``, then really creates a namespace with a veth
    pair, an nftables netdev ingress chain and a tbf qdisc, and removes it.
    """
    if os.geteuid() != 0:
        return "network namespaces need root (running as uid %d)" % os.geteuid()
    for tool, package in (("ip", "iproute2"), ("nft", "nftables"), ("tc", "iproute2")):
        if shutil.which(tool) is None:
            return "`%s` is not installed (Debian package %s)" % (tool, package)
    name = "%schk-%d-%s" % (PREFIX, os.getpid(), secrets.token_hex(2))
    try:
        sh(["ip", "netns", "add", name])
    except (LabError, OSError, subprocess.SubprocessError) as exc:
        return "cannot create a network namespace: %s" % exc
    try:
        sh(["ip", "-n", name, "link", "add", "name", "c0", "type", "veth", "peer", "name", "c1"])
        sh(["ip", "netns", "exec", name, "nft", "-f", "-"], input=(
            'table netdev chk { chain in { type filter hook ingress device "c0" priority 0; '
            "meta protocol ip numgen random mod 100 < 10 drop; }; }\n"))
        sh(["ip", "netns", "exec", name, "tc", "qdisc", "add", "dev", "c0", "root", "tbf",
            "rate", "1kbit", "burst", "1600", "latency", "1s"])
    except (LabError, OSError, subprocess.SubprocessError) as exc:
        return "namespaces work but a network condition does not: %s" % exc
    finally:
        sh(["ip", "netns", "del", name], check=False)
    return None


def _owner_alive(name):
    """Namespaces are named ...-<pid>-<hex>: is the run that made this one still alive?"""
    try:
        pid = int(name.rsplit("-", 2)[-2])
    except (ValueError, IndexError):
        return False
    return store.process_alive(pid)


def lab_namespaces():
    out = sh(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in out.splitlines()
            if line.strip() and line.split()[0].startswith(PREFIX)]


def _kill_namespace_processes(name, grace=3.0):
    """Stop whatever still runs inside a lab namespace (processes a run started there)."""
    pids = [int(p) for p in sh(["ip", "netns", "pids", name], check=False).stdout.split()]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while pids and time.monotonic() < deadline:
            pids = [p for p in pids if os.path.exists("/proc/%d" % p)]
            time.sleep(0.05)
        if not pids:
            return


def cleanup(force=False):
    """Remove ``s5k-*`` namespaces left by runs that died (their owner pid is gone), with the
    processes still inside them. ``force`` removes those of live runs too. Returns the names."""
    removed = []
    for name in lab_namespaces():
        if not force and _owner_alive(name):
            continue
        _kill_namespace_processes(name)
        sh(["ip", "netns", "del", name], check=False)
        removed.append(name)
    return removed


class Namespace:
    def __init__(self, name):
        self.name = name

    def argv(self, argv):
        return ["ip", "netns", "exec", self.name] + list(argv)

    def run(self, argv, **kwargs):
        return sh(self.argv(argv), **kwargs)

    def nft(self, text):
        return sh(self.argv(["nft", "-f", "-"]), input=text)

    def __repr__(self):
        return "Namespace(%s)" % self.name


class SlowLink:
    """A judge's own namespace joined to the server's by a tbf-shaped veth pair."""

    def __init__(self, lab, index, rate, burst, latency):
        self.ns = Namespace("%sslw%d-%s" % (PREFIX, index, lab.id))
        self.address = str(SLOW_BASE + index)
        self.server_dev = "s5kslow%d" % index
        self.rate, self.burst, self.latency = rate, burst, latency
        self._lab = lab

    def create(self):
        lab, srv = self._lab, self._lab.srv
        sh(["ip", "netns", "add", self.ns.name])
        lab._made.append(self.ns.name)
        sh(["ip", "-n", srv.name, "link", "add", "name", self.server_dev, "type", "veth", "peer",
            "name", CLIENT_DEV, "netns", self.ns.name])
        batch_srv = ["link set %s up" % self.server_dev,
                     "route add %s/32 dev %s src %s" % (self.address, self.server_dev,
                                                        SERVER_ADDR)]
        batch_cli = ["link set lo up", "link set %s up" % CLIENT_DEV,
                     "addr add %s/32 dev %s" % (self.address, CLIENT_DEV),
                     "route add %s/32 dev %s" % (SERVER_ADDR, CLIENT_DEV)]
        _batch(srv, batch_srv)
        _batch(self.ns, batch_cli)
        _pin_neighbour(srv, self.server_dev, self.address, self.ns, CLIENT_DEV)
        _pin_neighbour(self.ns, CLIENT_DEV, SERVER_ADDR, srv, self.server_dev)
        for ns, dev in ((srv, self.server_dev), (self.ns, CLIENT_DEV)):
            ns.run(["tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", self.rate,
                    "burst", str(self.burst), "latency", self.latency])
        return self

    def qdisc_stats(self):
        """``tc -s qdisc`` of both ends: bytes sent, drops, backlog."""
        return {side: ns.run(["tc", "-s", "qdisc", "show", "dev", dev]).stdout
                for side, ns, dev in (("server", self._lab.srv, self.server_dev),
                                      ("judge", self.ns, CLIENT_DEV))}


def _batch(ns, commands):
    sh(["ip", "-n", ns.name, "-batch", "-"], input="\n".join(commands) + "\n")


def _mac(ns, dev):
    out = ns.run(["cat", "/sys/class/net/%s/address" % dev]).stdout.strip()
    if not out:
        raise LabError("no MAC address for %s in %s" % (dev, ns.name))
    return out


def _pin_neighbour(ns, dev, address, peer_ns, peer_dev):
    """A permanent neighbour entry: ARP is never needed, so it can never fail mid-outage."""
    sh(["ip", "-n", ns.name, "neigh", "replace", address, "lladdr", _mac(peer_ns, peer_dev),
        "dev", dev, "nud", "permanent"])


class Lab:
    """Two namespaces joined by a veth pair, with conditions changed at will.

    ``with Lab(judges=200) as lab:`` builds it (``judges`` source addresses in the client
    namespace, see :meth:`judge_address`) and removes everything on the way out, Ctrl-C
    included: the processes started with :meth:`popen`, the namespaces, the veth pairs (which
    go with their namespaces) and the nftables tables (which live inside them).
    """

    def __init__(self, judges=0, run_id=None):
        self.id = run_id or "%d-%s" % (os.getpid(), secrets.token_hex(3))
        self.srv = Namespace("%ssrv-%s" % (PREFIX, self.id))
        self.cli = Namespace("%scli-%s" % (PREFIX, self.id))
        self.judges = judges
        self.slow_links = []
        self._made = []
        self._procs = []
        self._lock = threading.Lock()
        self.loss_pct = 0
        self.blackholed = set()
        self.down = False
        self.log = []  # (time.monotonic(), description) of every change of conditions

    # -- building ---------------------------------------------------------------------------------
    def __enter__(self):
        try:
            self.create()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def create(self):
        if self.judges > JUDGE_NET.num_addresses - 2:
            raise LabError("at most %d judge addresses" % (JUDGE_NET.num_addresses - 2))
        for ns in (self.srv, self.cli):
            sh(["ip", "netns", "add", ns.name])
            self._made.append(ns.name)
        sh(["ip", "-n", self.srv.name, "link", "add", "name", SERVER_DEV, "type", "veth", "peer",
            "name", CLIENT_DEV, "netns", self.cli.name])
        # The server reaches every judge through the client namespace's own address (one
        # neighbour entry for thousands of judge addresses).
        _batch(self.srv, ["link set lo up", "link set %s up" % SERVER_DEV,
                          "addr add %s/32 dev %s" % (SERVER_ADDR, SERVER_DEV),
                          "route add %s/32 dev %s" % (CLIENT_ADDR, SERVER_DEV),
                          "route add %s via %s dev %s" % (JUDGE_NET, CLIENT_ADDR, SERVER_DEV)])
        _batch(self.cli, ["link set lo up", "link set %s up" % CLIENT_DEV,
                          "addr add %s/32 dev %s" % (CLIENT_ADDR, CLIENT_DEV),
                          "route add %s/32 dev %s" % (SERVER_ADDR, CLIENT_DEV)])
        self.add_judge_addresses(self.judges)
        _pin_neighbour(self.srv, SERVER_DEV, CLIENT_ADDR, self.cli, CLIENT_DEV)
        _pin_neighbour(self.cli, CLIENT_DEV, SERVER_ADDR, self.srv, SERVER_DEV)
        self.apply("created")
        return self

    def add_judge_addresses(self, count, first=0):
        """Give the client namespace judge addresses ``first`` .. ``first + count - 1``."""
        if count:
            _batch(self.cli, ["addr add %s/32 dev %s" % (self.judge_address(i), CLIENT_DEV)
                              for i in range(first, first + count)])

    @staticmethod
    def judge_address(index):
        """Judge ``index``'s own source address (10.55.16.1 for judge 0, ...)."""
        return str(JUDGE_NET.network_address + 1 + index)

    def add_slow_link(self, rate="1kbit", burst=1600, latency="60s"):
        """A new namespace for one judge on a tbf link of ``rate`` both ways. ``burst`` (bytes)
        must hold one full frame (1,514) or nothing passes; ``latency`` bounds the queue."""
        link = SlowLink(self, len(self.slow_links), rate, burst, latency).create()
        self.slow_links.append(link)
        return link

    # -- processes inside ---------------------------------------------------------------------------
    def popen(self, ns, argv, **kwargs):
        """Start ``argv`` inside ``ns`` (``ip netns exec`` execs it: same pid). Stopped on close."""
        kwargs.setdefault("start_new_session", True)  # Ctrl-C reaches us, not it: we stop it
        process = subprocess.Popen(ns.argv(argv), **kwargs)
        self._procs.append(process)
        return process

    def stop_process(self, process, timeout=15):
        """SIGTERM, then SIGKILL after ``timeout`` seconds. Returns the exit code."""
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        return process.returncode

    # -- conditions ---------------------------------------------------------------------------------
    def set_loss(self, pct):
        """Random loss of ``pct`` % of IP packets in each direction (0 = none)."""
        self.loss_pct = int(pct)
        self.apply("loss %d%%" % self.loss_pct)

    def blackhole(self, addresses):
        """Drop every packet from and to these judge addresses (added to those already dropped)."""
        self.blackholed |= set(addresses)
        self.apply("blackhole +%d (%d)" % (len(addresses), len(self.blackholed)))

    def restore(self, addresses=None):
        """Let these addresses (default: all) through again."""
        self.blackholed -= set(self.blackholed if addresses is None else addresses)
        self.apply("restore (%d still blackholed)" % len(self.blackholed))

    def set_down(self, down=True):
        """The whole link down (every packet both ways vanishes) or back up."""
        self.down = bool(down)
        self.apply("link down" if down else "link up")

    def clear(self):
        self.loss_pct, self.blackholed, self.down = 0, set(), False
        self.apply("clear")

    def _ruleset(self, dev, direction):
        lines = ["table netdev %s" % TABLE, "delete table netdev %s" % TABLE,
                 "table netdev %s {" % TABLE,
                 "  set black { type ipv4_addr; %s}" % (
                     "elements = { %s }; " % ", ".join(sorted(self.blackholed))
                     if self.blackholed else ""),
                 "  chain in {",
                 '    type filter hook ingress device "%s" priority 0; policy accept;' % dev]
        if self.down:
            lines.append("    meta protocol ip drop")
        lines.append("    ip %s @black drop" % direction)
        if self.loss_pct:
            lines.append("    meta protocol ip numgen random mod 100 < %d drop" % self.loss_pct)
        lines += ["  }", "}"]
        return "\n".join(lines) + "\n"

    def apply(self, why=""):
        """Load the current conditions into both namespaces (each load is one nft transaction)."""
        with self._lock:
            # Server side: what arrives from judges; client side: what arrives for them.
            self.srv.nft(self._ruleset(SERVER_DEV, "saddr"))
            self.cli.nft(self._ruleset(CLIENT_DEV, "daddr"))
            self.log.append((time.monotonic(), why))

    def at(self, delay_s, action, *args):
        """Run ``action(*args)`` ``delay_s`` seconds from now on a timer thread (a schedule)."""
        timer = threading.Timer(delay_s, action, args)
        timer.daemon = True
        timer.start()
        return timer

    def counters(self):
        """nft ruleset with counters is not kept; the change log is: [(monotonic, what)]."""
        return list(self.log)

    # -- tearing down -------------------------------------------------------------------------------
    def close(self):
        for process in reversed(self._procs):
            try:
                self.stop_process(process, timeout=10)
            except Exception:  # noqa: BLE001  (go on removing the rest)
                pass
        self._procs = []
        for name in reversed(self._made):
            _kill_namespace_processes(name)
            sh(["ip", "netns", "del", name], check=False)
        self._made = []


# ------------------------------------------------------------------------------------------------
# `check`: each condition measured on this machine
# ------------------------------------------------------------------------------------------------
PY = sys.executable
_UDP_SINK = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(float(sys.argv[3]))
n = 0
try:
    while True:
        s.recv(64)
        n += 1
except socket.timeout:
    pass
print(n)
"""
_UDP_SEND = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 0))
for i in range(int(sys.argv[4])):
    s.sendto(b"x", (sys.argv[2], int(sys.argv[3])))
    if i % 50 == 0:
        time.sleep(0.001)
"""
_TCP_CONNECT = r"""
import socket, sys, time
s = socket.socket()
s.bind((sys.argv[1], 0))
s.settimeout(float(sys.argv[4]))
t = time.monotonic()
try:
    s.connect((sys.argv[2], int(sys.argv[3])))
    print("connected %.3f" % (time.monotonic() - t))
except OSError as exc:
    print("%s %.3f" % (type(exc).__name__, time.monotonic() - t))
"""
_TCP_SINK = r"""
import socket, sys, time
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((sys.argv[1], int(sys.argv[2])))
l.listen(64)
l.settimeout(float(sys.argv[3]))
try:
    while True:
        c, _ = l.accept()
        c.settimeout(float(sys.argv[3]))
        t0, n = time.monotonic(), 0
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                n += len(d)
        except socket.timeout:
            pass
        print("%d bytes in %.2f s" % (n, time.monotonic() - t0), flush=True)
        c.close()
except socket.timeout:
    pass
"""
_TCP_SEND = r"""
import socket, sys
s = socket.create_connection((sys.argv[2], int(sys.argv[3])), timeout=60,
                             source_address=(sys.argv[1], 0))
s.sendall(b"x" * int(sys.argv[4]))
s.shutdown(socket.SHUT_WR)
s.recv(1)  # returns when the sink has read everything and closed
s.close()
"""


def _udp_loss(lab, src_ns, src, dst_ns, dst, count=4000, port=9001):
    sink = lab.popen(dst_ns, [PY, "-c", _UDP_SINK, dst, str(port), "1.5"],
                     stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)
    src_ns.run([PY, "-c", _UDP_SEND, src, dst, str(port), str(count)])
    received = int(sink.communicate(timeout=20)[0].strip() or 0)
    return 100.0 * (count - received) / count


def _connect(lab, ns, src, dst, port, timeout):
    return ns.run([PY, "-c", _TCP_CONNECT, src, dst, str(port), str(timeout)]).stdout.strip()


def check(out=print):
    """Build a lab and measure each condition; returns True when every one behaves."""
    reason = unavailable()
    if reason:
        out("cannot run: " + reason)
        return False
    ok = True

    def verdict(name, good, detail):
        nonlocal ok
        ok &= bool(good)
        out("%-4s %-34s %s" % ("ok" if good else "FAIL", name, detail))

    with Lab(judges=4) as lab:
        a0, a1 = lab.judge_address(0), lab.judge_address(1)
        out("lab %s: server %s in %s, judges %s.. in %s" % (
            lab.id, SERVER_ADDR, lab.srv.name, a0, lab.cli.name))
        port = 9100
        sink = lab.popen(lab.srv, [PY, "-c", _TCP_SINK, SERVER_ADDR, str(port), "30"],
                         stdout=subprocess.PIPE, text=True)
        time.sleep(0.3)
        result = _connect(lab, lab.cli, a0, SERVER_ADDR, port, 3)
        verdict("clean link: TCP connect", result.startswith("connected"), result)
        loss = _udp_loss(lab, lab.cli, a0, lab.srv, SERVER_ADDR)
        verdict("clean link: UDP loss", loss < 1, "%.1f %% of 4000 datagrams" % loss)

        lab.set_loss(10)
        up = _udp_loss(lab, lab.cli, a0, lab.srv, SERVER_ADDR, port=9002)
        down = _udp_loss(lab, lab.srv, SERVER_ADDR, lab.cli, a0, port=9003)
        verdict("loss 10 %: judge -> server", 7 <= up <= 13, "%.1f %% of 4000 datagrams lost" % up)
        verdict("loss 10 %: server -> judge", 7 <= down <= 13,
                "%.1f %% of 4000 datagrams lost" % down)
        lab.set_loss(0)

        lab.blackhole([a1])
        result = _connect(lab, lab.cli, a1, SERVER_ADDR, port, 3)
        verdict("blackhole: connect from a1 vanishes", result.startswith("TimeoutError")
                or result.startswith("timeout"), result + " (no RST, no ICMP: a timeout)")
        result = _connect(lab, lab.cli, a0, SERVER_ADDR, port, 3)
        verdict("blackhole: a0 unaffected", result.startswith("connected"), result)
        loss = _udp_loss(lab, lab.srv, SERVER_ADDR, lab.cli, a1, count=500, port=9004)
        verdict("blackhole: server -> a1", loss == 100, "%.0f %% lost" % loss)
        lab.restore()
        result = _connect(lab, lab.cli, a1, SERVER_ADDR, port, 3)
        verdict("blackhole restored: a1 connects", result.startswith("connected"), result)

        lab.set_down(True)
        result = _connect(lab, lab.cli, a0, SERVER_ADDR, port, 2)
        verdict("link down: connect vanishes", result.startswith("TimeoutError")
                or result.startswith("timeout"), result)
        # A connect begun while down succeeds by SYN retransmission once the link is back.
        lab.at(1.5, lab.set_down, False)
        result = _connect(lab, lab.cli, a0, SERVER_ADDR, port, 10)
        verdict("link back up mid-connect", result.startswith("connected"),
                result + " (SYN retransmitted every second: tcp_syn_linear_timeouts)")

        slow = lab.add_slow_link("1kbit", burst=1600, latency="60s")
        size = 2000
        slow.ns.run([PY, "-c", _TCP_SEND, slow.address, SERVER_ADDR, str(port), str(size)],
                    timeout=90)
        time.sleep(0.2)
        sink.send_signal(signal.SIGTERM)
        lines = sink.communicate(timeout=20)[0].strip().splitlines()
        last = lines[-1] if lines else "nothing received"
        try:
            got, seconds = int(last.split()[0]), float(last.split()[3])
            rate = got * 8 / max(seconds, 0.001)
        except (ValueError, IndexError):
            got, seconds, rate = 0, 0, 0
        # 1,600 bytes of burst pass at once, the rest at 1 kbit/s (plus TCP/IP headers).
        verdict("slow link (tbf 1 kbit/s)", got == size and 1.5 <= seconds <= 20,
                "%s (%.0f bit/s of payload after a %d-byte burst)" % (last, rate, slow.burst))
        out(slow.qdisc_stats()["judge"].strip().replace("\n", " | "))
    out("torn down; leftovers: %s" % (lab_namespaces() or "none"))
    return ok


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv else "check"
    if command == "check":
        return 0 if check() else 1
    if command == "cleanup":
        removed = cleanup(force="--force" in argv)
        print("removed: %s" % (", ".join(removed) or "nothing"))
        return 0
    print(__doc__)
    return 2


def interrupt_on_sigterm():
    """Make SIGTERM unwind like Ctrl-C, so the ``with Lab()`` cleanup runs either way."""
    def handler(signum, frame):
        raise KeyboardInterrupt("signal %d" % signum)
    signal.signal(signal.SIGTERM, handler)


if __name__ == "__main__":
    interrupt_on_sigterm()
    sys.exit(main())
