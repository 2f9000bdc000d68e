"""How long the standings take: ``ranking.ranking`` on an event of TEAMS teams x 15 records (and
CORRECTIONS corrections where the code has them), median of ROUNDS runs.

    python bench/standings.py [--teams 500] [--corrections 200] [--rounds 30] [--against DIR]

``--against DIR`` runs the same measurement on another checkout (e.g. an older commit made with
``git worktree add``) in interleaved rounds and prints the ratio: the figure issue 12 asks for.
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build_and_time(root, teams, corrections, rounds, db_path):
    sys.path.insert(0, str(root))
    import models  # noqa: E402  (the checkout under test)
    import race_control  # noqa: E402
    import ranking  # noqa: E402
    import registration  # noqa: E402
    import submissions  # noqa: E402

    models.open_database(db_path)
    rng = random.Random(5)
    with models.db.connection_context():
        with models.db.atomic():
            comp = registration.create_competition("Bench")
            juez = registration.create_judge("juez", "x" * 10, comp.id)
            equipos = [registration.create_team("Equipo %d" % n, n, juez.id).id
                       for n in range(1, teams + 1)]
            models.Competencia.update(started_at=models.utcnow()).execute()
            jobs = [(juez.user_id, equipo_id, [
                {"tiempo": rng.randint(1_000_000, 2_500_000),
                 "timestamp": models.utcnow(), "id_registro": None} for _ in range(15)])
                for equipo_id in equipos]
            store = getattr(submissions, "store_submissions", None)
            if store is None:
                raise SystemExit("this checkout has no store_submissions")
            store(jobs)
        done = 0
        if corrections and hasattr(race_control, "void_record"):
            ids = [models.uuid_text(r.id_registro.hex) for r in
                   models.RegistroTiempo.select(models.RegistroTiempo.id_registro).limit(corrections)]
            with models.db.atomic():
                for n, rid in enumerate(ids):
                    if n % 3 == 0:
                        race_control.void_record(None, rid, "bench")
                    elif n % 3 == 1:
                        race_control.edit_record(None, rid, "bench", tiempo=1_111_111)
                    else:
                        race_control.edit_record(None, rid, "bench", equipo_id=equipos[n % teams])
                    done += 1
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            ranking.ranking(comp.id, 15)
            times.append((time.perf_counter() - start) * 1000)
    return {"median_ms": statistics.median(times), "corrections": done}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teams", type=int, default=500)
    parser.add_argument("--corrections", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--against", help="another checkout to measure side by side")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved runs of each")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(build_and_time(Path(args.child), args.teams, args.corrections,
                                            args.rounds, os.path.join(tmp, "bench.db"))))
        return
    sides = [("this", ROOT)] + ([("against", Path(args.against).resolve())] if args.against else [])
    results = {name: [] for name, _ in sides}
    for _ in range(args.repeat):
        for name, root in sides:
            out = subprocess.run([sys.executable, __file__, "--child", str(root), "--teams",
                                  str(args.teams), "--corrections", str(args.corrections),
                                  "--rounds", str(args.rounds)], capture_output=True, text=True,
                                 check=True).stdout
            results[name].append(json.loads(out))
    for name, root in sides:
        medians = [r["median_ms"] for r in results[name]]
        print("%-8s %s: standings median %.1f ms (runs %s), corrections %d" % (
            name, root, statistics.median(medians), ", ".join("%.1f" % m for m in medians),
            results[name][0]["corrections"]))
    if args.against:
        ratio = (statistics.median(r["median_ms"] for r in results["this"])
                 / statistics.median(r["median_ms"] for r in results["against"]))
        print("ratio this/against: %.2f" % ratio)


if __name__ == "__main__":
    main()
