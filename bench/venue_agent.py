#!/usr/bin/env python3
"""The processes ``bench/venue.py`` starts inside the lab's namespaces, driven over stdin/stdout.

    python bench/venue_agent.py judges SPEC.json    # virtual judges (client or slow namespace)
    python bench/venue_agent.py control SPEC.json   # organizer + stall probe (server namespace)

Each reads one JSON command per line on stdin and answers one JSON line on stdout; logs go to
stderr. Times are ``time.monotonic()``, which is one clock for every process on the machine
whatever its network namespace, so the runner can put them side by side with the moments it
changed the link.

The judges are :class:`rehearsal.VirtualJudge` (``persistent``: they stay connected all race and
reconnect with backoff after any close, and each connects from its own source address). What
an app does on top, and the rehearsal client does not, lives in :class:`AppJudge` here: upload
until a 201 with the same ``id_registro``s, a clock-sync ping loop, and an "AP reboot" (drop the
socket without a word, take a new address, log in again).
"""

import asyncio
import json
import random
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import rehearsal  # noqa: E402  (the product's virtual judges; nothing else of the server)


def log(*parts):
    print("[agent]", *parts, file=sys.stderr, flush=True)


class LoopLag:
    """How late this process's own loop wakes up (so a slow client is not blamed on the server)."""

    def __init__(self, every=0.01):
        self.every, self.worst, self.samples = every, 0.0, []

    async def run(self):
        while True:
            before = time.monotonic()
            await asyncio.sleep(self.every)
            late = time.monotonic() - before - self.every
            self.worst = max(self.worst, late)
            self.samples.append(late)
            if len(self.samples) > 100_000:
                del self.samples[:50_000]

    def summary(self):
        return {"max_ms": round(self.worst * 1000, 1),
                "p99_ms": round((rehearsal.percentile(self.samples, 99) or 0) * 1000, 1)}


