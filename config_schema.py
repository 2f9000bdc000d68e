"""The configuration file: its schema (every key, its type and default), loading and checking
config.yaml (``load_config``), and the signing secret's file. ``config.yaml`` is the data.
"""

import ipaddress
import logging
import os
import secrets
from pathlib import Path

import yaml

import race_defaults
import replica


log = logging.getLogger("server5k")

HERE = Path(__file__).resolve().parent


# ------------------------------------------------------------------------------------------------
# Configuration: one schema, every key typed; unknown keys and wrong types refuse to start.
# ------------------------------------------------------------------------------------------------
class ConfigError(Exception):
    pass


class Key:
    """One config key: its default, and the rule its value must follow, stated in words so that
    every refusal says exactly what is accepted (ranges included)."""

    def __init__(self, default, words, check):
        self.default, self.words, self.check = default, words, check


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def Int(default, lo, hi, unit="", zero=None):
    words = "an integer %d-%d%s%s" % (lo, hi, unit and " " + unit,
                                      " (0 = %s)" % zero if zero else "")
    return Key(default, words, lambda v: _is_int(v) and lo <= v <= hi)


def Number(default, lo, hi, unit=""):
    words = "a number over %g and up to %g%s" % (lo, hi, unit and " " + unit)
    return Key(default, words,
               lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and lo < v <= hi)


def Text(default, words, optional=False):
    return Key(default, words + (" or null" if optional else ""),
               lambda v: (optional and v is None) or (isinstance(v, str) and v != ""))


def Flag(default):
    return Key(default, "true or false", lambda v: isinstance(v, bool))


def TextList(default, words, item=None):
    """A list of non-empty strings; ``item(text)`` (if given) must not raise ValueError."""
    def check(v):
        if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
            return False
        try:
            for x in v if item else ():
                item(x)
        except ValueError:
            return False
        return True
    return Key(default, words, check)


def _ip_network(text):
    ipaddress.ip_network(text.strip(), strict=False)


def _is_zone(v):
    try:
        race_defaults.zone_named(v)
        return True
    except ValueError:
        return False


def _is_public_url(v):
    if not isinstance(v, str) or "://" not in v:
        return False
    scheme, rest = v.split("://", 1)
    host = rest.rstrip("/")
    return (scheme in ("http", "https") and bool(host) and not host.startswith(":")
            and not any(c in host for c in "/?#@ \t\n\"'<>"))


def TimeZone():
    return Key(None, "an IANA time zone name such as Europe/Madrid or America/Bogota "
               "(null = this machine's zone)", lambda v: v is None or _is_zone(v))


def PublicUrl():
    return Key(None, "the address phones open, http:// or https:// and a host[:port] only, "
               "such as http://192.168.1.10:8000 (null = the address the browser used)",
               lambda v: v is None or _is_public_url(v))


# section -> key -> Key. Every key is optional; config.yaml documents each with its default.
CONFIG_SCHEMA = {
    "server": {
        "host": Text("127.0.0.1", "a host name or address"),
        "port": Int(8000, 1, 65535),
        "tls_cert": Text(None, "a PEM file path", optional=True),
        "tls_key": Text(None, "a PEM file path", optional=True),
        "ws_ping_interval_s": Number(20, 0, 3600, "seconds"),
        "ws_ping_timeout_s": Key(None, "a number over 0 and up to 3600 seconds, at most "
                                 "server.ws_ping_interval_s, or null (half the interval)",
                                 lambda v: v is None or (isinstance(v, (int, float))
                                                         and not isinstance(v, bool)
                                                         and 0 < v <= 3600)),
        "allowed_origins": TextList([], "a list of origins ([] = any)"),
        "cors_origins": TextList(["*"], 'a list of origins or ["*"]'),
        "public_url": PublicUrl(),
        "trusted_proxies": TextList([], "a list of IP addresses or networks (10.0.0.0/8) of "
                                        "reverse proxies whose X-Forwarded-For is believed "
                                        "([] = none)", item=_ip_network),
    },
    "database": {
        "path": Text("server5k.db", "a file path"),
    },
    "auth": {
        "access_token_lifetime_s": Int(300, 10, 7 * 86400, "seconds"),
        "refresh_token_lifetime_s": Int(86400, 60, 365 * 86400, "seconds"),
        "rotate_refresh_tokens": Flag(False),
    },
    "race": {
        "max_records_per_submission": Int(15, 1, 1000),
        "records_scored_per_team": Int(15, 1, 1000),
        "impossible_time_tolerance_ms": Int(5000, 0, 3_600_000, "ms"),
        "start_lag_alert_ms": Int(2000, 0, 3_600_000, "ms"),
        "timezone": TimeZone(),
    },
    "replica": {
        "url": Text(None, "a Litestream replica URL (file:///..., sftp://..., s3://...)",
                    optional=True),
        "sync_interval_s": Number(1, 0, 3600, "seconds"),
    },
    "limits": {
        "login_per_minute": Int(20, 0, 100000, zero="off"),
        "login_per_address_per_minute": Int(60, 0, 100000, zero="off"),
        "login_lockout_failures": Int(5, 0, 1000, zero="off"),
        "login_lockout_s": Int(30, 1, 86400, "seconds"),
        "submissions_per_minute": Int(120, 0, 100000, zero="off"),
        "anonymous_per_minute": Int(1200, 0, 1_000_000, zero="off"),
        "spectator_sockets": Int(2000, 0, 1_000_000),
        "spectator_sockets_per_address": Int(200, 0, 1_000_000),
        "judge_sockets_per_judge": Int(4, 1, 1000),
        "connections_per_address": Int(500, 0, 1_000_000, zero="off"),
        "anonymous_idle_s": Number(20, 1, 120, "seconds"),
    },
}


# PyYAML's C loader when libyaml is there: the pure-Python one takes ~70 ms for the OpenAPI
# description, on every start-up.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(text):
    return yaml.load(text, Loader=_YAML_LOADER)


DEFAULT_CONFIG = HERE / "config.yaml"


def config_path(given=None):
    """The config file: ``--config``, else $SERVER5K_CONFIG, else config.yaml here."""
    return Path(given or os.environ.get("SERVER5K_CONFIG") or DEFAULT_CONFIG)


def load_config(path=None, overrides=None):
    """Read and check a config file. Returns a dict of sections with every key filled in.

    A file named by ``--config`` or $SERVER5K_CONFIG must exist (a typo must never serve an
    empty event on defaults); only the shipped config.yaml may be absent. Relative file paths
    in the config are taken relative to the config file's folder.
    """
    where = "--config" if path else "$SERVER5K_CONFIG"
    path = config_path(path)
    if not path.is_file() and path != DEFAULT_CONFIG:
        raise ConfigError("config file %s (from %s) does not exist; check the name, or copy "
                          "config.yaml there" % (path, where))
    try:
        raw = read_yaml(path.read_text(encoding="utf-8")) if path.exists() else {}
    except yaml.YAMLError as exc:
        raise ConfigError("%s is not valid YAML: %s" % (
            path, " ".join(str(exc).split()))) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("cannot read config file %s: %s" % (path, exc)) from None
    raw = raw or {}
    for section, values in (overrides or {}).items():
        raw.setdefault(section, {}).update(values)
    if not isinstance(raw, dict):
        raise ConfigError("%s: the top level must be a mapping of sections" % path)
    config = {}
    for section in raw:
        if section not in CONFIG_SCHEMA:
            raise ConfigError("%s: unknown config key %r (known: %s)"
                              % (path, section, ", ".join(CONFIG_SCHEMA)))
    for section, keys in CONFIG_SCHEMA.items():
        given = raw.get(section) or {}
        if not isinstance(given, dict):
            raise ConfigError("%s: %s must be a mapping" % (path, section))
        for key in given:
            if key not in keys:
                raise ConfigError("%s: unknown config key '%s.%s'" % (path, section, key))
        config[section] = {}
        for key, rule in keys.items():
            value = given.get(key, rule.default)
            if not rule.check(value):
                raise ConfigError("%s: config key '%s.%s' must be %s, not %r"
                                  % (path, section, key, rule.words, value))
            config[section][key] = value
    base = path.resolve().parent
    for section, key in (("database", "path"), ("server", "tls_cert"), ("server", "tls_key")):
        value = config[section][key]
        if value is not None and value != ":memory:":
            config[section][key] = str(base / Path(value).expanduser())
    if bool(config["server"]["tls_cert"]) != bool(config["server"]["tls_key"]):
        raise ConfigError("%s: server.tls_cert and server.tls_key go together" % path)
    timeout = config["server"]["ws_ping_timeout_s"]
    if timeout is not None and timeout > config["server"]["ws_ping_interval_s"]:
        raise ConfigError("%s: config key 'server.ws_ping_timeout_s' must be at most "
                          "server.ws_ping_interval_s (%g), not %g" % (
                              path, config["server"]["ws_ping_interval_s"], timeout))
    if config["replica"]["url"] is not None:
        try:
            replica.check_url(config["replica"]["url"])
        except replica.ReplicaError as exc:
            raise ConfigError("%s: config key 'replica.url': %s" % (path, exc)) from None
    if config["server"]["public_url"]:
        config["server"]["public_url"] = config["server"]["public_url"].rstrip("/")
    config["_path"] = str(path)
    return config


def write_private(path, write, exclusive=False):
    """Create ``path`` readable by its owner only (mode 0600) and fill it with ``write(handle)``.

    Secrets and generated passwords go through here and nowhere else. ``exclusive`` refuses to
    replace an existing file.
    """
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    with os.fdopen(os.open(path, flags, 0o600), "w", newline="", encoding="utf-8") as handle:
        write(handle)


def secret_file(config):
    return Path(config["database"]["path"] + ".secret")


def secret_source(config):
    """Where the signing secret comes from, in words (never the secret itself)."""
    if os.environ.get("SERVER5K_SECRET_KEY"):
        return "SERVER5K_SECRET_KEY"
    return "%s (mode 0600)" % secret_file(config)


def signing_secret(config):
    """SERVER5K_SECRET_KEY, or a random secret created once beside the database (mode 0600).

    The same secret must sign and check every token for as long as they live: a new one logs
    every phone out. The file survives restarts and reboots; a second machine needs a copy."""
    secret = os.environ.get("SERVER5K_SECRET_KEY")
    if secret:
        if len(secret) < 32:
            raise ConfigError("SERVER5K_SECRET_KEY must be at least 32 characters")
        return secret
    path = secret_file(config)
    if not path.exists():
        write_private(path, lambda handle: handle.write(secrets.token_urlsafe(48)),
                      exclusive=True)
        log.warning("SERVER5K_SECRET_KEY is not set: created a random signing secret in %s "
                    "(keep it private; tokens stay valid across restarts)", path)
    secret = path.read_text().strip()
    if len(secret) < 32:
        raise ConfigError("%s holds a secret shorter than 32 characters" % path)
    return secret
