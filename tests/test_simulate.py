"""The organizer's rehearsal: virtual judges against the real app, and its rehearsal accounts."""

import csv
import os
import sqlite3
import stat

import pytest

import models
import identity
import cli_local
import rehearsal
from helpers import run_cli


@pytest.mark.gen_test(timeout=60)
async def test_rehearsal_logs_in_connects_starts_and_stores_every_time(app, http_server, base_url,
                                                                        config):
    summary, ok = await rehearsal.simulate(
        base_url, [("juez1", "pass-juez1"), ("juez2", "pass-juez2")], competencia_id=None,
        organizer=("org", "org-pass"), finish_within_s=0.2)
    assert ok, summary
    assert "judges connected:       2 / 2" in summary
    assert "start notice received:  2 / 2" in summary
    # juez1 times two teams, juez2 one: 15 records each.
    assert "submissions accepted:   3 / 3 (45 records created, 0 duplicates)" in summary
    assert "errors by code:         none" in summary
    conn = sqlite3.connect(config["database"]["path"])
    assert conn.execute("SELECT COUNT(*) FROM registro_tiempo "
                        "WHERE estado_carrera = 'en_curso'").fetchone()[0] == 45
    conn.close()


@pytest.mark.gen_test(timeout=60)
async def test_rehearsal_reports_a_judge_who_cannot_log_in(app, http_server, base_url):
    summary, ok = await rehearsal.simulate(
        base_url, [("juez1", "pass-juez1"), ("juez2", "wrong")], competencia_id=None,
        organizer=("org", "org-pass"), finish_within_s=0.2)
    assert not ok
    assert "judges connected:       1 / 2" in summary
    assert "invalid_credentials 1" in summary
    assert "submissions accepted:   2 / 2" in summary  # juez1's two teams still made it


@pytest.mark.gen_test(timeout=60)
async def test_start_refused_to_a_judge_is_reported(app, http_server, base_url):
    summary, ok = await rehearsal.simulate(
        base_url, [("juez1", "pass-juez1")], competencia_id=None, organizer=("juez2", "pass-juez2"),
        wait_start_s=1)
    assert not ok
    assert "start refused: organizer_only" in summary
    assert "start notice received:  0 / 1" in summary


def test_create_demo_judges_once_with_private_credentials(config, event):
    cid, path = cli_local.create_simulation_judges(config, 3, event["competencia"])
    assert cid == event["competencia"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with path.open() as handle:
        first = list(csv.DictReader(handle))
    assert [row["usuario"] for row in first] == ["simjuez1", "simjuez2", "simjuez3"]
    # Again with one more: the three are reused (same passwords), one is added.
    cli_local.create_simulation_judges(config, 4, event["competencia"])
    with path.open() as handle:
        second = list(csv.DictReader(handle))
    assert second[:3] == first and second[3]["usuario"] == "simjuez4"
    with models.db.connection_context():
        judges = models.Juez.select().join(models.User).where(
            models.User.username.startswith("simjuez"))
        assert judges.count() == 4
        for juez in judges:
            assert juez.competencia_id == event["competencia"]
            assert juez.equipos.count() == 1
        assert identity.authenticate("simjuez2", second[1]["contrasena"]) is not None


def test_simulate_without_credentials_says_what_to_do(config, tmp_path):
    config_file = tmp_path / "c.yaml"
    config_file.write_text("database:\n  path: %s\n" % config["database"]["path"])
    result = run_cli(config_file, "simulate", "--judges", "5", in_process=True, check=False)
    assert result.returncode == 1
    err = result.stderr
    assert "--create-demo" in err and "--credentials" in err


@pytest.mark.gen_test(timeout=60)
async def test_a_rehearsal_of_the_other_competition_uses_the_judges_there(app, http_server,
                                                                         base_url, config,
                                                                         event):
    """juez1 also judges the other race (issue 20 item 12): a rehearsal of that race logs it
    in, listens on its judge id there and sends only that race's team (its /api/me/ names the
    first race, scheduled earlier)."""
    import registration
    with models.db.connection_context():
        models.Competencia.update(fecha_hora=models.utcnow() + models.dt.timedelta(hours=1)).where(
            models.Competencia.id == event["competencia"]).execute()
        there = registration.create_judge("juez1", None, event["otra"])
        equipo = registration.create_team("Equipo Y", 7, there.id).id
    summary, ok = await rehearsal.simulate(
        base_url, [("juez1", "pass-juez1")], competencia_id=event["otra"],
        organizer=("org", "org-pass"), finish_within_s=0.2)
    assert ok, summary
    assert "start notice received:  1 / 1" in summary
    conn = sqlite3.connect(config["database"]["path"])
    assert conn.execute("SELECT DISTINCT equipo_id, juez_id FROM registro_tiempo").fetchall() \
        == [(equipo, there.id)]
    conn.close()