# ------------------------------------------------------------------------------------------------
# Judges
# ------------------------------------------------------------------------------------------------
class AppJudge(rehearsal.VirtualJudge):
    def __init__(self, *args, alt_addr=None, **kwargs):
        super().__init__(*args, persistent=True, **kwargs)
        self.alt_addr = alt_addr
        self.arrived_mono = None       # first socket open
        self.opened = []               # monotonic time of every socket open
        self.closed_at = []            # monotonic time of every socket close seen
        self.failed = None
        self.acked = set()             # id_registro (hex) answered 201 (created or duplicate)
        self.unacked = set()           # sent, never acknowledged
        self.submit_tries = 0
        self.upload_s = None
        self.uploaded = False
        self.storm = {}                # the AP-reboot reconnection: times of each step
        self.pings_sent = 0
        self.last_heard = None         # monotonic time of the last message from the server
        self.heartbeat_drops = 0

    async def connect(self, timeout=10.0):
        await super().connect(timeout)
        now = time.monotonic()
        self.last_heard = now
        self.opened.append(now)
        if self.arrived_mono is None:
            self.arrived_mono = now

    def _on_close(self):
        self.closed_at.append(time.monotonic())
        super()._on_close()

    def _on_message(self, text):
        self.last_heard = time.monotonic()
        super()._on_message(text)

    async def heartbeat(self, every, dead_after):
        """What a careful app adds: a ping every ``every`` s, and a socket from which nothing
        came for ``dead_after`` s is given up (the persistent judge then reconnects)."""
        while not self._closing:
            await asyncio.sleep(every)
            if not self.is_connected:
                continue
            if time.monotonic() - self.last_heard > dead_after:
                self.heartbeat_drops += 1
                self.stats.errors["ws_heartbeat_timeout"] += 1
                self.socket.transport.abort()
            else:
                self.socket.send(json.dumps({"type": "ping", "data": {"hb": True}}))

    async def deaf(self, seconds, size, every):
        """A phone that stops reading its socket (app frozen) while it still sends pings of
        ``size`` bytes every ``every`` s: the server's pongs pile up somewhere."""
        self.socket.transport.pause_reading()
        filler = "x" * size
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and self.is_connected:
            self.socket.send(json.dumps({"type": "ping", "data": {"pad": filler}}))
            self.pings_sent += 1
            await asyncio.sleep(every)
        if self.is_connected:
            self.socket.transport.resume_reading()

    @property
    def is_connected(self):
        return self.socket is not None and not self.socket.closed

    async def arrive(self):
        try:
            await self.login()
            await self.learn()
            await self.connect_with_retry()
        except Exception as exc:  # noqa: BLE001  (reported per judge)
            self.failed = "arrive: %s" % exc

    async def upload(self, deadline):
        """Every team's 15 records, retried with the same ids until a 201 (as the app does)."""
        began = time.monotonic()
        for equipo_id in self.equipos:
            records = self.records_for(equipo_id)
            ids = {uuid.UUID(r["id_registro"]).hex for r in records}
            self.unacked |= ids
            while time.monotonic() < deadline:
                self.submit_tries += 1
                status, answer = await self._request(
                    "POST", "/api/enviar_tiempos/", {"equipo_id": equipo_id, "registros": records})
                if status == 201:
                    got = {uuid.UUID(i).hex for i in answer["created"] + answer["duplicates"]}
                    self.acked |= got
                    self.unacked -= got
                    self.stats.records_created += len(answer["created"])
                    self.stats.records_duplicate += len(answer["duplicates"])
                    break
                if 400 <= status < 500 and status not in (401, 429):
                    self.failed = "upload %d %s" % (status, answer.get("code"))
                    return
                await asyncio.sleep(rehearsal.backoff(3))
        self.uploaded = not self.unacked
        self.upload_s = time.monotonic() - began

    async def reboot_reconnect(self, delay, relogin=True):
        """The AP came back: the phone forgets its socket without a word (its old address is
        gone), takes its new address, logs in again, learns who it is and reconnects."""
        await asyncio.sleep(delay)
        self.storm["begin"] = time.monotonic()
        old = self.socket
        self.socket = None
        if old is not None and not old.closed:
            self._closing = True      # no automatic reconnect from the old socket's close
            old.transport.abort()     # nothing reaches the server: the old address is cut off
            for _ in range(100):      # connection_lost runs on a later loop iteration
                if old.closed:
                    break
                await asyncio.sleep(0.001)
            self._closing = False
        if self.alt_addr:
            self.local_addr = self.alt_addr
        try:
            if relogin:
                await self.login()
                self.storm["login"] = time.monotonic()
            await self.learn()
            self.storm["me"] = time.monotonic()
            await self.connect_with_retry()
            self.storm["socket"] = time.monotonic()
        except Exception as exc:  # noqa: BLE001
            self.failed = "storm: %s" % exc

    async def ping_loop(self, every, until_started=True):
        """An app's clock-sync pings ({"type": "ping"}) every ``every`` seconds."""
        while not (until_started and self.started.is_set()) and not self._closing:
            if self.is_connected:
                self.socket.send(json.dumps({"type": "ping", "data": {"n": self.pings_sent}}))
                self.pings_sent += 1
            await asyncio.sleep(every)

    def report(self):
        return {"username": self.username, "juez_id": self.juez_id, "addr": self.local_addr,
                "start_mono": self.start_mono, "arrived_mono": self.arrived_mono,
                "opened": self.opened, "closed": self.closed_at, "failed": self.failed,
                "connected": self.is_connected, "acked": sorted(self.acked),
                "unacked": sorted(self.unacked), "submit_tries": self.submit_tries,
                "upload_s": self.upload_s,
                "uploaded": self.uploaded, "storm": self.storm, "pings_sent": self.pings_sent,
                "heartbeat_drops": self.heartbeat_drops,
                "messages": dict(self.messages)}


