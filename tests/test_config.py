"""Configuration: unknown keys and wrong types refuse to start; the secret is handled safely."""

import os
import stat
import subprocess
import sys

import pytest

import config_schema


def write(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_defaults_when_the_file_is_empty(tmp_path):
    config = config_schema.load_config(write(tmp_path, ""))
    assert config["server"]["port"] == 8000 and config["race"]["max_records_per_submission"] == 15
    assert config["limits"] == {
        "login_per_minute": 20, "login_per_address_per_minute": 60, "login_lockout_failures": 5,
        "login_lockout_s": 30, "submissions_per_minute": 120, "anonymous_per_minute": 1200,
        "spectator_sockets": 2000, "spectator_sockets_per_address": 200,
        "judge_sockets_per_judge": 4, "connections_per_address": 500, "anonymous_idle_s": 20}
    assert config["server"]["trusted_proxies"] == []
    assert config["database"]["path"] == str(tmp_path / "server5k.db")


def test_shipped_config_yaml_is_valid_and_complete():
    config = config_schema.load_config(config_schema.HERE / "config.yaml")
    text = (config_schema.HERE / "config.yaml").read_text()
    for section, keys in config_schema.CONFIG_SCHEMA.items():
        for key in keys:
            assert key + ":" in text, "config.yaml does not document %s.%s" % (section, key)
            assert config[section][key] is not None or keys[key].default is None


@pytest.mark.parametrize("text, named", [
    ("servre:\n  port: 1\n", "'servre'"),
    ("server:\n  prot: 1\n", "'server.prot'"),
    ("server:\n  port: '8000'\n", "'server.port'"),
    ("server:\n  port: true\n", "'server.port'"),
    ("limits:\n  login_per_minute: -1\n", "'limits.login_per_minute'"),
    ("auth:\n  rotate_refresh_tokens: 'yes'\n", "'auth.rotate_refresh_tokens'"),
    ("server:\n  cors_origins: '*'\n", "'server.cors_origins'"),
    ("server:\n  trusted_proxies: [nginx]\n", "'server.trusted_proxies'"),
    ("server:\n  trusted_proxies: 10.0.0.1\n", "'server.trusted_proxies'"),
    ("limits:\n  judge_sockets_per_judge: 0\n", "an integer 1-1000"),
    ("limits:\n  login_lockout_s: 0\n", "'limits.login_lockout_s'"),
    ("limits:\n  anonymous_idle_s: 0\n", "'limits.anonymous_idle_s'"),
    ("limits:\n  anonymous_idle_s: 600\n", "'limits.anonymous_idle_s'"),
    ("limits:\n  connections_per_address: -1\n", "'limits.connections_per_address'"),
    ("server: [1, 2]\n", "server must be a mapping"),
    ("server:\n  tls_cert: a.pem\n", "go together"),
    ("server: {port: 1\n", "not valid YAML"),
    ("race:\n  timezone: Mars/Olympus_Mons\n", "'race.timezone' must be an IANA time zone"),
    ("race:\n  timezone: ../../etc/passwd\n", "'race.timezone'"),
    ("race:\n  timezone: 1\n", "'race.timezone'"),
    ("server:\n  public_url: 192.168.1.10:8000\n", "'server.public_url' must be the address"),
    ("server:\n  public_url: ftp://192.168.1.10\n", "'server.public_url'"),
    ("server:\n  public_url: http://host/resultados\n", "'server.public_url'"),
])
def test_bad_config_is_refused_naming_the_key(tmp_path, text, named):
    with pytest.raises(config_schema.ConfigError) as info:
        config_schema.load_config(write(tmp_path, text))
    assert named in str(info.value)


def test_serve_refuses_to_start_on_a_bad_key(tmp_path):
    path = write(tmp_path, "race:\n  max_records: 15\n")
    result = subprocess.run([sys.executable, str(config_schema.HERE / "server5k.py"), "--config",
                             str(path), "serve"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "'race.max_records'" in result.stderr and "Traceback" not in result.stderr


def test_serve_refuses_an_unknown_time_zone_naming_the_key(tmp_path):
    path = write(tmp_path, "race:\n  timezone: Europe/Atlantida\n")
    result = subprocess.run([sys.executable, str(config_schema.HERE / "server5k.py"), "--config",
                             str(path), "serve"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "'race.timezone' must be an IANA time zone name such as Europe/Madrid" in (
        result.stderr) and "Europe/Atlantida" in result.stderr
    assert "Traceback" not in result.stderr


def test_time_zone_and_public_url_when_given(tmp_path):
    config = config_schema.load_config(write(
        tmp_path, "race:\n  timezone: America/Bogota\nserver:\n  public_url: "
                  "http://192.168.1.10:8000/\n"))
    assert config["race"]["timezone"] == "America/Bogota"
    assert config["server"]["public_url"] == "http://192.168.1.10:8000"  # no trailing slash


def test_config_from_environment_variable(tmp_path, monkeypatch):
    path = write(tmp_path, "server:\n  port: 9123\n")
    monkeypatch.setenv("SERVER5K_CONFIG", str(path))
    assert config_schema.load_config()["server"]["port"] == 9123


def test_secret_from_environment(tmp_path, monkeypatch):
    config = config_schema.load_config(write(tmp_path, ""))
    monkeypatch.setenv("SERVER5K_SECRET_KEY", "k" * 40)
    assert config_schema.signing_secret(config) == "k" * 40
    assert not os.path.exists(config["database"]["path"] + ".secret")
    monkeypatch.setenv("SERVER5K_SECRET_KEY", "short")
    with pytest.raises(config_schema.ConfigError):
        config_schema.signing_secret(config)


def test_generated_secret_is_private_and_stable(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("SERVER5K_SECRET_KEY", raising=False)
    config = config_schema.load_config(write(tmp_path, ""))
    first = config_schema.signing_secret(config)
    path = config["database"]["path"] + ".secret"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert config_schema.signing_secret(config) == first and len(first) >= 32
    assert "SERVER5K_SECRET_KEY is not set" in caplog.text
    assert first not in caplog.text


def test_relative_paths_follow_the_config_file(tmp_path):
    (tmp_path / "sub").mkdir()
    path = write(tmp_path / "sub", "database:\n  path: data/race.db\n")
    assert config_schema.load_config(path)["database"]["path"] == str(tmp_path / "sub/data/race.db")
