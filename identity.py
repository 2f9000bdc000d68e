"""Who someone is: passwords (scrypt, and the memory of recently verified ones), login,
usernames, account creation and password changes, token generations and revocation, and the
question "is this session still valid". Slow hashing runs off the event loop (callers' job).
"""

import base64
import datetime as dt
import hashlib
import hmac
import os
import secrets
import threading
import time
import unicodedata

import messages
import models


# --------------------------------------------------------------------------------------------
# Passwords: scrypt (stdlib), salted. Slow on purpose: callers run it off the event loop.
# --------------------------------------------------------------------------------------------
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


def hash_password(password):
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    b64 = base64.b64encode
    return "scrypt$%d$%d$%d$%s$%s" % (
        SCRYPT_N, SCRYPT_R, SCRYPT_P, b64(salt).decode(), b64(digest).decode())


def verify_password(password, stored):
    """Whether ``password`` is the one ``stored`` (an scrypt hash) was made of. A password
    verified in the last VERIFIED_TTL_S is recognised from memory (:class:`_Verified`), so a
    phone that logs in again (500 of them after an access point reboot) costs microseconds, not
    an scrypt each; a wrong password always costs the full scrypt."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        secret = password.encode("utf-8")
        if _VERIFIED.knows(stored, secret):
            return True
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(secret, salt=base64.b64decode(salt),
                                n=int(n), r=int(r), p=int(p), dklen=len(expected))
    except (ValueError, TypeError, AttributeError):
        return False
    if not hmac.compare_digest(actual, expected):
        return False
    _VERIFIED.remember(stored, secret)
    return True


VERIFIED_TTL_S, VERIFIED_MAX = 12 * 3600, 4096


class _Verified:
    """Passwords verified recently, by the stored hash they matched: an HMAC of each under a key
    made at start-up and never written anywhere, so memory holds no password, and nothing that
    checks a guess without that key. A new password is a new stored hash: nothing remembered for
    the old one ever matches it. At most VERIFIED_MAX entries, the oldest forgotten first.
    (Someone who can read this process's memory has its signing secret too: this adds nothing
    they could not already do.)"""

    def __init__(self):
        self._key = os.urandom(32)
        self._entries = {}  # stored hash -> (HMAC, monotonic time verified); oldest first
        self._lock = threading.Lock()

    def _mac(self, secret):
        return hmac.new(self._key, secret, hashlib.sha256).digest()

    def knows(self, stored, secret):
        with self._lock:
            entry = self._entries.get(stored)
        if entry is None or time.monotonic() - entry[1] > VERIFIED_TTL_S:
            return False
        return hmac.compare_digest(entry[0], self._mac(secret))

    def remember(self, stored, secret):
        mac = self._mac(secret)
        with self._lock:
            self._entries.pop(stored, None)
            self._entries[stored] = (mac, time.monotonic())
            while len(self._entries) > VERIFIED_MAX:
                del self._entries[next(iter(self._entries))]


_VERIFIED = _Verified()


# A hash of nothing, checked against when the username does not exist, so a login for an
# unknown user costs the same time as one for a real user (no username oracle).
_DUMMY_HASH = None


def _dummy_hash():
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_password(secrets.token_hex(8))
    return _DUMMY_HASH


def generate_password():
    """12 random characters: longer than any password a person must choose (MIN_PASSWORD).
    Never starting with ``-``, which spreadsheets opening a credentials file read as a
    formula (and CSV exports guard with a leading apostrophe)."""
    while True:
        password = secrets.token_urlsafe(9)
        if password[0] != "-":
            return password


MIN_PASSWORD = 8   # a password set by hand (API, command line) is at least this long
MAX_PASSWORD = 1024


def check_password(password, field="password"):
    """A password chosen by a person: text of MIN_PASSWORD to MAX_PASSWORD characters, not
    only spaces. Invalid (``validation_error``, 400) else."""
    if (not isinstance(password, str) or len(password) < MIN_PASSWORD
            or len(password) > MAX_PASSWORD or not password.strip()):
        raise models.Invalid("La contraseña debe tener entre %d y %d caracteres." % (
            MIN_PASSWORD, MAX_PASSWORD), "validation_error",
            {field: "Al menos %d caracteres." % MIN_PASSWORD})
    return password


def new_password_hash(password):
    """The stored form of a new password, once it passed :func:`check_password`. Slow (scrypt):
    the server runs it on its hashing threads, before the writer job that stores it."""
    return hash_password(check_password(password))


def end_session(tokens_claims):
    """Record the end of a session's tokens before their time (a logout: its refresh and access
    tokens); repeating it is a no-op. Runs in the writer. ``tokens_claims`` are the tokens'
    verified claims. (Unlike revoke_tokens, the user's other sessions keep working.)"""
    for claims in tokens_claims:
        expira = dt.datetime.fromtimestamp(claims["exp"], dt.timezone.utc).replace(tzinfo=None)
        (models.TokenRevocado.insert(jti=str(claims["jti"]), user=claims["user_id"],
                                     expira_en=expira)
         .on_conflict_ignore().execute())


def revoked_tokens(kept_s=0):
    """{jti: expiry as a Unix time} of the revoked tokens that have not expired yet, or
    expired less than ``kept_s`` seconds ago (the server keeps refusing a logged-out token for
    a refresh lifetime after its expiry: handlers/tokens.py, ``expired_ok``)."""
    now = models.utcnow() - dt.timedelta(seconds=kept_s)
    return {jti: expira.replace(tzinfo=dt.timezone.utc).timestamp()
            for jti, expira in models.TokenRevocado.select(models.TokenRevocado.jti,
                                                           models.TokenRevocado.expira_en)
            .where(models.TokenRevocado.expira_en > now).tuples()}


# --------------------------------------------------------------------------------------------
# Reads (run on reader threads).
# --------------------------------------------------------------------------------------------
def authenticate(username, password):
    """The active user with these credentials (a judge: an active judge), or None. Slow
    (scrypt): never on the loop."""
    if not isinstance(username, str) or not isinstance(password, str):
        return None
    user = models.User.get_or_none(models.User.username_key == models.username_key(username))
    if user is None:
        verify_password(password, _dummy_hash())
        return None
    if not verify_password(password, user.password_hash) or not user.is_active:
        return None
    identity = user_identity(user.id)
    if identity is not None and identity["juez_id"] is not None and not identity["juez_active"]:
        return None  # a deactivated judge is an inactive user: it cannot log in
    return identity


# --------------------------------------------------------------------------------------------
# Is this session still valid: the one rule. Every path that asks (a request's token, a
# submission in the writer, a judge's read-back, the sockets' sweep) applies session_refusal,
# one row or many rows read in bulk; the texts are in messages.py.
# --------------------------------------------------------------------------------------------
JUDGE_ANY, JUDGE_IF_ANY, JUDGE_REQUIRED = "any", "if_any", "required"


def session_refusal(user_active, user_gen, token_gen=None, juez_id=None, juez_active=False,
                    judge=JUDGE_ANY):
    """The DomainError refusing a session, or None while it holds.

    ``user_active``: the user's ``is_active`` (None or False: gone or inactive);
    ``user_gen``/``token_gen``: the user's token generation and the one the token carries (a
    token of another generation, after a password change or a deactivation, is revoked; None:
    the caller vouches for the user); ``juez_id``/``juez_active``: the user's judge, if any.
    ``judge`` says what the judge must be: JUDGE_ANY (nothing: the caller reads the identity's
    ``juez_active``), JUDGE_IF_ANY (active if there is one: an organizer holds too) or
    JUDGE_REQUIRED (an active judge). Checked in this order: user, token, judge."""
    if not user_active:
        return models.Unauthenticated(messages.USER_INACTIVE, "user_inactive")
    if token_gen is not None and token_gen != user_gen:
        return models.Unauthenticated(messages.TOKEN_REVOKED, "token_revoked")
    if judge == JUDGE_ANY:
        return None
    if juez_id is None:
        return models.Forbidden(messages.NOT_A_JUDGE, "not_a_judge") \
            if judge == JUDGE_REQUIRED else None
    if not juez_active:
        return models.Forbidden(messages.JUDGE_INACTIVE, "inactive_judge")
    return None


def judge_refusal(juez_id, juez_active):
    """The DomainError refusing a user whose session holds but who is not an active judge
    (the judge part of session_refusal, for a caller that already checked the token)."""
    return session_refusal(True, None, None, juez_id, juez_active, JUDGE_REQUIRED)


def judges_of(user_id):
    """The judge rows of user ``user_id``, one per competition it times, each with its
    competition; by id."""
    return list(models.Juez.select(models.Juez, models.Competencia).join(models.Competencia)
                .where(models.Juez.user == user_id).order_by(models.Juez.id))


_EPOCH = dt.datetime(1970, 1, 1)


def _seconds(value):
    return (value - _EPOCH).total_seconds()


def current_judge(judges):
    """Of a user's judge rows (:func:`judges_of`), the one that matters now, or None: an active
    one before an inactive one; then a race running (the latest started), then the next one
    to run (the earliest ``fecha_hora``; undated ones after, the newest first), then the last
    one finished. The guide's apps know one judge: this is the one ``/api/me/`` names and
    tokens carry."""
    def rank(juez):
        comp = juez.competencia
        if comp.estado == models.ESTADO_EN_CURSO:
            order = (0, -_seconds(comp.started_at), 0)
        elif comp.estado == models.ESTADO_PROGRAMADA:
            order = (1, _seconds(comp.fecha_hora) if comp.fecha_hora else float("inf"), -juez.id)
        else:
            order = (2, -_seconds(comp.finished_at), -juez.id)
        return (not juez.is_active,) + order
    return min(judges, key=rank, default=None)


def acting_judges(user_id):
    """The active judge rows of user ``user_id`` (whose session holds), one per competition
    it times; the DomainError that refuses it when it has none (session_refusal's judge
    part: not a judge, or no longer an active one)."""
    judges = judges_of(user_id)
    active = [juez for juez in judges if juez.is_active]
    refusal = judge_refusal(judges[0].id if judges else None, bool(active))
    if refusal is not None:
        raise refusal
    return active


def team_refusal(equipo_id, equipo_juez_id, juez_id, juez_active):
    """The DomainError refusing a judge a team it writes for or reads, or None: ``juez_id`` /
    ``juez_active`` is the user's judge row in the team's competition (None: it has none
    there), ``equipo_juez_id`` the team's judge. The one rule of the submission (read in bulk
    in the writer) and of the judge's read-back."""
    if juez_id is None or equipo_juez_id != juez_id:
        return models.Forbidden(messages.TEAM_NOT_ASSIGNED % equipo_id, "team_not_assigned")
    if not juez_active:  # (its judge in this competition; it may be active in another)
        return models.Forbidden(messages.JUDGE_INACTIVE, "inactive_judge")
    return None


def user_identity(user_id, token_gen=None):
    """What a token and ``/api/me/`` say about a user: dict, or None if gone or inactive.

    ``token_gen``: the generation a token carries (its ``gen`` claim); a token of an earlier
    generation than the user's (a password change or a deactivation since) is refused with
    Unauthenticated ``token_revoked``. Read from the database every time, so a change made by
    another process (the command line) counts at once. ``juez_id`` is the user's current
    judge (:func:`current_judge`), ``juez_active`` whether any of its judges is active and
    ``jueces`` {juez_id: (competencia_id, active, race finished)} all of them.
    """
    user = models.User.get_or_none(models.User.id == user_id)
    refusal = session_refusal(user is not None and user.is_active,
                              user.token_gen if user is not None else None, token_gen)
    if refusal is not None:
        if refusal.code == "user_inactive":
            return None
        raise refusal
    judges = judges_of(user.id)
    juez = current_judge(judges)
    return {
        "user": user.to_dict(),
        "gen": user.token_gen,
        "juez_id": juez.id if juez is not None else None,
        "juez_active": bool(juez is not None and juez.is_active),
        "competencia_id": juez.competencia_id if juez is not None else None,
        "jueces": {j.id: (j.competencia_id, bool(j.is_active),
                          j.competencia.estado == models.ESTADO_FINALIZADA) for j in judges},
    }


def judge_of_identity(identity, juez_id):
    """The judge ``juez_id`` of an identity (:func:`user_identity`): (juez_id, competencia_id),
    or the DomainError refusing it (another user's judge: Forbidden ``wrong_judge``; an
    inactive one)."""
    juez = identity.get("jueces", {}).get(juez_id)
    if juez is None:
        return models.Forbidden(messages.WRONG_JUDGE % juez_id, "wrong_judge")
    refusal = judge_refusal(juez_id, juez[1])
    return refusal if refusal is not None else (juez_id, juez[0])


def _session_rows(user_ids):
    """(user id, is_active, token_gen, juez id, juez is_active) of these users, read in bulk."""
    for chunk in models.chunks(list(user_ids), 500):  # (a judge of several competitions:
        yield from models.db.execute_sql(                # any judge row, any of them active)
            'SELECT u.id, u.is_active, u.token_gen, min(j.id), max(j.is_active) '
            'FROM "user" AS u LEFT JOIN juez AS j ON j.user_id = u.id WHERE u.id IN (%s) '
            "GROUP BY u.id" % models.sql_marks(len(chunk)), chunk).fetchall()


def token_generations(user_ids):
    """{user_id: token generation} of those users whose sessions hold (session_refusal: active,
    and for a judge, an active judge)."""
    return {user_id: gen for user_id, active, gen, juez_id, juez_active in _session_rows(user_ids)
            if session_refusal(active, gen, None, juez_id, juez_active, JUDGE_IF_ANY) is None}


def refused_sessions(sessions):
    """Of ``sessions``, (user_id, token generation) pairs (open sockets), the set of those that
    no longer hold (session_refusal, applied to rows read in bulk: the user gone or inactive,
    its judge inactive, or a token of another generation)."""
    sessions = set(sessions)
    rows = {row[0]: row for row in _session_rows(sorted({user_id for user_id, _ in sessions}))}
    refused = set()
    for user_id, token_gen in sessions:
        _, active, gen, juez_id, juez_active = rows.get(user_id, (user_id, None, None, None, None))
        if session_refusal(active, gen, token_gen, juez_id, juez_active, JUDGE_IF_ANY) is not None:
            refused.add((user_id, token_gen))
    return refused


def revocation_mark():
    """A mark of every account's state that any revocation (a new password, a deactivation,
    a revoke_tokens), any user or judge made inactive or active, moves: one cheap aggregate,
    read often by the server to notice another process's changes (handlers/sessions.py)."""
    return tuple(models.db.execute_sql(
        'SELECT (SELECT total(token_gen) FROM "user"), '
        '(SELECT count(*) FROM "user" WHERE is_active), '
        "(SELECT count(*) FROM juez WHERE is_active)").fetchone())


def me(user_id):
    user = models.User.get_or_none(models.User.id == user_id)
    if user is None or not user.is_active:
        return None
    judges = judges_of(user.id)
    juez = current_judge(judges)
    others = [j for j in judges if j.is_active and j is not juez]
    return {"user": user.to_dict(), "juez": juez.to_dict() if juez is not None else None,
            "jueces": [j.to_dict(competencia=j.competencia) for j in [juez] + others if j]}


# --------------------------------------------------------------------------------------------
# Administration (the command line; runs in its own process).
# --------------------------------------------------------------------------------------------
# A username's letters may come from one script, or from one of the mixes a real name can
# have (Unicode TS #39, "highly restrictive"): Latin with the Japanese, Chinese or Korean
# scripts. Digits, punctuation, symbols and combining marks go with any of them.
_SCRIPT_MIXES = ({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}, {"LATIN", "HAN", "BOPOMOFO"},
                 {"LATIN", "HAN", "HANGUL"})
# The first word of a character's Unicode name, where that word names a script (and the
# script it names: a few names start otherwise).
_SCRIPT_WORDS = {"CJK": "HAN", "ARABIC-INDIC": "ARABIC", "EXTENDED": "ARABIC"}
_SCRIPTS = {
    "LATIN", "GREEK", "COPTIC", "CYRILLIC", "ARMENIAN", "HEBREW", "ARABIC", "SYRIAC", "THAANA",
    "NKO", "DEVANAGARI", "BENGALI", "GURMUKHI", "GUJARATI", "ORIYA", "TAMIL", "TELUGU",
    "KANNADA", "MALAYALAM", "SINHALA", "THAI", "LAO", "TIBETAN", "MYANMAR", "GEORGIAN",
    "HANGUL", "ETHIOPIC", "CHEROKEE", "CANADIAN", "OGHAM", "RUNIC", "KHMER", "MONGOLIAN",
    "HIRAGANA", "KATAKANA", "BOPOMOFO", "HAN", "YI", "TIFINAGH", "VAI", "JAVANESE", "BALINESE"}
# Joins the emoji on either side into one (👩‍👩‍👧); elsewhere it is an invisible character.
_ZWJ = "\u200d"


def _script(char):
    """The script of a letter or digit, or None when it goes with any script."""
    words = unicodedata.name(char, "").replace("HALFWIDTH ", "").replace("FULLWIDTH ", "").split()
    if not words:
        return None
    script = _SCRIPT_WORDS.get(words[0], words[0])
    return script if script in _SCRIPTS else None


def username_problem(username):
    """Why ``username`` cannot be a new account's, or None. Refused: control characters,
    invisible ones (zero-width, bidirectional controls, other format characters; a joiner
    between two emoji is part of them), unusual spaces, unassigned and private-use code points,
    and letters of scripts that do not go together (a Cyrillic "е" in a Latin name), which is
    how a look-alike of another judge's name is made."""
    if not isinstance(username, str) or not username.strip() or len(username) > 150:
        return "El nombre de usuario no es válido."
    scripts = set()
    for index, char in enumerate(username):
        kind = unicodedata.category(char)
        if char == _ZWJ and 0 < index < len(username) - 1 and all(
                unicodedata.category(c) in ("So", "Sk", "Mn")
                for c in (username[index - 1], username[index + 1])):
            continue
        if kind in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp") or (kind == "Zs" and char != " "):
            return ("El nombre de usuario contiene un carácter invisible, de control o un "
                    "espacio especial (U+%04X)." % ord(char))
        if kind[0] in "LN":
            script = _script(char)
            if script is not None:
                scripts.add(script)
    if len(scripts) > 1 and not any(scripts <= mix for mix in _SCRIPT_MIXES):
        return ("El nombre de usuario mezcla alfabetos (%s): parecería el de otra persona."
                % ", ".join(sorted(scripts)).lower())
    return None


def create_user(username, password, organizer=False, password_hash=None):
    """A new account. Its username must pass username_problem (existing accounts keep theirs)
    and be new, case and compatibility forms aside (username_key). ``password`` must pass
    :func:`check_password`; ``password_hash`` is its hash made beforehand
    (:func:`new_password_hash`, off the server's writer), else it is made here."""
    problem = username_problem(username)
    if problem is not None:
        raise models.Invalid(problem, "invalid_username")
    key = models.username_key(username)
    if models.User.select().where(models.User.username_key == key).exists():
        raise models.Conflict("El usuario %r ya existe." % username, "username_taken")
    return models.User.create(username=username.strip(), username_key=key,
                              password_hash=password_hash or new_password_hash(password),
                              is_organizer=organizer)


def set_password(username, password):
    """A new password for any user (:func:`replace_password`). Returns the user."""
    user = models.User.get_or_none(models.User.username_key == models.username_key(username))
    if user is None:
        raise models.NotFound("El usuario %r no existe." % username, "user_not_found")
    password_hash = new_password_hash(password)
    with models.db.atomic():
        replace_password(user.id, password_hash)
    return models.User.get_by_id(user.id)


def replace_password(user_id, password_hash, by=None):
    """Store a user's new password (its hash, from new_password_hash) and refuse every token
    issued before, also by a server running in another process (token checks read the
    generation from the database). For a judge, a history row of ``by`` in its competition
    (never the password). Runs inside the caller's transaction."""
    models.User.update(password_hash=password_hash).where(models.User.id == user_id).execute()
    revoke_tokens(user_id)
    for juez in models.Juez.select().where(models.Juez.user == user_id):
        models.add_history(juez.competencia_id, "contrasena", "juez", juez.id, by)


def revoke_tokens(user_id):
    """Refuse every token issued so far to this user (inside the change's transaction): tokens
    carry the generation they were issued in, and this moves the user's on."""
    (models.User.update(token_gen=models.User.token_gen + 1)
     .where(models.User.id == user_id).execute())
