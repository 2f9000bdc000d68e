#!/usr/bin/env python3
"""Server5K on venue Wi-Fi, proven with real kernel tools (issue 15). Root only.

    .venv/bin/python bench/venue.py                      # every scenario, full size
    .venv/bin/python bench/venue.py --scenario storm500  # one of them
    .venv/bin/python bench/venue.py --short --json out.json   # the CI size (about 2 minutes)

Each scenario gets a fresh event database (an organizer, N judges with a team each, and a
probe judge in a competition of its own), a fresh lab (``bench/netlab.py``: the server in
namespace ``s5k-srv-<id>``, the judges in ``s5k-cli-<id>``, one veth pair between them) and a
fresh server: ``python server5k.py --config FILE serve`` run inside the server namespace,
listening on 10.55.0.1. The virtual judges (``bench/venue_agent.py judges``: rehearsal's
VirtualJudge, each with its own source address, reconnecting with backoff all race, logging in
again on 401, retrying uploads with the same ``id_registro``) run in the client namespace; the
organizer's start and the stall probe (``venue_agent.py control``) run in the server namespace,
next to the server, on a link nothing impairs.

Scenarios (issue 15):

* ``loss10``      200 judges, 10 % random loss both ways through connect, start and upload;
* ``blackhole30`` 30 % of the judges blackholed for 20 s across the start (10 s before it,
                  10 s after), then restored;
* ``linkdown5``   every judge's link down for 5 s from the moment of the start;
* ``slowjudge``   one judge on its own 1 kbit/s link (tbf both ways) whose app sends a
                  clock-sync ping every 0.5 s, while the race starts for 199 others;
* ``storm500``    500 judges connected; the access point reboots (link down 3 s, the start
                  fired 1 s into it); the phones come back with new addresses (the old ones stay
                  cut off, so the server's old sockets are half-open) and all 500 log in, read
                  /api/me/ and reconnect within one second.

Figures per scenario: judges told of the start and the delay after their link came back (from
the start request for judges whose link never went away), p50/p99/max; records acknowledged
(201) vs stored in the SQLite file read after the server stopped (lost, duplicated); the worst
event-loop stall, measured from outside (the round trip of a ``{"type": "ping"}`` sent every
10 ms on a probe judge socket from the server namespace: the server exposes no loop-lag gauge);
the server's RSS (VmRSS) before the judges arrive and after the uploads, and its peak (VmHWM).
``--short`` runs fewer judges and shorter outages, and the server pings sockets every 5 s
rather than the default 20 s so that half-open sockets are dropped within the run.
"""

import argparse
import json
import os
import queue
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import netlab  # noqa: E402

PY = sys.executable
AGENT = str(ROOT / "bench" / "venue_agent.py")
SECRET = "venue-secret-" + "v" * 40
PASSWORD = "venue-pass"
PORT = 8000  # inside the server namespace: nothing else listens there

# CPUs: the server gets CPU 0 to itself and the harness (judges, probe) the others, so the
# stall the probe measures is the server's and not the judges' Python stealing its core.
# Only with ``--pin``; by default the kernel places everything. None = not pinned.
PINNING = {"server": None, "harness": None}


def pin(role):
    cpus = PINNING[role]
    if cpus is None:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


# ------------------------------------------------------------------------------------------------
# The event
# ------------------------------------------------------------------------------------------------
def seed(db_path, judges):
    """Competition 1 with an organizer and juez1..N (a team each); competition 2 holds the
    probe judge. One password hash for everyone: hashing 500 passwords would take 25 s."""
    import models  # the seeding is the only use of the server's code in this process
    import identity

    models.open_database(str(db_path))
    password_hash = identity.hash_password(PASSWORD)
    now = models.utcnow()
    with models.db.connection_context(), models.db.atomic():
        models.Competencia.create(id=1, nombre="Venue 5K")
        models.Competencia.create(id=2, nombre="Probe")
        users = [{"id": 1, "username": "org", "username_key": "org",
                  "password_hash": password_hash, "is_organizer": True, "created_at": now},
                 {"id": 2, "username": "probe", "username_key": "probe",
                  "password_hash": password_hash, "is_organizer": False, "created_at": now}]
        users += [{"id": k + 2, "username": "juez%d" % k, "username_key": "juez%d" % k,
                   "password_hash": password_hash, "is_organizer": False, "created_at": now}
                  for k in range(1, judges + 1)]
        jueces = [{"id": 1, "user": 2, "competencia": 2, "nombre": "Probe"}]
        jueces += [{"id": k + 1, "user": k + 2, "competencia": 1, "nombre": "Juez %d" % k}
                   for k in range(1, judges + 1)]
        equipos = [{"id": k, "competencia": 1, "nombre": "Equipo %d" % k, "dorsal": k,
                    "juez": k + 1} for k in range(1, judges + 1)]
        for rows, model in ((users, models.User), (jueces, models.Juez),
                            (equipos, models.Equipo)):
            for start in range(0, len(rows), 500):
                model.insert_many(rows[start:start + 500]).execute()
    models.db.close()


