"""The benchmark's bare reference: Server5K's hot endpoints with nothing else.

Tornado + PyJWT + stdlib sqlite3 with the same durability (WAL, synchronous=FULL: every 201 is
on disk), one in-memory set of sockets, the same URLs and payloads. Run by bench/run.py as
``python bench/reference_server.py DB PORT`` with SERVER5K_SECRET_KEY in the environment.
"""

import asyncio
import base64
import concurrent.futures
import datetime as dt
import hashlib
import hmac
import json
import os
import resource
import sqlite3
import sys
import time
import uuid

import jwt
import tornado.web
import tornado.websocket

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, username TEXT UNIQUE, password_hash TEXT,
                                  organizer INTEGER, juez_id INTEGER);
CREATE TABLE IF NOT EXISTS equipo (id INTEGER PRIMARY KEY, juez_id INTEGER);
CREATE TABLE IF NOT EXISTS competencia (id INTEGER PRIMARY KEY, started_at TEXT);
CREATE TABLE IF NOT EXISTS registro (id_registro TEXT PRIMARY KEY, equipo_id INTEGER,
    juez_id INTEGER, tiempo INTEGER, timestamp TEXT, received_at TEXT);
"""
SOCKETS = set()
HASHERS = concurrent.futures.ThreadPoolExecutor(2)  # as many as Server5K's hash threads
SECRET = os.environ.get("SERVER5K_SECRET_KEY")
DB = None


def now_iso():
    now = dt.datetime.now(dt.timezone.utc)
    return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def verify(password, stored):
    _, n, r, p, salt, digest = stored.split("$")
    actual = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r),
                            p=int(p), dklen=len(base64.b64decode(digest)))
    return hmac.compare_digest(actual, base64.b64decode(digest))


def issue(kind, user_id, juez_id, lifetime):
    now = int(time.time())
    return jwt.encode({"token_type": kind, "iat": now, "exp": now + lifetime,
                       "jti": uuid.uuid4().hex, "user_id": user_id, "juez_id": juez_id},
                      SECRET, algorithm="HS256")


def claims_of(token):
    try:
        claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    except jwt.PyJWTError:
        raise tornado.web.HTTPError(401)
    if claims.get("token_type") != "access":
        raise tornado.web.HTTPError(401)
    return claims


class Api(tornado.web.RequestHandler):
    def bearer(self):
        return claims_of(self.request.headers.get("Authorization", "")[7:])

    def write_error(self, status, **kwargs):
        self.finish({"detail": self._reason, "code": "http_%d" % status})


class Token(Api):
    async def post(self):
        body = json.loads(self.request.body)
        row = DB.execute("SELECT id, password_hash, juez_id FROM users WHERE username = ?",
                         (body["username"],)).fetchone()
        ok = row and await asyncio.get_running_loop().run_in_executor(
            HASHERS, verify, body["password"], row[1])
        if not ok:
            raise tornado.web.HTTPError(401)
        self.finish({"access": issue("access", row[0], row[2], 300),
                     "refresh": issue("refresh", row[0], row[2], 86400)})


class Competencia(Api):
    def get(self, cid):
        row = DB.execute("SELECT id, started_at FROM competencia WHERE id = ?", (cid,)).fetchone()
        self.finish({"id": row[0], "started_at": row[1]})


class Iniciar(Api):
    def post(self, cid):
        user = DB.execute("SELECT organizer FROM users WHERE id = ?", (self.bearer()["user_id"],))
        if not user.fetchone()[0]:
            raise tornado.web.HTTPError(403)
        started = now_iso()
        with DB:
            DB.execute("UPDATE competencia SET started_at = ? WHERE id = ?", (started, cid))
        text = json.dumps({"type": "carrera.iniciada", "data": {"mensaje": "La carrera ha iniciado",
                           "competencia_id": int(cid), "started_at": started}})
        for sock in list(SOCKETS):
            sock.write_message(text)
        self.finish({"competencia": {"id": int(cid), "started_at": started},
                     "notificados": len(SOCKETS)})


class EnviarTiempos(Api):
    def post(self):
        claims = self.bearer()
        body = json.loads(self.request.body)
        equipo_id, rows, received = body["equipo_id"], [], now_iso()
        for record in body["registros"][:15]:
            if not isinstance(record["tiempo"], int):
                raise tornado.web.HTTPError(400)
            dt.datetime.fromisoformat(record["timestamp"])
            rows.append((record.get("id_registro") or str(uuid.uuid4()), equipo_id,
                         claims["juez_id"], record["tiempo"], record["timestamp"], received))
        owner = DB.execute("SELECT juez_id FROM equipo WHERE id = ?", (equipo_id,)).fetchone()
        if owner is None or owner[0] != claims["juez_id"]:
            raise tornado.web.HTTPError(403)
        with DB:
            DB.executemany("INSERT OR IGNORE INTO registro VALUES (?, ?, ?, ?, ?, ?)", rows)
        self.set_status(201)
        self.finish({"created": [r[0] for r in rows], "duplicates": [], "ignored": 0})


class JuezSocket(tornado.websocket.WebSocketHandler):
    async def get(self, juez_id):
        claims = claims_of(self.get_query_argument("token", ""))
        if str(claims.get("juez_id")) != juez_id:
            raise tornado.web.HTTPError(403)
        await super().get(juez_id)

    def check_origin(self, origin):
        return True

    def open(self, juez_id):
        SOCKETS.add(self)
        self.write_message({"type": "conexion.establecida", "data": {"juez_id": int(juez_id)}})

    def on_message(self, text):
        self.write_message({"type": "pong", "data": json.loads(text).get("data", {})})

    def on_close(self):
        SOCKETS.discard(self)


async def main(path, port):
    global DB
    DB = sqlite3.connect(path, isolation_level=None)
    DB.executescript("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;" + SCHEMA)
    DB.isolation_level = "IMMEDIATE"  # `with DB:` = BEGIN IMMEDIATE ... COMMIT
    tornado.web.Application([
        (r"/api/token/", Token), (r"/api/competencias/(\d+)/", Competencia),
        (r"/api/competencias/(\d+)/iniciar/", Iniciar), (r"/api/enviar_tiempos/", EnviarTiempos),
        (r"/ws/juez/(\d+)/", JuezSocket)]).listen(port, "127.0.0.1")
    await asyncio.Event().wait()


if __name__ == "__main__":
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
