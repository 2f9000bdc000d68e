"""The wire format, one home for it: strict JSON in, compact JSON out, and the
``{"type", "data"}`` envelope of every WebSocket message (judges' and spectators' sockets).
"""

import json

# Deeper JSON than this is not a submission: refuse it before it costs anything.
MAX_JSON_DEPTH = 32

# WebSocket close codes of the server, besides 1001 (shutting down) and 1009 (message too big).
CLOSE_REPLACED = 4001     # the judge opened more sockets than allowed: this, its oldest, goes
CLOSE_NOT_READING = 4002  # more unread data was waiting for this socket than allowed
CLOSE_TOO_CHATTY = 4003   # a spectator's socket sent more than its inbound budget


def _reject_duplicate_keys(pairs):
    obj = dict(pairs)
    if len(obj) != len(pairs):  # a key came twice: name it
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError("duplicated key %r" % key)
            seen.add(key)
    return obj


def _reject_constant(name):
    raise ValueError("%s is not valid JSON" % name)


def _finite_float(text):
    value = float(text)
    if value in (float("inf"), float("-inf")):  # 1e400: no JSON number means infinity
        raise ValueError("number out of range: %s" % text[:40])
    return value


def _check_text(value):
    """ValueError if any string (key or value) holds a lone surrogate (from a ``\\ud800``
    escape): such text cannot be stored in SQLite or written back as UTF-8."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("text with an unpaired surrogate escape") from None
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _depth(value):
    """Nesting depth of parsed JSON, walked without recursion (only containers are visited)."""
    if not isinstance(value, (dict, list)):
        return 0
    deepest, stack = 1, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > deepest:
            deepest = depth
        for child in item.values() if isinstance(item, dict) else item:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return deepest


_DECODER = json.JSONDecoder(object_pairs_hook=_reject_duplicate_keys,
                            parse_constant=_reject_constant, parse_float=_finite_float)


def parse_json(raw):
    """Strict JSON: UTF-8, no duplicated keys, no NaN/Infinity/overflowing numbers, no unpaired
    surrogates, bounded depth. ValueError else."""
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    if text.startswith("\ufeff"):
        raise ValueError("Unexpected UTF-8 BOM")
    value = _DECODER.decode(text)
    # The walks below are only needed when the text could hold what they look for: nesting
    # deeper than the number of brackets cannot be, and bytes that decoded as UTF-8 hold no lone
    # surrogate unless a \u escape made one.
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH and _depth(value) > MAX_JSON_DEPTH:
        raise ValueError("JSON nested deeper than %d levels" % MAX_JSON_DEPTH)
    if "\\u" in text or text is raw:
        _check_text(value)
    return value


def dumps(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def message(kind, data):
    """A WebSocket message: ``{"type": kind, "data": data}`` as text."""
    return dumps({"type": kind, "data": data})


def message_text(kind, data_text):
    """``message(kind, data)`` for data already serialised (``data_text`` is ``dumps(data)``)."""
    return '{"type":%s,"data":%s}' % (dumps(kind), data_text)