def stored_records(db_path):
    """{id_registro hex: rows} and the number of (equipo, timestamp, tiempo) repeated."""
    db = sqlite3.connect(str(db_path))
    try:
        by_id = {str(k).replace("-", "").lower(): n for k, n in db.execute(
            "SELECT id_registro, COUNT(*) FROM registro_tiempo GROUP BY id_registro")}
        repeated = db.execute(
            "SELECT COALESCE(SUM(n - 1), 0) FROM (SELECT COUNT(*) AS n FROM registro_tiempo "
            "GROUP BY equipo_id, timestamp, tiempo HAVING n > 1)").fetchone()[0]
    finally:
        db.close()
    return by_id, repeated


# ------------------------------------------------------------------------------------------------
# Processes in the lab
# ------------------------------------------------------------------------------------------------
class Agent:
    """A venue_agent.py process in a namespace, one JSON command and answer per line."""

    def __init__(self, lab, ns, role, spec, workdir, name):
        self.name = name
        spec_path = Path(workdir) / ("%s.json" % name)
        spec_path.write_text(json.dumps(spec))
        self.log_path = Path(workdir) / ("%s.log" % name)
        with open(self.log_path, "w") as log:
            self.process = lab.popen(ns, [PY, AGENT, role, str(spec_path)],
                                     preexec_fn=pin("harness"),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                     text=True, bufsize=1, cwd=str(ROOT))
        self._lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self._next(30)

    def _read(self):
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _next(self, timeout):
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError("agent %s did not answer within %s s" % (self.name, timeout))
        if line is None:
            raise RuntimeError("agent %s exited (%s): %s" % (
                self.name, self.process.poll(), self.log_path.read_text()[-2000:]))
        return json.loads(line)

    def call(self, cmd, _timeout=None, **args):
        """Send a command, wait for its answer (``_timeout``: default its own timeout + 60 s)."""
        self.process.stdin.write(json.dumps(dict(args, cmd=cmd)) + "\n")
        self.process.stdin.flush()
        answer = self._next(_timeout or args.get("timeout", 0) + 60)
        if "error" in answer:
            raise RuntimeError("agent %s: %s failed: %s" % (self.name, cmd, answer["error"]))
        return answer


def proc_status(pid):
    """VmRSS and VmHWM of a process, KiB."""
    values = {}
    for line in Path("/proc/%d/status" % pid).read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


class RssWatch(threading.Thread):
    """The server's VmRSS every ``every`` seconds."""

    def __init__(self, pid, every=0.5):
        super().__init__(daemon=True)
        self.pid, self.every, self.samples = pid, every, []
        self._stop_event = threading.Event()

    def run(self):
        while not self._stop_event.wait(self.every):
            try:
                self.samples.append((time.monotonic(), proc_status(self.pid)["VmRSS"]))
            except OSError:
                return

    def stop(self):
        self._stop_event.set()
        self.join(5)
        return self.samples


class SendQueueWatch:
    """Samples the server's kernel send queue towards one address (``ss`` in its namespace)."""

    def __init__(self, lab, address, every=0.5):
        self.lab, self.address, self.every = lab, address, every
        self.samples = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(self.every):
            out = self.lab.srv.run(["ss", "-tnH", "state", "established", "dst", self.address],
                                   check=False).stdout
            queued = [int(line.split()[1]) for line in out.splitlines() if line.split()]
            self.samples.append((time.monotonic(), max(queued) if queued else 0))

    def stop(self):
        self._stop.set()
        self._thread.join(5)
        return self.samples


