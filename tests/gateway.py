"""nginx in front of the service's instances, with the project's own gateway configuration."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import requests

from tests.processes import ROOT, free_port

CONF = ROOT / "deploy" / "nginx" / "scoreboard.conf"


def render(web_ports: list[int], stream_ports: list[int], listen: int, log_dir: str) -> str:
    """The project's gateway configuration with these instances, this port and its access
    log in ``log_dir``."""
    text = CONF.read_text()

    def servers(ports):
        return "".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;\n" for p in ports)

    for name, ports in (("scoreboard_web", web_ports), ("scoreboard_stream", stream_ports)):
        text = re.sub(rf"(upstream {name} \{{\n    least_conn;\n)(?:    server .*\n)+", rf"\g<1>{servers(ports)}",
                      text)
    text = re.sub(r"access_log \S+ ", f"access_log {log_dir}/access.log ", text)
    return re.sub(r"listen \d+;", f"listen 127.0.0.1:{listen};", text)


class Gateway:
    """An nginx master of the test's own, stopped by its PID."""

    def __init__(self, web_ports: list[int], stream_ports: list[int]):
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        assert os.path.exists(binary), "nginx is needed (Debian package nginx; .ci/run installs it)"
        self.dir = tempfile.mkdtemp(prefix="sb-nginx-")
        os.chmod(self.dir, 0o777)
        self.port = free_port()
        Path(self.dir, "scoreboard.conf").write_text(render(web_ports, stream_ports, self.port, self.dir))
        temp = " ".join(f"{kind}_temp_path {self.dir}/{kind};" for kind in ("client_body", "proxy", "fastcgi",
                                                                            "uwsgi", "scgi"))
        Path(self.dir, "nginx.conf").write_text(
            f"daemon off; worker_processes 1; pid {self.dir}/nginx.pid; error_log {self.dir}/error.log warn;\n"
            "events { worker_connections 8192; }\n"
            f"http {{ access_log off; {temp} include {self.dir}/scoreboard.conf; }}\n"
        )
        self.proc = subprocess.Popen([binary, "-p", self.dir, "-c", f"{self.dir}/nginx.conf"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                requests.get(self.base + "/healthz", timeout=1)
                return
            except requests.ConnectionError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"nginx exited: {self.proc.stderr.read().decode()}")
                time.sleep(0.05)
        raise RuntimeError("nginx did not start")

    def access_lines(self) -> list[dict]:
        """The JSON lines of the gateway's access log so far."""
        path = Path(self.dir, "access.log")
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def close(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)
