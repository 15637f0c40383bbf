"""kill -9 at random moments while templates are registered and photos fused: nothing lost.

Under load (one thread registering templates through the admin API, one fusing with
result links and a key whose quota counter is written on every request, one creating
keys with `facefuse keys create` beside the server), the server
is killed with SIGKILL at a random moment, then the data dir is checked (SQLite
integrity; every template row has its complete photo; every result row whose token
was answered has its complete JPEG; no half-written file under a final name) and the
server restarted:
every template, result link and key acknowledged is there, and the key's quota counter
has counted at least every request it answered.

FACEFUSE_CRASH_ROUNDS sets the number of kills (CI: 3; the full run: 20):

    FACEFUSE_CRASH_ROUNDS=20 .venv/bin/python -m pytest -q -s tests/test_durability.py
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import signal
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from conftest import RunningServer, start_server, stop_server
from PIL import Image
from test_api import b64, fuse_body

from facefuse.client import media_item
from facefuse.storage.files import is_temp_file

ROUNDS = int(os.environ.get("FACEFUSE_CRASH_ROUNDS", "3"))
TEMPLATE_PHOTO = "deepface__img29.jpg"
SELFIE = "face_recognition__examples_obama.jpg"


def register_until_killed(server: RunningServer, prefix: str, acknowledged: list[str], stop: threading.Event) -> None:
    """Registers templates one after the other; records those the server answered 200 to."""
    from conftest import face

    body_photo = media_item(face(TEMPLATE_PHOTO))
    number = 0
    with httpx.Client(base_url=server.base_url, trust_env=False, timeout=30) as client:
        while not stop.is_set():
            template_id = f"{prefix}{number:04d}".ljust(16, "0")
            number += 1
            try:
                answer = client.post(
                    "/v3/templates",
                    params=server.auth,
                    json={"media_info_list": [body_photo], "parameter": {"template_id": template_id}},
                )
            except httpx.HTTPError:
                return  # the server died mid-request: that registration may or may not exist
            if answer.status_code == 200:
                acknowledged.append(template_id)


@dataclass
class Fused:
    """What the fusing thread was told: answers by its counted key, and result links."""

    auth: dict[str, str]
    answered: int = 0
    links: list[str] = field(default_factory=list)


def fuse_until_killed(server: RunningServer, fused: Fused, stop: threading.Event) -> None:
    body = fuse_body(b64(SELFIE), rsp="url")
    with httpx.Client(base_url=server.base_url, trust_env=False, timeout=30) as client:
        while not stop.is_set():
            try:
                answer = client.post("/v3/facefuse", params=fused.auth, json=body)
            except httpx.HTTPError:
                return
            fused.answered += 1
            if answer.status_code == 200:
                fused.links.append(answer.json()["media_info_list"][0]["media_data"].rsplit("/", 1)[1])


def create_keys_until_stopped(server: RunningServer, created: list[dict[str, str]], stop: threading.Event) -> None:
    """`facefuse keys create` beside the loaded server; a key whose secret was printed must never be lost."""
    while not stop.is_set():
        done = server.cli("keys", "create", "--name", "during-load", "--json", check=False)
        if done.returncode == 0:
            key = json.loads(done.stdout)
            created.append({"api_key": key["api_key"], "api_secret": key["api_secret"]})


def check_consistent(data_dir: Path, answered_links: list[str]) -> set[str]:
    """Nothing half-written: the database is sound and every file under a final name is whole.

    A result's row and its JPEG are stored side by side, so a kill may leave a row without
    its JPEG; its token was never answered (it reads as unknown and expires), so only the
    rows of answered tokens must have theirs. Answers the tokens left without one.
    """
    db = sqlite3.connect(data_dir / "facefuse.sqlite3")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = {(tid, rev) for tid, rev in db.execute("SELECT template_id, revision FROM templates")}
    photos = {
        (m.group(1), m.group(2)): p
        for p in (data_dir / "templates").iterdir()
        if (m := re.fullmatch(r"([0-9a-z]+)\.([0-9a-f]+)\.(jpg|png)", p.name))
    }
    assert rows <= set(photos), f"rows without their photo: {rows - set(photos)}"
    for path in photos.values():
        assert_whole_image(path)
    tokens = {token for (token,) in db.execute("SELECT token FROM results")}
    answered = {link.removesuffix(".jpg") for link in answered_links}
    assert answered <= tokens, f"answered links without their row: {answered - tokens}"
    without_jpeg = {token for token in tokens if not (data_dir / "results" / f"{token}.jpg").exists()}
    assert not answered & without_jpeg, f"answered links without their JPEG: {answered & without_jpeg}"
    for token in tokens - without_jpeg:
        assert_whole_image(data_dir / "results" / f"{token}.jpg")
    for path in (data_dir / "results").iterdir():
        if not is_temp_file(path):
            assert_whole_image(path)  # an orphan (file written, row not yet) is still whole
    db.close()
    return without_jpeg


def assert_whole_image(path: Path) -> None:
    data = path.read_bytes()
    with Image.open(io.BytesIO(data)) as image:
        image.load()  # raises on a truncated file
    if path.suffix == ".jpg":
        assert data.rstrip(b"\0").endswith(b"\xff\xd9"), f"{path.name} is cut short"


def counted_requests(data_dir: Path, api_key: str) -> int:
    db = sqlite3.connect(data_dir / "facefuse.sqlite3")
    try:
        row = db.execute("SELECT day_count FROM key_usage WHERE api_key = ?", (api_key,)).fetchone()
        return int(row[0]) if row else 0
    finally:
        db.close()


def new_counted_key(server: RunningServer) -> dict[str, str]:
    created = json.loads(
        server.cli("keys", "create", "--name", "counted", "--daily-quota", "100000000", "--json").stdout
    )
    return {"api_key": created["api_key"], "api_secret": created["api_secret"]}


def test_nothing_acknowledged_is_lost_across_kill_9(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = start_server(data_dir)
    key = (server.api_key, server.api_secret)
    fused = Fused(new_counted_key(server))
    acknowledged: list[str] = []
    keys: list[dict[str, str]] = []
    rng = random.Random(20261125)
    day = time.strftime("%Y-%m-%d", time.gmtime())
    cut_off = 0
    try:
        for round_number in range(ROUNDS):
            stop = threading.Event()
            workers = [
                threading.Thread(
                    target=register_until_killed, args=(server, f"crash{round_number:02d}x", acknowledged, stop)
                ),
                threading.Thread(target=fuse_until_killed, args=(server, fused, stop)),
                threading.Thread(target=create_keys_until_stopped, args=(server, keys, stop)),
            ]
            for worker in workers:
                worker.start()
            time.sleep(rng.uniform(0.3, 1.5))
            server.process.send_signal(signal.SIGKILL)
            server.process.wait(timeout=30)
            stop.set()
            for worker in workers:
                worker.join(timeout=60)
            unanswered = check_consistent(data_dir, fused.links)
            if time.strftime("%Y-%m-%d", time.gmtime()) == day:  # the counter restarts at 00:00 UTC
                assert counted_requests(data_dir, fused.auth["api_key"]) >= fused.answered
            server = start_server(data_dir, known_key=key)
            check_acknowledged_survived(server, round_number, acknowledged, fused)
            check_unanswered_unknown(server, unanswered)
            cut_off += len(unanswered)
            check_keys_survived(server, keys)
        print(
            f"\ncrash test: {ROUNDS} kill -9 rounds; {len(acknowledged)} templates, {len(fused.links)} result "
            f"links and {len(keys)} keys acknowledged, none lost; {fused.answered} answered requests all counted; "
            f"{cut_off} unanswered results cut off before their JPEG read as unknown"
        )
        assert acknowledged, "no registration finished before the kills; the test proved nothing"
    finally:
        stop_server(server)


def check_unanswered_unknown(server: RunningServer, tokens: set[str]) -> None:
    """A row whose JPEG the kill cut off reads as an unknown link, never as a broken image."""
    with server.client() as client:
        for token in tokens:
            answer = client.get(f"/v3/results/{token}.jpg")
            assert answer.status_code == 404 and answer.json()["ErrorCode"] == 10104, answer.text


def check_keys_survived(server: RunningServer, keys: list[dict[str, str]]) -> None:
    with server.client() as client:
        for key in keys:
            answer = client.post("/v3/facefuse", params=key, json={})
            assert answer.json()["ErrorCode"] == 10002, f"key {key['api_key']} lost: {answer.text}"


def check_acknowledged_survived(
    server: RunningServer, round_number: int, acknowledged: list[str], fused: Fused
) -> None:
    with server.client() as client:
        listed = {t["template_id"] for t in client.get("/v3/templates", params=server.auth).json()["templates"]}
        missing = [t for t in acknowledged if t not in listed]
        assert not missing, f"round {round_number}: acknowledged but lost: {missing}"
        for token in fused.links:
            link = client.get(f"/v3/results/{token}")
            assert link.status_code == 200 and link.content.endswith(b"\xff\xd9"), f"result {token} lost"
        if acknowledged:
            answer = client.post(
                "/v3/facefuse", params=server.auth, json=fuse_body(b64(SELFIE), template=acknowledged[-1])
            )
            assert answer.status_code == 200, answer.text
