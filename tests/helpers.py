"""Running the real server and the real command line as subprocesses, as an organizer would."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SERVER5K = str(ROOT / "server5k.py")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(tmp_path, **sections):
    config = {"server": {"host": "127.0.0.1", "port": free_port()},
              "database": {"path": str(tmp_path / "event.db")}}
    for section, values in sections.items():
        config.setdefault(section, {}).update(values)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, config


def cli(config_path, *args, env=None, check=True, input=None):
    """Run ``python server5k.py --config FILE ARGS``; returns the CompletedProcess."""
    full_env = dict(os.environ, **(env or {}))
    result = subprocess.run([sys.executable, SERVER5K, "--config", str(config_path), *args],
                            capture_output=True, text=True, env=full_env, timeout=60,
                            input=input)
    if check and result.returncode != 0:
        raise AssertionError("server5k %s failed (%d): %s" % (
            " ".join(args), result.returncode, result.stderr))
    return result


class ServerProcess:
    """``python server5k.py serve`` in the background, waited for until it answers."""

    def __init__(self, config_path, port, *extra, env=None, log_path=None):
        self.port = port
        self.url = "http://127.0.0.1:%d" % port
        self.log_path = log_path or Path(config_path).with_suffix(".log")
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, SERVER5K, "--config", str(config_path), "serve", *extra],
            stdout=self._log, stderr=subprocess.STDOUT, env=dict(os.environ, **(env or {})))
        self.wait_ready()

    def wait_ready(self, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError("server exited: %s" % self.output())
            try:
                urllib.request.urlopen(self.url + "/api/competencias/1/", timeout=1)
                return
            except urllib.error.HTTPError:
                return  # it answered
            except OSError:
                time.sleep(0.05)
        raise AssertionError("server did not answer: %s" % self.output())

    def output(self):
        self._log.flush()
        return Path(self.log_path).read_text()

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode
