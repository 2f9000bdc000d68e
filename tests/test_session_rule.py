"""Issue 21 item 2: one rule decides whether a session still holds (identity.session_refusal),
and every path that asks gives the same answer for the same account; each text a user reads
about it lives once, in messages.py."""

import pathlib
import re

import models
import identity
import ledger
import messages
import race_control
import registration
import submissions
from helpers import registros

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_the_rule_checks_user_then_token_then_judge():
    refusal = identity.session_refusal
    assert refusal(True, 3, 3, 7, True, identity.JUDGE_REQUIRED) is None
    assert refusal(None, None, 3, None, False, identity.JUDGE_REQUIRED).code == "user_inactive"
    assert refusal(False, 3, 2, 7, False, identity.JUDGE_REQUIRED).code == "user_inactive"
    assert refusal(True, 3, 2, None, False, identity.JUDGE_REQUIRED).code == "token_revoked"
    assert refusal(True, 3, None, None, False, identity.JUDGE_REQUIRED).code == "not_a_judge"
    assert refusal(True, 3, 3, 7, False, identity.JUDGE_REQUIRED).code == "inactive_judge"
    assert refusal(True, 3, 3, None, False, identity.JUDGE_IF_ANY) is None  # an organizer
    assert refusal(True, 3, 3, 7, False, identity.JUDGE_IF_ANY).code == "inactive_judge"
    assert refusal(True, 3, 3, 7, False) is None  # JUDGE_ANY: the caller reads juez_active
    error = refusal(True, 3, 2)
    assert isinstance(error, models.Unauthenticated) and error.detail == messages.TOKEN_REVOKED


def _code(call, *args):
    try:
        call(*args)
    except models.DomainError as exc:
        return exc.code
    return None


def test_every_path_answers_alike_for_the_same_account(tmp_path):
    models.open_database(tmp_path / "sesiones.db")
    with models.db.connection_context():
        comp = registration.create_competition("Sesiones")
        juez = registration.create_judge("ana", "clave-de-ana", comp.id)
        equipo = registration.create_team("Uno", 1, juez.id)
        uid = juez.user_id

        def answers(gen):
            return {
                "identity": _code(identity.user_identity, uid, gen)
                or (None if identity.user_identity(uid, gen) else "user_inactive"),
                "submission": _code(submissions.store_submission, uid, equipo.id,
                                    registros([], validated=True), gen),
                "read_back": _code(ledger.team_records, uid, equipo.id),
                "team_list": _code(race_control.judge_teams, uid),
                "socket": "refused" if identity.refused_sessions({(uid, gen)}) else None,
                "generations": identity.token_generations([uid]).get(uid),
            }

        assert answers(0) == {"identity": None, "submission": None, "read_back": None,
                              "team_list": None, "socket": None, "generations": 0}
        assert answers(1)["socket"] == "refused"
        assert answers(1)["submission"] == answers(1)["identity"] == "token_revoked"
        # A judge made inactive behind the API's back (its generation unmoved): every path
        # that needs an active judge refuses it, the socket sweep included.
        models.Juez.update(is_active=False).where(models.Juez.id == juez.id).execute()
        assert answers(0) == {"identity": None, "submission": "inactive_judge",
                              "read_back": "inactive_judge", "team_list": "inactive_judge",
                              "socket": "refused", "generations": None}
        models.User.update(is_active=False).where(models.User.id == uid).execute()
        assert answers(0) == {"identity": "user_inactive", "submission": "user_inactive",
                              "read_back": "user_inactive", "team_list": "user_inactive",
                              "socket": "refused", "generations": None}
        assert identity.refused_sessions({(999, 0)}) == {(999, 0)}  # a user that never was


def test_each_session_text_is_written_once():
    product = [p for p in ROOT.glob("*.py")] + list((ROOT / "handlers").glob("*.py"))
    # A format's conversion (%s, %d) may be written either way in a copy.
    texts = {name: re.compile(re.escape(value).replace("%s", "%[sd]").replace("%d", "%[sd]"))
             for name, value in vars(messages).items() if name.isupper() and isinstance(value, str)}
    for path in product:
        if path.name == "messages.py":
            continue
        source = path.read_text(encoding="utf-8")
        for name, text in texts.items():
            assert not text.search(source), "%s repeats messages.%s" % (path.name, name)