class JudgesAgent:
    def __init__(self, spec):
        self.spec = spec
        self.stats = rehearsal.Stats()
        self.http = rehearsal.make_http(max_clients=len(spec["judges"]) + 8)
        self.judges = [AppJudge(spec["base_url"], j["username"], j["password"],
                                stats=self.stats, http=self.http, local_addr=j["addr"],
                                alt_addr=j.get("alt_addr"), attempts=spec.get("attempts", 1000),
                                request_timeout=spec.get("request_timeout", 15.0))
                       for j in spec["judges"]]
        self.tasks = set()
        self.lag = LoopLag()

    def spawn(self, coro):
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def status(self):
        live = [j for j in self.judges if not j.failed]
        return {"judges": len(self.judges), "failed": len(self.judges) - len(live),
                "connected": sum(j.is_connected for j in self.judges),
                "started": sum(j.started.is_set() for j in self.judges),
                "uploaded": sum(j.uploaded for j in self.judges),
                "storm_done": sum("socket" in j.storm for j in self.judges),
                "errors": dict(self.stats.errors), "loop_lag": self.lag.summary()}

    async def wait(self, what, timeout):
        test = {"connected": lambda j: j.is_connected, "started": lambda j: j.started.is_set(),
                "uploaded": lambda j: j.uploaded, "storm": lambda j: "socket" in j.storm}[what]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(test(j) or j.failed for j in self.judges):
                break
            await asyncio.sleep(0.05)
        return self.status()

    async def handle(self, cmd):
        name = cmd["cmd"]
        if name == "arrive":
            spread = cmd.get("spread_s", 2.0)
            heartbeat = self.spec.get("heartbeat_s")
            for judge in self.judges:
                self.spawn(self._later(random.uniform(0, spread), judge.arrive()))
                if heartbeat:
                    self.spawn(judge.heartbeat(heartbeat, 2 * heartbeat + 1))
            return {"ok": True}
        if name == "wait":
            return await self.wait(cmd["what"], cmd.get("timeout", 60))
        if name == "status":
            return self.status()
        if name == "ping_loop":
            for judge in self.judges:
                self.spawn(judge.ping_loop(cmd.get("every", 0.5)))
            return {"ok": True}
        if name == "deaf":
            judge = self.judges[cmd.get("index", 0)]
            self.spawn(judge.deaf(cmd["seconds"], cmd.get("size", 60000), cmd.get("every", 0.05)))
            return {"ok": True}
        if name == "upload":
            deadline = time.monotonic() + cmd.get("deadline_s", 240)
            spread = cmd.get("spread_s", 5.0)
            for judge in self.judges:
                if not judge.failed:
                    self.spawn(self._upload_once_started(judge, random.uniform(0, spread),
                                                         deadline))
            return {"ok": True}
        if name == "storm":
            spread = cmd.get("spread_s", 1.0)
            for judge in self.judges:
                self.spawn(judge.reboot_reconnect(random.uniform(0, spread),
                                                  cmd.get("relogin", True)))
            return {"ok": True, "t": time.monotonic()}
        if name == "report":
            return {"status": self.status(), "judges": [j.report() for j in self.judges]}
        if name == "close":
            for judge in self.judges:
                judge.close()
            return {"ok": True}
        return {"error": "unknown command %r" % name}

    @staticmethod
    async def _upload_once_started(judge, delay, deadline):
        """An app times the race from the start notice: a judge told late uploads late."""
        try:
            await asyncio.wait_for(judge.started.wait(), max(0.0, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            return
        await asyncio.sleep(delay)
        await judge.upload(deadline)

    @staticmethod
    async def _later(delay, coro):
        await asyncio.sleep(delay)
        return await coro


# ------------------------------------------------------------------------------------------------
# Control: the organizer (start, judges board) and the stall probe, next to the server
# ------------------------------------------------------------------------------------------------
class ControlAgent:
    def __init__(self, spec):
        self.spec = spec
        self.http = rehearsal.make_http(max_clients=8)
        self.organizer = rehearsal.VirtualJudge(spec["base_url"], *spec["organizer"],
                                                http=self.http, attempts=3)
        self.probe_judge = rehearsal.VirtualJudge(spec["base_url"], *spec["probe"],
                                                  http=self.http, attempts=3)
        self.sent = {}
        self.samples = []     # [sent monotonic, round trip ms]
        self.probe_socket = None
        self.probe_task = None
        self.board = []       # [monotonic, conectados, sockets]
        self.board_task = None
        self.lag = LoopLag()

    def _on_probe_message(self, text):
        msg = json.loads(text)
        if msg.get("type") == "pong":
            data = msg["data"]
            sent = self.sent.pop(data.get("seq"), None)
            if sent is not None:
                # One way: from our send (wall clock) to the server's server_time (the same
                # machine's clock, to the millisecond) is how long the server's loop took to
                # get to the ping; unlike the round trip, it does not include this process
                # being late to read the pong.
                one_way = rehearsal.parse_iso(data["server_time"]) - data["t"]
                self.samples.append([round(sent, 4), round((time.monotonic() - sent) * 1000, 2),
                                     round(one_way * 1000, 1)])

    async def _probe(self, every):
        seq = 0
        while True:
            seq += 1
            self.sent[seq] = time.monotonic()
            self.probe_socket.send(json.dumps({"type": "ping", "data": {
                "seq": seq, "t": time.time()}}))
            await asyncio.sleep(every)

    async def _board(self, every):
        while True:
            try:
                self.board.append([time.monotonic()] + list(await self.judges_board()))
            except Exception as exc:  # noqa: BLE001
                log("board failed: %s" % exc)
            await asyncio.sleep(every)

    async def judges_board(self):
        status, answer = await self.organizer._request(
            "GET", "/api/competencias/%d/jueces/" % self.spec["competencia_id"])
        if status != 200:
            raise RuntimeError("jueces %s" % status)
        return answer["conectados"], sum(j["sockets"] for j in answer["jueces"])

    async def handle(self, cmd):
        name = cmd["cmd"]
        if name == "login":
            await self.organizer.login()
            await self.probe_judge.login()
            await self.probe_judge.learn()
            return {"ok": True}
        if name == "probe_start":
            self.probe_socket = await rehearsal.open_socket(self.probe_judge.ws_url(),
                                                            self._on_probe_message)
            await asyncio.sleep(0.2)
            self.samples.clear()
            self.probe_task = asyncio.get_running_loop().create_task(
                self._probe(cmd.get("every", 0.01)))
            return {"ok": True}
        if name == "probe_stop":
            if self.probe_task:
                self.probe_task.cancel()
            await asyncio.sleep(0.3)
            now = time.monotonic()
            unanswered = [[round(t, 4), round((now - t) * 1000, 2), round((now - t) * 1000, 2)]
                          for t in self.sent.values()]
            return {"samples": self.samples, "unanswered": unanswered,
                    "loop_lag": self.lag.summary()}
        if name == "start":
            t_sent = time.monotonic()
            status, answer = await self.organizer._request(
                "POST", "/api/competencias/%d/iniciar/" % self.spec["competencia_id"])
            return {"t_sent": t_sent, "t_answered": time.monotonic(), "status": status,
                    "notificados": answer.get("notificados"), "answer_code": answer.get("code")}
        if name == "board":
            conectados, sockets = await self.judges_board()
            return {"conectados": conectados, "sockets": sockets, "t": time.monotonic()}
        if name == "board_watch":
            self.board_task = asyncio.get_running_loop().create_task(
                self._board(cmd.get("every", 1.0)))
            return {"ok": True}
        if name == "board_stop":
            if self.board_task:
                self.board_task.cancel()
            return {"board": self.board}
        if name == "close":
            if self.probe_socket is not None:
                self.probe_socket.transport.close()
            return {"ok": True}
        return {"error": "unknown command %r" % name}


# ------------------------------------------------------------------------------------------------
async def serve(agent):
    loop = asyncio.get_running_loop()
    lag_task = loop.create_task(agent.lag.run())
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(json.dumps({"ready": True}), flush=True)
    while True:
        line = await reader.readline()
        if not line:
            break
        cmd = json.loads(line)
        try:
            answer = await agent.handle(cmd)
        except Exception as exc:  # noqa: BLE001  (the runner shows it)
            log("command %s failed: %r" % (cmd.get("cmd"), exc))
            answer = {"error": "%s: %s" % (type(exc).__name__, exc)}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
        if cmd["cmd"] == "close":
            await asyncio.sleep(0.3)
            break
    lag_task.cancel()


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    role, spec_path = argv
    spec = json.loads(Path(spec_path).read_text())
    agent = {"judges": JudgesAgent, "control": ControlAgent}[role]

    async def run():
        await serve(agent(spec))

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
