"""Many clients at once, two real worker processes: every accepted submission applied once."""

import random
import threading

from tests import invariants
from tests.client import Player


def test_many_clients_same_and_different_users(api, db, r, settings):
    players = [Player(api) for _ in range(12)]
    accepted: set[str] = set()
    refused: list[int] = []
    lock = threading.Lock()

    def client(player: Player, rounds: int, seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(rounds):
            action = player.start()
            resp = player.submit(action, rng.randint(1, 50))
            with lock:
                if resp.status_code == 202:
                    accepted.add(action["action_token"])
                else:
                    refused.append(resp.status_code)

    # 3 clients per user for the first 4 users (same user concurrently), 1 for the others
    threads = []
    for i, player in enumerate(players):
        for j in range(3 if i < 4 else 1):
            threads.append(threading.Thread(target=client, args=(player, 15, i * 10 + j)))
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert refused == [], refused
    assert len(accepted) == 15 * (4 * 3 + 8)

    invariants.wait_until_settled(r, settings.redis_prefix)
    invariants.check(db, r, settings.redis_prefix, accepted)
    with db.cursor() as cur:
        cur.execute("SELECT count(DISTINCT submission_id) FROM action_tokens")
        assert cur.fetchone()[0] == len(accepted)
