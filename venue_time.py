"""Time on the wire and at the venue: ISO 8601 timestamps as PROTOCOL.md accepts them, the
venue's local times, durations typed by people (``parse_duration``) and shown to them
(``format_ms``). The database and the wire stay in naive UTC (models.utcnow / models.iso).
"""

import datetime as dt
import re

import race_defaults


_ZULU_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?Z")
# What PROTOCOL.md accepts, and nothing more of what datetime.fromisoformat would: a calendar
# date and a time of day (hours and minutes at least; seconds and a fraction of up to nine
# digits, as phones send, optional), then Z, an offset (+01:00 or +0100) or nothing (UTC).
# Refused: week and ordinal dates, the basic format (20250101T000000), a bare date, an hour
# alone, a comma for the decimal point, offsets with seconds, anything after (a NUL, a newline).
_ISO_TIMESTAMP = re.compile(
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})[T ]"
    r"(?P<time>[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.(?P<fraction>[0-9]{1,9}))?)?)"
    r"(?P<zone>Z|[+-][0-9]{2}:?[0-9]{2})?")


def parse_timestamp(text):
    """Parse an ISO 8601 timestamp (the forms _ISO_TIMESTAMP describes) to naive UTC. ``Z`` or
    an offset; naive means UTC. ValueError for anything else."""
    if not isinstance(text, str) or not 16 <= len(text) <= 40:
        raise ValueError("not an ISO 8601 timestamp")
    if _ZULU_TIMESTAMP.fullmatch(text):  # the app's own form, UTC: no time zone arithmetic
        return dt.datetime.fromisoformat(text[:-1])
    match = _ISO_TIMESTAMP.fullmatch(text)
    if match is None:
        raise ValueError("not an ISO 8601 date and time: %r" % text[:40])
    fraction, zone = match["fraction"], match["zone"]
    time = match["time"][:-len(fraction) - 1] if fraction else match["time"]
    value = dt.datetime.fromisoformat("%sT%s%s%s" % (
        match["date"], time, "." + fraction[:6] if fraction else "",
        "+00:00" if zone == "Z" else zone or ""))
    offset = value.utcoffset()
    if offset is not None:
        value = value.replace(tzinfo=None) - offset
    return value


def to_local(value):
    """A naive-UTC datetime as an aware datetime in the venue's zone (None stays None)."""
    if value is None:
        return None
    return value.replace(tzinfo=dt.timezone.utc).astimezone(race_defaults.zone())


def local_iso(value):
    """Local time with its offset, to the second, for people: ``2026-12-06T09:00:00+01:00``."""
    local = to_local(value)
    return None if local is None else local.isoformat(timespec="seconds")


def parse_local_timestamp(text):
    """An organizer's ISO 8601 date to naive UTC: with ``Z`` or an offset as given; without one,
    in the venue's zone (``2026-12-06T09:00`` is 09:00 there; of a time that a clock change
    makes happen twice, the first). ValueError otherwise. (A judge's app keeps PROTOCOL.md's
    rule, naive is UTC: :func:`parse_timestamp`.)"""
    if not isinstance(text, str) or not 10 <= len(text) <= 40:
        raise ValueError("not an ISO 8601 timestamp")
    value = dt.datetime.fromisoformat(text.strip())
    if value.utcoffset() is None:
        value = value.replace(tzinfo=race_defaults.zone())
    return value.astimezone(dt.timezone.utc).replace(tzinfo=None)


def split_tiempo(tiempo_ms):
    """Split elapsed milliseconds into (hours, minutes, seconds, milliseconds)."""
    seconds, ms = divmod(tiempo_ms, 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return hours, minutes, seconds, ms


def format_ms(tiempo_ms):
    """``h:mm:ss.mmm`` (the results format), or None."""
    if tiempo_ms is None:
        return None
    hours, minutes, seconds, ms = split_tiempo(int(tiempo_ms))
    return "%d:%02d:%02d.%03d" % (hours, minutes, seconds, ms)


# Clock text, the one grammar of it: static/duracion.js is its copy for the console, and both
# are tested on the same table of cases (tests/duration_cases.json). The sign is a plus, a
# hyphen or a minus sign (U+2212, what phones type); the decimal mark a point or a comma.
_DURATION = re.compile(
    r"(?P<sign>[+\-\u2212])?(?:(?P<ms>[0-9]+)(?:ms)?|(?P<secs>[0-9]+(?:[.,][0-9]{1,3})?)s|"
    r"(?:(?P<h>[0-9]+):)?(?P<m>[0-9]{1,2}):(?P<s>[0-9]{1,2}(?:[.,][0-9]{1,3})?))")


def parse_duration(text, signed=False):
    """Milliseconds from what an organizer types: ``1185200`` (ms), ``250ms``, ``+20s``,
    ``-1.5s``, ``19:45.2`` (m:ss.f) or ``0:19:45.200`` (h:mm:ss.mmm); ``,`` for the decimal
    point and ``−`` for the minus too. A sign only when ``signed``. ValueError with a plain
    message otherwise."""
    match = _DURATION.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None or (match["sign"] and not signed):
        raise ValueError("%r is not a time: use milliseconds or clock text such as 19:45.2, "
                         "0:19:45.200%s" % (text, ", +20s or -1.5s" if signed else ""))
    if match["ms"] is not None:
        value = int(match["ms"])
    elif match["secs"] is not None:
        value = round(float(match["secs"].replace(",", ".")) * 1000)
    else:
        seconds = float(match["s"].replace(",", "."))
        if match["h"] is not None and int(match["m"]) > 59 or seconds >= 60:
            raise ValueError("%r is not a time: minutes and seconds go up to 59" % text)
        value = (int(match["h"] or 0) * 3600 + int(match["m"]) * 60) * 1000 + round(
            seconds * 1000)
    return value if match["sign"] in (None, "+") else -value