# ------------------------------------------------------------------------------------------------
# One scenario run
# ------------------------------------------------------------------------------------------------
class Run:
    """Everything one scenario needs: event, lab, server, agents; and what they saw."""

    def __init__(self, name, judges, workdir, ping_interval, alt_addresses=False,
                 judge_options=None):
        self.name, self.judges, self.workdir = name, judges, Path(workdir)
        self.ping_interval = ping_interval
        self.judge_options = dict(judge_options or {})
        self.db_path = self.workdir / "event.db"
        self.phases = []          # (name, monotonic start)
        self.marks = {}
        self.lab = netlab.Lab(judges=judges * (2 if alt_addresses else 1))
        self.alt = alt_addresses
        self.server = None
        self.control = self.crowd = None
        self.slow_agents = []
        self.slow_links = []

    def phase(self, name):
        self.phases.append((name, time.monotonic()))
        say("  [%s] %5.1f s  %s" % (self.name, time.monotonic() - self.phases[0][1], name))

    @property
    def base_url(self):
        return "http://%s:%d" % (netlab.SERVER_ADDR, PORT)

    def __enter__(self):
        self.lab.__enter__()
        return self

    def __exit__(self, *exc):
        self.lab.close()
        return False

    def start(self):
        seed(self.db_path, self.judges)
        self.config_path = self.workdir / "config.yaml"
        self.config_path.write_text(json.dumps({  # JSON is YAML
            "server": {"host": netlab.SERVER_ADDR, "port": PORT,
                       "ws_ping_interval_s": self.ping_interval},
            "database": {"path": str(self.db_path)}}))
        self.server_log = self.workdir / "server.log"
        env = dict(os.environ, SERVER5K_SECRET_KEY=SECRET, PYTHONUNBUFFERED="1")
        with open(self.server_log, "w") as log:
            self.server = self.lab.popen(
                self.lab.srv, [PY, str(ROOT / "server5k.py"), "--config", str(self.config_path),
                               "serve"], stdout=log, stderr=subprocess.STDOUT, env=env,
                preexec_fn=pin("server"),
                cwd=str(ROOT))
        deadline = time.monotonic() + 30
        while "listening on" not in self.server_log.read_text():
            if self.server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start:\n" + self.server_log.read_text())
            time.sleep(0.05)
        self.control = Agent(self.lab, self.lab.srv, "control", {
            "base_url": self.base_url, "organizer": ["org", PASSWORD],
            "probe": ["probe", PASSWORD], "competencia_id": 1}, self.workdir, "control")
        self.control.call("login")
        self.control.call("probe_start", every=0.01)
        time.sleep(1.0)
        self.rss_before = proc_status(self.server.pid)
        self.phase("idle")

    def judge_spec(self, index, addr=None):
        spec = {"username": "juez%d" % (index + 1), "password": PASSWORD,
                "addr": addr or self.lab.judge_address(index)}
        if self.alt:
            spec["alt_addr"] = self.lab.judge_address(self.judges + index)
        return spec

    def start_crowd(self, count, **options):
        self.crowd = Agent(self.lab, self.lab.cli, "judges", dict(
            self.judge_options, **options, base_url=self.base_url,
            judges=[self.judge_spec(i) for i in range(count)]), self.workdir, "judges")
        return self.crowd

    def start_single(self, index, name, **options):
        """One more judge (``index``) in the client namespace, in a process of its own."""
        agent = Agent(self.lab, self.lab.cli, "judges", dict(
            self.judge_options, **dict(options, base_url=self.base_url,
                                       judges=[self.judge_spec(index)])), self.workdir, name)
        self.slow_agents.append(agent)
        return agent

    def start_slow(self, index, rate="1kbit", **options):
        link = self.lab.add_slow_link(rate)
        self.slow_links.append(link)
        agent = Agent(self.lab, link.ns, "judges", dict(
            self.judge_options, **options, base_url=self.base_url, request_timeout=120,
            judges=[self.judge_spec(index, link.address)]), self.workdir,
            "slow%d" % len(self.slow_agents))
        self.slow_agents.append(agent)
        return agent, link

    def fire_start(self):
        answer = self.control.call("start")
        if answer["status"] != 200:
            raise RuntimeError("start refused: %s" % answer)
        self.marks["start"] = answer["t_sent"]
        self.marks["start_answered"] = answer["t_answered"]
        self.marks["notified"] = answer["notificados"]
        return answer

    def finish(self):
        """Stop probing, read memory, stop everything and read the database."""
        self.phase("end")
        self.rss_after = proc_status(self.server.pid)
        agents = [a for a in [self.crowd] + self.slow_agents if a is not None]
        reports = [a.call("report") for a in agents]
        probe = self.control.call("probe_stop")
        for agent in agents + [self.control]:
            try:
                agent.call("close", _timeout=10)
            except RuntimeError:
                pass
            self.lab.stop_process(agent.process)
        code = self.lab.stop_process(self.server, timeout=30)
        self.server_exit = code
        self.stored, self.repeated = stored_records(self.db_path)
        return reports, probe


def say(text):
    print(text, file=sys.stderr, flush=True)


def pct(values, p):
    if not values:
        return None
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, int(round(p / 100.0 * len(ordered) + 0.5)) - 1))
    return ordered[index]


def dist(values_s):
    """p50/p99/max in ms of a list of seconds."""
    ms = [v * 1000 for v in values_s]
    return {"n": len(ms), "p50_ms": _r(pct(ms, 50)), "p99_ms": _r(pct(ms, 99)),
            "max_ms": _r(max(ms) if ms else None)}


def _r(value):
    return None if value is None else round(value, 1)


def stall_by_phase(run, probe):
    """The server's loop stall seen from outside, per phase: for each probe ping, how long the
    server took to answer it (``one_way``: its pong's server_time minus our send time, both the
    machine's clock, 1 ms resolution) and the round trip (which also counts the probe process
    being late to read). Unanswered pings count as their age when the probe stopped."""
    samples = probe["samples"] + probe["unanswered"]
    bounds = run.phases + [("_", float("inf"))]
    result = {}
    for (name, begin), (_, end) in zip(bounds, bounds[1:]):
        inside = [s for s in samples if begin <= s[0] < end]
        if inside:
            result[name] = {"max_ms": _r(max(s[2] for s in inside)),
                            "rtt_max_ms": _r(max(s[1] for s in inside)), "pings": len(inside)}
    one_way = [s[2] for s in samples]
    worst = max(samples, key=lambda s: s[2]) if samples else None
    return {"max_ms": _r(max(one_way)) if one_way else None, "p99_ms": _r(pct(one_way, 99)),
            "rtt_max_ms": _r(max(s[1] for s in samples)) if samples else None,
            "rtt_p99_ms": _r(pct([s[1] for s in samples], 99)),
            "pings": len(samples), "unanswered": len(probe["unanswered"]),
            "worst_at_s": _r(worst[0] - run.marks["start"]) if worst and "start" in run.marks
            else None, "by_phase": result, "probe_client_loop_lag": probe["loop_lag"]}


