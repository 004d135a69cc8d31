"""A client of the contract, as a web or mobile client would write it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
from datetime import datetime, timezone
import time

import requests

from scoreboard.boards import DEFAULT_BOARDS, period_at

_names = itertools.count()


def sign(secret: str, token: str, delta: int, completed_at: int) -> str:
    key = base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))
    return hmac.new(key, f"{token}.{delta}.{completed_at}".encode(), hashlib.sha256).hexdigest()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Player:
    """One registered, logged-in user."""

    def __init__(self, base: str, username: str | None = None, password: str = "correct horse battery"):
        self.base = base
        self.http = requests.Session()
        self.username = username or f"p{time.time_ns() % 10**9}_{next(_names)}"
        self.password = password
        r = self.http.post(f"{base}/api/auth/register", json={"username": self.username, "password": password})
        assert r.status_code == 201, r.text
        self.id = r.json()["id"]
        self.login()

    @classmethod
    def registered(cls, base: str, username: str, password: str) -> "Player":
        """The player of an account registered already (logged in)."""
        player = cls.__new__(cls)
        player.base, player.http, player.username, player.password = base, requests.Session(), username, password
        player.login()
        player.id = player.http.get(f"{base}/api/users/me").json()["id"]
        return player

    def login(self) -> None:
        r = self.http.post(f"{self.base}/api/auth/login", json={"username": self.username, "password": self.password})
        assert r.status_code == 200, r.text
        self.tokens = r.json()
        self.http.headers["Authorization"] = f"Bearer {self.tokens['access_token']}"

    def start(self, action_type: str = "tap") -> dict:
        r = self.http.post(f"{self.base}/api/actions", json={"action_type": action_type})
        assert r.status_code == 201, r.text
        return r.json()

    def body(self, action: dict, delta: int, completed_at: int | None = None, signature: str | None = None) -> dict:
        completed_at = now_ms() if completed_at is None else completed_at
        return {
            "action_token": action["action_token"],
            "score_delta": delta,
            "completed_at": completed_at,
            "signature": signature or sign(action["secret"], action["action_token"], delta, completed_at),
        }

    def submit(self, action: dict, delta: int, wait: float | None = None, **kw) -> requests.Response:
        headers = {"Prefer": f"wait={wait}"} if wait else {}
        return self.http.post(f"{self.base}/api/score/update", json=self.body(action, delta, **kw), headers=headers)

    def earn(self, delta: int, action_type: str = "tap", wait: float = 10) -> dict:
        """Start an action, submit it, and wait until it is applied."""
        r = self.submit(self.start(action_type), delta, wait=wait)
        assert r.status_code in (200, 202), r.text
        if r.status_code == 202:
            return wait_applied(self, r.json()["job_id"])
        return r.json()

    def job(self, job_id: str) -> requests.Response:
        return self.http.get(f"{self.base}/api/score/jobs/{job_id}")


def first_places(score: int) -> dict:
    """The ``boards`` of a first submission on the default boards (all-time, daily, weekly):
    rank 1 everywhere, no previous rank, the periods of now."""
    now = datetime.now(timezone.utc)
    return {board.id: {"period": period_at(board, now).key, "score": score, "rank": 1, "previous_rank": None}
            for board in DEFAULT_BOARDS}


def wait_applied(player: Player, job_id: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = player.job(job_id).json()
        if body["state"] != "queued":
            return body
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still queued after {timeout}s")
