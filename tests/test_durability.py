"""kill -9 at random moments while templates are registered and photos fused: nothing lost.

FACEFUSE_CRASH_ROUNDS sets the number of kills (CI: 3; the full run: 20).
"""

from __future__ import annotations

import os
import random
import re
import signal
import sqlite3
import threading
import time
from pathlib import Path

import httpx

from conftest import RunningServer, start_server, stop_server
from facefuse.client import media_item
from test_api import b64, fuse_body

ROUNDS = int(os.environ.get("FACEFUSE_CRASH_ROUNDS", "3"))
TEMPLATE_PHOTO = "deepface__img29.jpg"
SELFIE = "face_recognition__examples_obama.jpg"


def register_until_killed(server: RunningServer, prefix: str, acknowledged: list[str],
                          stop: threading.Event) -> None:
    """Registers templates one after the other; records those the server answered 200 to."""
    from conftest import face

    body_photo = media_item(face(TEMPLATE_PHOTO))
    number = 0
    with httpx.Client(base_url=server.base_url, trust_env=False, timeout=30) as client:
        while not stop.is_set():
            template_id = f"{prefix}{number:04d}".ljust(16, "0")
            number += 1
            try:
                answer = client.post("/v3/templates", params=server.auth,
                                     json={"media_info_list": [body_photo], "parameter": {"template_id": template_id}})
            except httpx.HTTPError:
                return  # the server died mid-request: that registration may or may not exist
            if answer.status_code == 200:
                acknowledged.append(template_id)


def fuse_until_killed(server: RunningServer, stop: threading.Event) -> None:
    body = fuse_body(b64(SELFIE), rsp="url")
    with httpx.Client(base_url=server.base_url, trust_env=False, timeout=30) as client:
        while not stop.is_set():
            try:
                client.post("/v3/facefuse", params=server.auth, json=body)
            except httpx.HTTPError:
                return


def check_consistent(data_dir: Path) -> None:
    db = sqlite3.connect(data_dir / "facefuse.sqlite3")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = {(tid, rev) for tid, rev in db.execute("SELECT template_id, revision FROM templates")}
    files = {(m.group(1), m.group(2)) for p in (data_dir / "templates").iterdir()
             if (m := re.fullmatch(r"([0-9a-z]+)\.([0-9a-f]+)\.(jpg|png)", p.name))}
    assert rows <= files, f"rows without their photo: {rows - files}"
    db.close()


def test_nothing_acknowledged_is_lost_across_kill_9(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = start_server(data_dir)
    key = (server.api_key, server.api_secret)
    acknowledged: list[str] = []
    rng = random.Random(20261125)
    try:
        for round_number in range(ROUNDS):
            stop = threading.Event()
            workers = [threading.Thread(target=register_until_killed,
                                        args=(server, f"crash{round_number:02d}x", acknowledged, stop)),
                       threading.Thread(target=fuse_until_killed, args=(server, stop))]
            for worker in workers:
                worker.start()
            time.sleep(rng.uniform(0.3, 1.5))
            server.process.send_signal(signal.SIGKILL)
            server.process.wait(timeout=30)
            stop.set()
            for worker in workers:
                worker.join(timeout=60)
            check_consistent(data_dir)
            server = start_server(data_dir, known_key=key)
            with server.client() as client:
                listed = {t["template_id"] for t in client.get("/v3/templates", params=server.auth).json()["templates"]}
                missing = [t for t in acknowledged if t not in listed]
                assert not missing, f"round {round_number}: acknowledged but lost: {missing}"
                if acknowledged:
                    fused = client.post("/v3/facefuse", params=server.auth,
                                        json=fuse_body(b64(SELFIE), template=acknowledged[-1]))
                    assert fused.status_code == 200, fused.text
        assert acknowledged, "no registration finished before the kills; the test proved nothing"
    finally:
        stop_server(server)