def socket_drops(log_path, since_wall):
    """Seconds after ``since_wall`` at which the server dropped a judge socket that had not
    closed it (its log says ``code None``: a ping timeout or a broken connection)."""
    import datetime as dt

    drops = []
    for line in log_path.read_text(errors="replace").splitlines():
        if "disconnected (code None)" not in line:
            continue
        stamp = dt.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if stamp >= since_wall:
            drops.append(stamp - since_wall)
    return drops


def server_log_counts(path):
    text = path.read_text(errors="replace")
    counts = Counter()
    for line in text.splitlines():
        m = re.search(r"tornado\.access: (\d{3}) (GET|POST) (\S+)", line)
        if m:
            status, path_ = m.group(1), re.sub(r"\d+", "N", m.group(3).split("?")[0])
            if path_ == "/api/token/":
                counts["logins answered (any status)"] += 1
            if status != "200" and status != "201" and status != "101":
                counts["%s %s" % (status, path_)] += 1
        if " ERROR " in line:
            counts["ERROR lines"] += 1
        if "Traceback" in line:
            counts["tracebacks"] += 1
    counts["judge sockets closed"] = len(re.findall(r"juez \d+ disconnected", text))
    counts["judge sockets opened"] = len(re.findall(r"juez \d+ connected", text))
    return dict(counts)


def figures(run, reports, probe, reference, extra=None):
    """The scenario's figures. ``reference(judge_report) -> monotonic`` is when that judge's
    link came back (or the start request, for a judge whose link never went away)."""
    judges = [j for r in reports for j in r["judges"]]
    told = [j for j in judges if j["start_mono"] is not None]
    delays = {}
    for j in told:
        ref, group = reference(j)
        delays.setdefault(group, []).append(j["start_mono"] - ref)
    acked = set().union(*[set(j["acked"]) for j in judges]) if judges else set()
    unacked = set().union(*[set(j["unacked"]) for j in judges]) if judges else set()
    stored = run.stored
    lost = sorted(i for i in acked if i not in stored)
    doubled = sum(n - 1 for n in stored.values() if n > 1) + run.repeated
    errors = Counter()
    for r in reports:
        errors.update(r["status"]["errors"])
    result = {
        "scenario": run.name, "judges": len(judges),
        "ws_ping_interval_s": run.ping_interval,
        "told_of_start": len(told),
        "not_told": [j["username"] for j in judges if j["start_mono"] is None][:20],
        "start_delay": {group: dist(values) for group, values in sorted(delays.items())},
        "notified_by_broadcast": run.marks.get("notified"),
        "start_request_ms": _r((run.marks["start_answered"] - run.marks["start"]) * 1000),
        "records": {"sent": len(acked | unacked), "acknowledged": len(acked),
                    "never_acknowledged": len(unacked), "stored": len(stored),
                    "lost": len(lost), "duplicated": doubled,
                    "stored_not_acknowledged": len([i for i in unacked if i in stored])},
        "judges_failed": [(j["username"], j["failed"]) for j in judges if j["failed"]][:20],
        "uploads_done": sum(j["uploaded"] for j in judges),
        "submit_tries": sum(j["submit_tries"] for j in judges),
        "reconnects": sum(max(0, len(j["opened"]) - 1) for j in judges),
        "client_errors": dict(errors),
        "client_loop_lag": [r["status"]["loop_lag"] for r in reports],
        "stall": stall_by_phase(run, probe),
        "rss_kib": {"before": run.rss_before["VmRSS"], "after": run.rss_after["VmRSS"],
                    "peak": run.rss_after["VmHWM"]},
        "server_log": server_log_counts(run.server_log),
        "server_exit": run.server_exit,
        "link_changes": [(round(t - run.marks.get("start", t), 3), what)
                         for t, what in run.lab.log],
    }
    result.update(extra or {})
    return result


# ------------------------------------------------------------------------------------------------
# The scenarios
# ------------------------------------------------------------------------------------------------
def _arrive(run, agent, spread, timeout=180):
    run.phase("arrive")
    agent.call("arrive", spread_s=spread)
    status = agent.call("wait", what="connected", timeout=timeout, _timeout=timeout + 30)
    say("  [%s] connected %d/%d (failed %d)" % (run.name, status["connected"], status["judges"],
                                                  status["failed"]))
    return status


def _upload(run, agents, spread=5.0, timeout=240):
    run.phase("upload")
    for agent in agents:
        agent.call("upload", spread_s=spread, deadline_s=timeout)
    for agent in agents:
        status = agent.call("wait", what="uploaded", timeout=timeout + spread,
                            _timeout=timeout + spread + 30)
        say("  [%s] uploaded %d/%d" % (run.name, status["uploaded"], status["judges"]))


