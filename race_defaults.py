"""The server's race settings, one per process: the defaults of config.yaml ``race.*``
(how many times count, the impossible-time tolerance, the venue's time zone), set by
``configure`` at start-up and replayed in worker processes via ``configuration``.
"""

import datetime as dt
import os
import zoneinfo


# The venue's time zone (config ``race.timezone``; None: this machine's). People see local times
# with their offset; the database and the wire stay in UTC.
def zone_named(name):
    """The IANA time zone ``name`` (``Europe/Madrid``). ValueError if there is none by that name."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError("%r is not an IANA time zone name" % (name,)) from None


def machine_zone():
    """This machine's time zone by its IANA name: $TZ, else what /etc/localtime links to, else
    /etc/timezone; else the current whole-hour UTC offset (Etc/GMT-1 for UTC+1), else UTC."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    try:
        link = os.path.realpath("/etc/localtime")
        if "/zoneinfo/" in link:
            candidates.append(link.split("/zoneinfo/", 1)[1])
    except OSError:
        pass
    try:
        with open("/etc/timezone", encoding="utf-8") as handle:
            candidates.append(handle.read().strip())
    except OSError:
        pass
    offset = dt.datetime.now().astimezone().utcoffset() or dt.timedelta(0)
    hours, rest = divmod(int(offset.total_seconds()), 3600)
    if not rest:
        candidates.append("Etc/GMT%+d" % -hours if hours else "UTC")
    for name in candidates:
        if name and not name.startswith("/"):
            try:
                return zone_named(name)
            except ValueError:
                continue
    return zoneinfo.ZoneInfo("UTC")


def zone():
    """The venue's time zone (a ZoneInfo, whose ``key`` is its IANA name)."""
    if DEFAULTS["zona"] is None:
        DEFAULTS["zona"] = machine_zone()
    return DEFAULTS["zona"]

# Server-wide defaults (config.yaml ``race.*``), set once by the server and the command line.
# ``contados``: how many of a team's best times count. ``tolerancia_ms``: a counted time longer
# than the race had been running when it arrived, by more than this, is flagged
# ``tiempo_imposible`` for the organizer (it still counts: a person decides). Network delay only
# ever makes the server's elapsed time longer than the phone's stopwatch, so the tolerance only
# absorbs clock granularity and a judge who started the stopwatch by hand. ``zona``: the venue's
# time zone (None until asked: this machine's).
DEFAULTS = {"contados": 15, "tolerancia_ms": 5000, "zona": None}



class _CompetitionRule:
    def __repr__(self):
        return "COMPETITION_RULE"


# "Count as the competition's rule says": the default of every function that takes a count.
COMPETITION_RULE = _CompetitionRule()


def configure(contados=15, tolerancia_ms=5000, timezone=None):
    """The server's ``race.*`` settings; ``timezone`` an IANA name, None for this machine's."""
    DEFAULTS.update(contados=contados, tolerancia_ms=tolerancia_ms,
                    zona=zone_named(timezone) if timezone else machine_zone())


def configuration():
    """What ``configure`` was last given, as its keyword arguments (for a worker process to
    configure its models as this process did)."""
    return {"contados": DEFAULTS["contados"], "tolerancia_ms": DEFAULTS["tolerancia_ms"],
            "timezone": zone().key}
