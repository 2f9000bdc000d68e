"""How `serve` listens: a deep accept queue for a venue's phones reconnecting together."""

import shutil
import subprocess

import pytest

import server5k


def test_listen_backlog_is_deep(spawn, tmp_path):
    ss = shutil.which("ss")
    if ss is None:
        pytest.skip("the ss tool (iproute2) is not installed: cannot read the listen backlog")
    server = spawn(tmp_path / "event.db").start()
    out = subprocess.run([ss, "-ltnH", "sport = :%d" % server.port], capture_output=True,
                         text=True, timeout=10).stdout.split()
    # ss shows a listening socket's backlog as its Send-Q (the third column).
    assert int(out[2]) == server5k.LISTEN_BACKLOG > 128, out