def _wait_started(run, agents, timeout):
    for agent in agents:
        status = agent.call("wait", what="started", timeout=timeout, _timeout=timeout + 30)
        say("  [%s] told of the start %d/%d" % (run.name, status["started"], status["judges"]))


def loss10(run, size):
    crowd = run.start_crowd(run.judges)
    run.lab.set_loss(10)
    _arrive(run, crowd, spread=2.0)
    time.sleep(1.0)
    run.phase("start")
    run.fire_start()
    _wait_started(run, [crowd], 60)
    _upload(run, [crowd])
    run.lab.set_loss(0)
    reports, probe = run.finish()
    return figures(run, reports, probe, lambda j: (run.marks["start"], "from the start request"),
                   {"loss_pct": 10})


def blackhole30(run, size):
    before, outage = (10, 20) if size == "full" else (3, 8)
    crowd = run.start_crowd(run.judges)
    _arrive(run, crowd, spread=2.0)
    time.sleep(1.0)
    count = max(1, round(run.judges * 0.3))
    cut = set(random.sample([run.lab.judge_address(i) for i in range(run.judges)], count))
    run.phase("blackhole")
    run.lab.blackhole(cut)
    t_cut = time.monotonic()
    time.sleep(before)
    run.phase("start")
    run.fire_start()
    time.sleep(max(0, t_cut + outage - time.monotonic()))
    run.lab.restore(cut)
    t_back = time.monotonic()
    run.phase("restored")
    _wait_started(run, [crowd], 120)
    _upload(run, [crowd])
    reports, probe = run.finish()

    def reference(j):
        if j["addr"] in cut:
            return t_back, "blackholed, after the link came back"
        return run.marks["start"], "never cut, from the start request"

    return figures(run, reports, probe, reference, {
        "blackholed": count, "outage_s": outage, "start_into_outage_s": before})


def linkdown5(run, size):
    outage = 5
    crowd = run.start_crowd(run.judges)
    _arrive(run, crowd, spread=2.0)
    time.sleep(1.0)
    run.phase("start")
    run.lab.set_down(True)
    t_down = time.monotonic()
    run.fire_start()
    time.sleep(max(0, t_down + outage - time.monotonic()))
    run.lab.set_down(False)
    t_back = time.monotonic()
    run.phase("link up")
    _wait_started(run, [crowd], 120)
    _upload(run, [crowd])
    reports, probe = run.finish()
    return figures(run, reports, probe, lambda j: (t_back, "after the link came back"),
                   {"outage_s": outage, "start_after_down_ms": _r(
                       (run.marks["start"] - t_down) * 1000)})


def slowjudge(run, size):
    pre_start = 30 if size == "full" else 12
    crowd = run.start_crowd(run.judges - 1)
    slow, link = run.start_slow(run.judges - 1, rate="1kbit")
    run.phase("arrive")
    t_slow = time.monotonic()
    slow.call("arrive", spread_s=0)
    crowd.call("arrive", spread_s=2.0)
    crowd.call("wait", what="connected", timeout=120, _timeout=150)
    status = slow.call("wait", what="connected", timeout=180, _timeout=210)
    slow_connect_s = time.monotonic() - t_slow
    say("  [%s] slow judge connected: %s after %.1f s" % (run.name, status["connected"],
                                                         slow_connect_s))
    watch = SendQueueWatch(run.lab, link.address).start()
    slow.call("ping_loop", every=0.5)  # the app's clock sync, until it hears the start
    run.phase("slow judge pinging")
    time.sleep(pre_start)
    run.phase("start")
    run.fire_start()
    _wait_started(run, [crowd], 60)
    _wait_started(run, [slow], 240)
    _upload(run, [crowd, slow], timeout=300)
    queue_samples = watch.stop()
    qdisc = link.qdisc_stats()
    reports, probe = run.finish()
    slow_name = "juez%d" % run.judges

    def reference(j):
        if j["username"] == slow_name:
            return run.marks["start"], "the slow judge, from the start request"
        return run.marks["start"], "the others, from the start request"

    slow_report = reports[-1]["judges"][0]
    before_start = [q for t, q in queue_samples if t < run.marks["start"]]
    return figures(run, reports, probe, reference, {
        "slow_link": "tbf 1 kbit/s both ways, burst 1600 B, queue 60 s",
        "slow_judge": {
            "connected_after_s": _r(slow_connect_s),
            "pings_sent": slow_report["pings_sent"],
            "pongs_received": slow_report["messages"].get("pong", 0),
            "server_send_queue_bytes_at_start": before_start[-1] if before_start else None,
            "server_send_queue_bytes_max": max((q for _, q in queue_samples), default=None),
            "told_after_start_s": _r(slow_report["start_mono"] - run.marks["start"])
            if slow_report["start_mono"] else None,
            "uploaded": slow_report["uploaded"],
            "upload_s": _r(slow_report["upload_s"]),
        },
        "slow_qdisc": {k: " ".join(v.split()) for k, v in qdisc.items()},
        "send_queue_samples": [(_r(t - run.marks["start"]), q) for t, q in queue_samples][::4],
    })


def storm500(run, size):
    outage, start_into = (3, 1) if size == "full" else (2, 0.5)
    watch_s = 90 if size == "full" else 40
    crowd = run.start_crowd(run.judges)
    # Phones arrive over half a minute before the race (15 logins a second, well under the
    # ~40 a second two hashing threads manage): arriving all within 5 s is itself a storm, and
    # it tipped one run of 500 into the collapse the storm below is about.
    _arrive(run, crowd, spread=run.judges / 15.0, timeout=240)
    time.sleep(2.0)
    before = run.control.call("board")
    run.phase("AP down")
    run.lab.set_down(True)
    t_down = time.monotonic()
    time.sleep(start_into)
    run.fire_start()
    time.sleep(max(0, t_down + outage - time.monotonic()))
    # The phones come back with new addresses: the old ones stay cut off for good, so the
    # server's sockets to them are half-open (no FIN, no RST will ever come).
    run.lab.blackhole([run.lab.judge_address(i) for i in range(run.judges)])
    run.lab.set_down(False)
    t_back, wall_back = time.monotonic(), time.time()
    run.control.call("board_watch", every=1.0)
    run.phase("storm")
    crowd.call("storm", spread_s=1.0, relogin=True)
    status = crowd.call("wait", what="storm", timeout=180, _timeout=210)
    t_storm_done = time.monotonic()
    storm_s = t_storm_done - t_back
    say("  [%s] storm: %d/%d reconnected in %.1f s" % (run.name, status["storm_done"],
                                                       status["judges"], storm_s))
    _wait_started(run, [crowd], 60)
    run.phase("half-open watch")
    deadline = t_back + watch_s
    while time.monotonic() < deadline:
        if len(socket_drops(run.server_log, wall_back)) >= run.judges:
            break
        time.sleep(1.0)
    board = run.control.call("board_stop")["board"]
    drops = socket_drops(run.server_log, wall_back)
    _upload(run, [crowd])
    reports, probe = run.finish()
    judges = reports[0]["judges"]
    steps = {"login": [], "me": [], "socket": []}
    for j in judges:
        for step in steps:
            if step in j["storm"]:
                steps[step].append(j["storm"][step] - t_back)
    return figures(run, reports, probe, lambda j: (t_back, "after the link came back"), {
        "outage_s": outage, "start_into_outage_s": start_into,
        "board_before": {"conectados": before["conectados"], "sockets": before["sockets"]},
        "storm_steps_after_link_back": {k: dist(v) for k, v in steps.items()},
        "storm_all_reconnected_s": _r(storm_s),
        "half_open": {
            "old_sockets": run.judges,
            "dropped_by_server": len(drops),
            "first_dropped_after_s": _r(min(drops)) if drops else None,
            "last_dropped_after_s": _r(max(drops)) if drops else None,
            "watched_s": watch_s,
            "server_sockets_peak": max((s for _, _, s in board), default=None),
            "board": [(_r(t - t_back), c, s) for t, c, s in board],
        },
    })


def deafjudge(run, size):
    """Not one of the issue's five: a judge whose app stops reading its socket (frozen) and
    keeps sending 60 kB clock-sync pings, 20 a second, while the race starts for the others.
    The server's pongs (which echo the ping) must go somewhere: this shows where, and what it
    costs the others."""
    seconds = 30 if size == "full" else 12
    crowd = run.start_crowd(run.judges - 1)
    deaf = run.start_single(run.judges - 1, "deaf")
    address = run.lab.judge_address(run.judges - 1)
    for agent in (crowd, deaf):
        _arrive(run, agent, spread=2.0)
    time.sleep(1.0)
    rss = RssWatch(run.server.pid)
    rss.start()
    watch = SendQueueWatch(run.lab, address).start()
    run.phase("deaf judge flooding")
    t_deaf = time.monotonic()
    deaf.call("deaf", seconds=seconds, size=60000, every=0.05)
    time.sleep(max(0, seconds - 3))
    run.phase("start")
    run.fire_start()
    _wait_started(run, [crowd], 60)
    _wait_started(run, [deaf], 180)
    _upload(run, [crowd, deaf])
    rss_samples, queue_samples = rss.stop(), watch.stop()
    reports, probe = run.finish()
    deaf_report = reports[-1]["judges"][0]
    during = [kib for t, kib in rss_samples if t_deaf <= t <= t_deaf + seconds]

    def reference(j):
        if j["username"] == deaf_report["username"]:
            return run.marks["start"], "the deaf judge, from the start request"
        return run.marks["start"], "the others, from the start request"

    return figures(run, reports, probe, reference, {
        "deaf_judge": {
            "flood_s": seconds, "pings_sent": deaf_report["pings_sent"],
            "ping_bytes": 60000, "pongs_received": deaf_report["messages"].get("pong", 0),
            "server_rss_max_during_flood_kib": max(during, default=None),
            "server_rss_at_flood_start_kib": during[0] if during else None,
            "server_kernel_send_queue_max_bytes": max((q for _, q in queue_samples),
                                                      default=None),
            "told_after_start_s": _r(deaf_report["start_mono"] - run.marks["start"])
            if deaf_report["start_mono"] else None,
        },
        "rss_samples_kib": [(_r(t - run.marks["start"]), kib) for t, kib in rss_samples][::4],
    })


SCENARIOS = {
    # name: (function, judges full, judges short)
    "loss10": (loss10, 200, 40),
    "blackhole30": (blackhole30, 200, 40),
    "linkdown5": (linkdown5, 200, 40),
    "slowjudge": (slowjudge, 200, 20),
    "storm500": (storm500, 500, 100),
    "deafjudge": (deafjudge, 200, 20),
}
ISSUE_SCENARIOS = ("loss10", "blackhole30", "linkdown5", "slowjudge", "storm500")


def run_scenario(name, short=False, keep=False, ping_interval=None, heartbeat=0):
    fn, full_n, short_n = SCENARIOS[name]
    judges = short_n if short else full_n
    interval = ping_interval or (5 if short else 20)
    workdir = Path(tempfile.mkdtemp(prefix="s5k-venue-%s-" % name))
    say("%s: %d judges, ws_ping_interval_s %s, work dir %s" % (name, judges, interval, workdir))
    began = time.monotonic()
    load_start = round(os.getloadavg()[0], 2)
    ok = False
    try:
        options = {"heartbeat_s": heartbeat} if heartbeat else {}
        with Run(name, judges, workdir, interval, alt_addresses=(name == "storm500"),
                 judge_options=options) as run:
            run.start()
            result = fn(run, "short" if short else "full")
        result["seconds"] = round(time.monotonic() - began, 1)
        # The figures are timing on a shared machine: say how busy it was.
        result["loadavg_start"], result["loadavg_end"] = load_start, round(os.getloadavg()[0], 2)
        result["goals_missed"] = goals_missed(result)
        result["app_heartbeat_s"] = heartbeat or None
        result["cpus"] = {k: sorted(v) if v else None for k, v in PINNING.items()}
        result["workdir"] = str(workdir) if keep else None
        ok = True
        return result
    finally:
        if ok and not keep:
            shutil.rmtree(workdir, ignore_errors=True)
        elif not ok:
            say("%s failed; logs kept in %s" % (name, workdir))


# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------
GOAL_DELAY_S = 5.0      # "learned of the start within a few seconds"
GOAL_STALL_MS = 25.0    # "the loop never stalled past 25 ms outside the reconnect storm"


def goals_missed(result):
    """The issue's targets this run missed (reported; only verdict() fails a run)."""
    missed = []
    for group, d in result["start_delay"].items():
        if d["max_ms"] is not None and d["max_ms"] > GOAL_DELAY_S * 1000:
            missed.append("start delay %s: max %.1f s > %.0f s" % (
                group, d["max_ms"] / 1000, GOAL_DELAY_S))
    for phase, v in result["stall"]["by_phase"].items():
        if phase != "storm" and v["max_ms"] is not None and v["max_ms"] > GOAL_STALL_MS:
            missed.append("stall in %s: %.0f ms > %.0f ms" % (phase, v["max_ms"], GOAL_STALL_MS))
    return missed


def verdict(result):
    """The issue's 'done when', per scenario: (ok, [problems])."""
    problems = []
    rec = result["records"]
    if rec["lost"]:
        problems.append("%d acknowledged records lost" % rec["lost"])
    if rec["duplicated"]:
        problems.append("%d records stored twice" % rec["duplicated"])
    if result["told_of_start"] < result["judges"]:
        problems.append("%d judges never told of the start" % (
            result["judges"] - result["told_of_start"]))
    return not problems, problems


def format_result(r):
    lines = ["== %s: %d judges (server pings every %s s%s), %.0f s" % (
        r["scenario"], r["judges"], r["ws_ping_interval_s"],
        "; app heartbeat %s s" % r["app_heartbeat_s"] if r.get("app_heartbeat_s") else "",
        r["seconds"])]
    lines.append("  told of the start:  %d / %d (broadcast reached %s sockets; start request %s ms)"
                 % (r["told_of_start"], r["judges"], r["notified_by_broadcast"],
                    r["start_request_ms"]))
    for group, d in r["start_delay"].items():
        lines.append("  delay %-44s n %3d  p50 %8s ms  p99 %8s ms  max %8s ms" % (
            group, d["n"], d["p50_ms"], d["p99_ms"], d["max_ms"]))
    rec = r["records"]
    lines.append("  records: %d acknowledged, %d stored, lost %d, duplicated %d "
                 "(never acknowledged %d, of which stored %d)" % (
                     rec["acknowledged"], rec["stored"], rec["lost"], rec["duplicated"],
                     rec["never_acknowledged"], rec["stored_not_acknowledged"]))
    st = r["stall"]
    lines.append("  worst loop stall (from outside: ping -> server_time): %s ms (p99 %s ms; "
                 "round trip max %s ms, p99 %s ms; %d pings, %d unanswered; worst at start%+.1f s)"
                 % (st["max_ms"], st["p99_ms"], st["rtt_max_ms"], st["rtt_p99_ms"], st["pings"],
                    st["unanswered"], st["worst_at_s"] or 0))
    lines.append("    by phase (one way / round trip): " + "; ".join(
        "%s %s/%s ms" % (k, v["max_ms"], v["rtt_max_ms"]) for k, v in st["by_phase"].items()))
    rss = r["rss_kib"]
    lines.append("  server RSS: %.1f MiB before, %.1f MiB after (peak %.1f MiB)" % (
        rss["before"] / 1024, rss["after"] / 1024, rss["peak"] / 1024))
    lines.append("  reconnects %d, submit tries %d, client errors: %s" % (
        r["reconnects"], r["submit_tries"],
        ", ".join("%s %d" % kv for kv in sorted(r["client_errors"].items())) or "none"))
    lines.append("  server log: " + ", ".join("%s %d" % kv for kv in sorted(
        r["server_log"].items())))
    lines.append("  client loop lag: judges %s; probe %s" % (
        r["client_loop_lag"], r["stall"]["probe_client_loop_lag"]))
    for key in ("slow_judge", "deaf_judge", "storm_steps_after_link_back", "storm_all_reconnected_s",
                "half_open", "board_before", "slow_qdisc"):
        if key in r:
            value = r[key]
            if key == "half_open":
                value = {k: v for k, v in value.items() if k != "board"}
            lines.append("  %s: %s" % (key, json.dumps(value)))
    if r["judges_failed"]:
        lines.append("  judges failed: %s" % r["judges_failed"])
    lines.append("  machine load average (1 min) at start/end: %s / %s" % (
        r.get("loadavg_start"), r.get("loadavg_end")))
    missed = goals_missed(r)
    lines.append("  issue goals missed: %s" % ("; ".join(missed) or "none"))
    ok, problems = verdict(r)
    lines.append("  verdict: %s" % ("ok" if ok else "; ".join(problems)))
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default="all", metavar="NAME[,NAME...]|all",
                        help="one of %s, several with commas, or all (default)"
                             % ", ".join(SCENARIOS))
    parser.add_argument("--short", action="store_true",
                        help="fewer judges, shorter outages, 5 s server pings (CI)")
    parser.add_argument("--json", metavar="FILE", help="write every figure to FILE")
    parser.add_argument("--keep", action="store_true", help="keep each scenario's work dir")
    parser.add_argument("--ping-interval", type=float,
                        help="server.ws_ping_interval_s (default 20, or 5 with --short)")
    parser.add_argument("--app-heartbeat", type=float, default=0, metavar="S",
                        help="judges also ping every S s and reconnect after 2S+1 s of "
                             "silence (what a careful app does; default: off, TCP only)")
    parser.add_argument("--pin", action="store_true",
                        help="give the server the first CPU and the harness the others (on a "
                             "2-CPU machine this starves the harness: off by default)")
    parser.add_argument("--cleanup", action="store_true",
                        help="only remove namespaces left by crashed runs, then exit")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    unknown = [n for n in args.scenario.split(",") if n not in SCENARIOS and n != "all"]
    if unknown:
        print("bench/venue.py: unknown scenario %s (known: %s)" % (
            ", ".join(unknown), ", ".join(SCENARIOS)), file=sys.stderr)
        return 2
    netlab.interrupt_on_sigterm()
    if args.cleanup:
        print("removed: %s" % (", ".join(netlab.cleanup()) or "nothing"))
        return 0
    reason = netlab.unavailable()
    if reason:
        print("bench/venue.py: cannot build the lab: %s" % reason, file=sys.stderr)
        return 2
    leftovers = netlab.cleanup()
    if leftovers:
        say("removed leftovers of crashed runs: %s" % ", ".join(leftovers))
    names = list(SCENARIOS) if args.scenario == "all" else args.scenario.split(",")
    cpus = sorted(os.sched_getaffinity(0))
    if args.pin and len(cpus) >= 2:
        PINNING.update(server={cpus[0]}, harness=set(cpus[1:]))
        say("server on CPU %d, harness on CPU %s" % (cpus[0], ",".join(map(str, cpus[1:]))))
    results, ok = [], True
    command = "python bench/venue.py " + " ".join(sys.argv[1:] if argv is None else argv)
    try:
        for name in names:
            try:
                result = run_scenario(name, args.short, args.keep, args.ping_interval,
                                      args.app_heartbeat)
            except (RuntimeError, OSError, netlab.LabError, subprocess.SubprocessError) as exc:
                say("%s could not run: %s" % (name, exc))
                results.append({"scenario": name, "error": str(exc)})
                ok = False
                continue
            results.append(result)
            print(format_result(result), flush=True)
            ok &= verdict(result)[0]
    except KeyboardInterrupt:
        say("interrupted: the lab was torn down")
        return 130
    finally:
        if args.json:
            Path(args.json).write_text(json.dumps({
                "command": command, "short": args.short, "results": results}, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
