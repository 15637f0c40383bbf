"""The template library on real SQLite, real files and real photos; crashes by SIGKILL."""

from __future__ import annotations

import io
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import Backend, face
from PIL import Image

from facefuse.errors import Err, FacefuseError
from facefuse.storage.blobs import LocalBlobStore
from facefuse.storage.db import SqliteDatabase
from facefuse.templates import registry as registry_module
from facefuse.templates.registry import DEMO_TEMPLATE_ID, TemplateInfo, TemplateRegistry

FRONTAL = "deepface__img5.jpg"  # 330x512, one face
SMALL_FRONTAL = "insightface__bulk_Rob_Lowe_0001.jpg"  # 250x250, one face
TWO_PEOPLE = "face_recognition__examples_two_people.jpg"  # 1126x661, two faces
NO_FACE = "insightface__crop_no_face.png"
WEBP_NAMED_JPG = "deepface__img47.jpg"


def photo(name: str) -> bytes:
    return face(name).read_bytes()


def open_registry(data_dir: Path) -> TemplateRegistry:
    return TemplateRegistry(SqliteDatabase(data_dir / "facefuse.sqlite3"), LocalBlobStore(data_dir))


def open_on(backend: Backend) -> TemplateRegistry:
    """A registry on the backend with its own connections, as another process or node has."""
    return TemplateRegistry(backend.open_db(), backend.blobs)


@pytest.fixture
def registry(backend: Backend) -> TemplateRegistry:
    opened = open_on(backend)
    yield opened
    opened.db.close()


def error_of(call) -> Err:
    with pytest.raises(FacefuseError) as caught:
        call()
    return caught.value.error


def stored_files(registry: TemplateRegistry) -> set[str]:
    return {blob.name.removeprefix("templates/") for blob in registry.blobs.list("templates")}


def assert_consistent(registry: TemplateRegistry) -> list[TemplateInfo]:
    """Every listed template loads, and every file in the folder belongs to one."""
    listed = registry.list()
    for info in listed:
        loaded = registry.load(info.template_id)
        assert loaded.image.shape == (info.height, info.width, 3)
        assert len(loaded.faces) == info.faces >= 1
    assert stored_files(registry) == {info.file_name for info in listed}
    if registry.db.kind == "sqlite":
        assert registry.db.query_one("PRAGMA integrity_check")[0] == "ok"
    return listed


# ------------------------------------------------------------------ adding


def test_add_a_frontal_photo(registry: TemplateRegistry) -> None:
    info = registry.add(photo(FRONTAL), name="angelina", fuse_degree=80)
    assert len(info.template_id) == 19 and info.template_id.isalnum() and info.template_id.islower()
    assert (info.name, info.faces, info.width, info.height, info.format) == ("angelina", 1, 330, 512, "jpeg")
    assert info.fuse_degree == 80 and info.shape_degree is None
    assert set(info.to_dict()) == {"template_id", "name", "faces", "width", "height", "created_at"}
    assert registry.get(info.template_id) == info
    assert registry.blobs.get(info.blob_name) == photo(FRONTAL)
    assert info.file_name.endswith(".jpg")


def test_add_a_group_photo_keeps_faces_left_to_right(registry: TemplateRegistry) -> None:
    info = registry.add(photo(TWO_PEOPLE), template_id="twopeople0000001")
    loaded = registry.load("twopeople0000001")
    assert info.faces == 2
    assert loaded.faces[0].center[0] < loaded.faces[1].center[0]
    assert loaded.faces[0].landmarks.shape == (478, 3)


def test_size_is_the_upright_size_after_exif_orientation(registry: TemplateRegistry) -> None:
    upright = Image.open(face(FRONTAL))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: turn 90 degrees clockwise to show
    stored = io.BytesIO()
    upright.transpose(Image.Transpose.ROTATE_90).save(stored, "JPEG", quality=90, exif=exif)
    info = registry.add(stored.getvalue())
    assert (info.width, info.height, info.faces) == (330, 512, 1)
    assert registry.load(info.template_id).image.shape == (512, 330, 3)


def test_photo_without_a_face_is_refused_and_nothing_stored(registry: TemplateRegistry) -> None:
    assert error_of(lambda: registry.add(photo(NO_FACE), template_id="nofacetemplate01")) is Err.MODEL_PHOTO_NO_FACE
    assert registry.list() == [] and stored_files(registry) == set()


def test_photo_breaking_the_image_rules_is_refused(registry: TemplateRegistry) -> None:
    assert error_of(lambda: registry.add(photo(WEBP_NAMED_JPG))) is Err.UNSUPPORTED_IMAGE_FORMAT
    assert error_of(lambda: registry.add(b"not an image at all")) is Err.UNSUPPORTED_IMAGE_FORMAT
    assert registry.list() == [] and stored_files(registry) == set()


def test_duplicate_id_is_refused(registry: TemplateRegistry) -> None:
    registry.add(photo(FRONTAL), template_id="sametemplate0001")
    assert error_of(lambda: registry.add(photo(SMALL_FRONTAL), template_id="sametemplate0001")) is (
        Err.INVALID_PARAMETER
    )
    with pytest.raises(FacefuseError, match="already exists"):
        registry.add(photo(SMALL_FRONTAL), template_id="sametemplate0001")
    assert [t.width for t in registry.list()] == [330]


@pytest.mark.parametrize(
    "bad_id",
    [
        "short",
        "a" * 15,
        "a" * 20,
        "UPPERCASE0000000",
        "with-dash0000000",
        "../../etc/passwd",
        "abcdefghijklmnop\n",
        "abcdefghijklmnop/",
        "",
        "ａbcdefghijklmnop",
    ],
)
def test_malformed_id_is_refused(registry: TemplateRegistry, bad_id: str) -> None:
    assert error_of(lambda: registry.add(photo(FRONTAL), template_id=bad_id)) is Err.INVALID_PARAMETER
    assert registry.get(bad_id) is None
    assert registry.list() == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fuse_degree": 101},
        {"fuse_degree": -1},
        {"shape_degree": 50.5},
        {"shape_degree": True},
        {"name": "x" * 201},
        {"name": "line\nbreak"},
    ],
)
def test_bad_options_are_refused(registry: TemplateRegistry, kwargs: dict) -> None:
    assert error_of(lambda: registry.add(photo(FRONTAL), **kwargs)) is Err.INVALID_PARAMETER


# ------------------------------------------------------------------ loading


def test_load_decodes_and_analyses_once(registry: TemplateRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    info = registry.add(photo(FRONTAL), template_id="cachedtemplate01")

    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("recomputed although cached")

    monkeypatch.setattr(registry_module, "detect_faces", must_not_run)  # analysis is never redone
    first = registry.load(info.template_id)
    monkeypatch.setattr(registry_module, "decode_image", must_not_run)
    second = registry.load(info.template_id)
    assert second is first
    assert registry.cache_stats()["hits"] == 1 and registry.cache_stats()["misses"] == 1
    assert first.image.shape == (512, 330, 3) and first.image.dtype == np.uint8
    assert not first.image.flags.writeable  # shared by every request
    assert not first.faces[0].landmarks.flags.writeable
    assert len(first.prepared) == len(first.faces) and not first.prepared[0].patch.flags.writeable
    assert first.info == info


@pytest.mark.parametrize("template_photo, users", [(FRONTAL, [SMALL_FRONTAL]), (TWO_PEOPLE, [FRONTAL, SMALL_FRONTAL])])
def test_results_of_a_kept_template_re_encode_only_the_face_rows(
    tmp_path: Path, template_photo: str, users: list[str]
) -> None:
    """A registry that keeps templates encoded gives the pixels of a full encode (the
    visible AI label's tiles re-encoded too)."""
    from facefuse.media.decode import decode_image
    from facefuse.media.encode import encode_jpeg
    from facefuse.media.mark import draw_mark
    from facefuse.service import FuseJob, FuseService, UserPhoto
    from facefuse.settings import Settings

    registry = TemplateRegistry(
        SqliteDatabase(tmp_path / "facefuse.sqlite3"), LocalBlobStore(tmp_path), result_quality=95
    )
    template_id = registry.add(photo(template_photo)).template_id
    assert registry.load(template_id).encoded is not None
    service = FuseService(Settings(data_dir=tmp_path), registry)
    job = FuseJob(users=[UserPhoto(photo(name)) for name in users], template_id=template_id)
    fast = decode_image(service.fuse_to_jpeg(job))
    fused = service.fuse(job)
    draw_mark(fused, service.labeller.style)
    full = decode_image(encode_jpeg(fused, 95))
    assert np.array_equal(fast, full)
    assert np.abs(fast.astype(int) - registry.load(template_id).image).max() > 50  # a face went in
    registry.db.close()


def test_load_of_unknown_template_is_template_not_found(registry: TemplateRegistry) -> None:
    assert error_of(lambda: registry.load("nosuchtemplate0000")) is Err.TEMPLATE_NOT_FOUND
    assert error_of(lambda: registry.load("../../etc/passwd")) is Err.TEMPLATE_NOT_FOUND


def test_cache_is_bounded(tmp_path: Path) -> None:
    registry = TemplateRegistry(SqliteDatabase(tmp_path / "db.sqlite3"), LocalBlobStore(tmp_path), cache_templates=2)
    ids = [registry.add(photo(SMALL_FRONTAL)).template_id for _ in range(3)]
    for template_id in ids:
        registry.load(template_id)
    assert registry.cache_stats()["templates"] == 2
    loaded = registry.load(ids[-1])
    prepared_bytes = sum(p.nbytes for p in loaded.prepared)
    patch_bytes = sum(p.patch.nbytes for p in loaded.prepared)
    # The face crops count too, with their canvas planes (skin likelihood, what stays in
    # front: a float per canvas pixel each, at most one canvas pixel per crop pixel) and landmarks.
    assert 0 < patch_bytes < prepared_bytes <= patch_bytes * (1 + 2 * 4 / 3) + 20_000
    assert loaded.photo == photo(SMALL_FRONTAL)  # kept for a result's signed provenance, and counted
    assert registry.cache_stats()["bytes"] == 2 * (250 * 250 * 3 + prepared_bytes + len(loaded.photo))


def test_remove_and_add_again_under_the_same_id(registry: TemplateRegistry) -> None:
    registry.add(photo(FRONTAL), template_id="reusedtemplate01")
    assert registry.load("reusedtemplate01").image.shape == (512, 330, 3)
    assert registry.remove("reusedtemplate01") is True
    assert registry.remove("reusedtemplate01") is False
    assert stored_files(registry) == set()
    assert error_of(lambda: registry.load("reusedtemplate01")) is Err.TEMPLATE_NOT_FOUND
    registry.add(photo(SMALL_FRONTAL), template_id="reusedtemplate01")
    assert registry.load("reusedtemplate01").image.shape == (250, 250, 3)  # not the cached old one


def test_another_process_sees_adds_and_removes_at_once(registry: TemplateRegistry, backend: Backend) -> None:
    server_side = registry
    server_side.load(server_side.ensure_demo().template_id)
    cli_side = open_on(backend)  # its own connections, as `facefuse templates add` or another node has
    cli_side.add(photo(FRONTAL), template_id="fromthecli000001")
    assert server_side.load("fromthecli000001").info.width == 330
    cli_side.remove(DEMO_TEMPLATE_ID)
    assert error_of(lambda: server_side.load(DEMO_TEMPLATE_ID)) is Err.TEMPLATE_NOT_FOUND


def test_demo_template(registry: TemplateRegistry) -> None:
    demo = registry.ensure_demo()
    assert (demo.template_id, demo.name, demo.faces, demo.width, demo.height) == (DEMO_TEMPLATE_ID, "demo", 1, 512, 600)
    assert registry.ensure_demo() == demo  # not added twice
    assert len(registry.list()) == 1
    assert registry.load(DEMO_TEMPLATE_ID).faces[0].size > 100


def test_orphans_are_cleaned_when_a_registry_opens(registry: TemplateRegistry, backend: Backend) -> None:
    kept = registry.add(photo(SMALL_FRONTAL))
    backend.blobs.put("templates/orphantemplate0001.0123456789abcdef.jpg", b"x")
    backend.blobs.put("templates/.orphantemplate0002.0123456789abcdef.jpg.k3j4.tmp", b"x")
    reopened = open_on(backend)
    assert stored_files(reopened) == {kept.file_name}
    assert_consistent(reopened)


# ------------------------------------------------------------------ crashes and concurrency

CHILD = """
import json, os, signal, sys
from contextlib import contextmanager
from pathlib import Path
from facefuse.storage import files
from facefuse.storage.blobs import LocalBlobStore
from facefuse.storage.db import SqliteDatabase
from facefuse.templates.registry import TemplateRegistry

data_dir, photo_path, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
registry = TemplateRegistry(SqliteDatabase(data_dir / "facefuse.sqlite3"), LocalBlobStore(data_dir))
photo = photo_path.read_bytes()

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

if mode == "loop":  # add until killed, saying which ids are done
    print("ready", flush=True)
    while True:
        print(registry.add(photo).template_id, flush=True)
elif mode == "race":  # add several, and one id every racer wants
    print("ready", flush=True)
    sys.stdin.readline()
    outcome = {"added": [registry.add(photo).template_id for _ in range(6)]}
    try:
        registry.add(photo, template_id="contestedid00001")
        outcome["contested"] = "won"
    except Exception as exc:
        outcome["contested"] = getattr(getattr(exc, "error", None), "name", repr(exc))
    print(json.dumps(outcome), flush=True)
elif mode == "remove_then_die":
    Path.unlink = lambda self, missing_ok=False: die()
    registry.remove(sys.argv[4])
else:  # add, dying at one moment of the write
    if mode == "before_rename":
        files.os.replace = die
    elif mode == "before_dir_fsync":
        files.fsync_dir = die
    elif mode == "before_commit":
        real_transaction = registry.db.transaction
        @contextmanager
        def transaction(*args, **kwargs):
            with real_transaction(*args, **kwargs) as conn:
                yield conn
                die()
        registry.db.transaction = transaction
    registry.add(photo)
print("survived", flush=True)
"""


def run_child(data_dir: Path, mode: str, *extra: str, photo_name: str = SMALL_FRONTAL) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(data_dir), str(face(photo_name)), mode, *extra],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_kill_at_each_step_of_an_add_leaves_all_or_nothing(tmp_path: Path) -> None:
    registry = open_registry(tmp_path)
    before = registry.add(photo(FRONTAL), template_id="survivor00000001")
    for mode, leftover_is_temp in (("before_rename", True), ("before_dir_fsync", False), ("before_commit", False)):
        child = run_child(tmp_path, mode)  # its registry first cleans what the last one left
        assert child.returncode == -signal.SIGKILL, (mode, child.stderr[-2000:])
        leftovers = stored_files(registry) - {before.file_name}
        assert len(leftovers) == 1, mode
        assert leftovers.pop().endswith(".tmp") is leftover_is_temp, mode
        assert [t.template_id for t in registry.list()] == ["survivor00000001"], mode
    assert_consistent(open_registry(tmp_path))


def test_kill_in_the_middle_of_a_remove(tmp_path: Path) -> None:
    registry = open_registry(tmp_path)
    doomed = registry.add(photo(FRONTAL), template_id="doomedtemplate01")
    child = run_child(tmp_path, "remove_then_die", doomed.template_id)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    assert registry.get(doomed.template_id) is None  # the row went first
    assert doomed.file_name in stored_files(registry)
    assert assert_consistent(open_registry(tmp_path)) == []


def test_sigkill_at_random_moments_of_an_add_loop(tmp_path: Path) -> None:
    rng = random.Random(20240501)
    acknowledged: list[str] = []
    for _ in range(4):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(tmp_path), str(face(SMALL_FRONTAL)), "loop"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        for _ in range(rng.randint(2, 5)):
            acknowledged.append(child.stdout.readline().strip())
        time.sleep(rng.uniform(0, 0.03))
        child.send_signal(signal.SIGKILL)
        acknowledged.extend(line.strip() for line in child.stdout.read().splitlines() if line.strip())
        child.wait(timeout=10)
    survivor = open_registry(tmp_path)
    listed = {t.template_id for t in assert_consistent(survivor)}
    assert set(acknowledged) <= listed  # every add that returned was durable
    assert len(listed) >= len(acknowledged) > 0


def test_two_processes_adding_at_once(tmp_path: Path) -> None:
    open_registry(tmp_path).db.close()  # the schema exists; both racers start on equal terms
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(tmp_path), str(face(SMALL_FRONTAL)), "race"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for racer in racers:
        assert racer.stdout is not None and racer.stdout.readline().strip() == "ready"
    for racer in racers:  # go
        assert racer.stdin is not None
        racer.stdin.write("\n")
        racer.stdin.flush()
    outcomes = []
    for racer in racers:
        out, err = racer.communicate(timeout=60)
        assert racer.returncode == 0, err[-2000:]
        outcomes.append(json.loads(out.splitlines()[-2]))
    assert sorted(o["contested"] for o in outcomes) == ["INVALID_PARAMETER", "won"]
    listed = {t.template_id for t in assert_consistent(open_registry(tmp_path))}
    added = {tid for o in outcomes for tid in o["added"]}
    assert len(added) == 12 and listed == added | {"contestedid00001"}


def test_newest_lists_the_templates_added_last_first(registry: TemplateRegistry) -> None:
    first = registry.add(photo(FRONTAL))
    second = registry.add(photo(SMALL_FRONTAL))
    assert [t.template_id for t in registry.newest(5)] == [second.template_id, first.template_id]
    assert [t.template_id for t in registry.newest(1)] == [second.template_id]
    assert registry.newest(0) == []


def test_a_work_process_warms_up_with_a_fusion_and_the_newest_templates_loaded(tmp_path: Path) -> None:
    import asyncio

    from facefuse import worker
    from facefuse.settings import Settings
    from facefuse.workpool import WorkPool

    settings = Settings(data_dir=tmp_path, preload_templates=2)
    registry = open_registry(tmp_path)
    registry.ensure_demo()
    added = [registry.add(photo(name)).template_id for name in (FRONTAL, SMALL_FRONTAL, TWO_PEOPLE)]
    pool = WorkPool(1, 1, deadline=60, initializer=worker.start, initargs=(settings,))
    try:
        pool.warm_up(worker.warm_up)
        warm = asyncio.run(pool.run(worker.template_cache))
        # the demo (the warm-up fusion's template) and the two newest; the oldest is not loaded
        assert warm["templates"] == 3 and warm["misses"] == 3
        asyncio.run(pool.run(worker.fuse, _job(added[-1])))
        assert asyncio.run(pool.run(worker.template_cache))["hits"] == warm["hits"] + 1
        asyncio.run(pool.run(worker.fuse, _job(added[0])))
        assert asyncio.run(pool.run(worker.template_cache))["misses"] == warm["misses"] + 1
    finally:
        pool.shutdown()


def test_a_work_process_leaves_its_start_up_objects_out_of_garbage_collection(tmp_path: Path) -> None:
    """Once its models are loaded: after the warm-up, or after the first fusion of a process
    that replaced one that died (not warmed up)."""
    import asyncio
    import gc
    import os

    from facefuse import worker
    from facefuse.settings import Settings
    from facefuse.workpool import WorkPool

    settings = Settings(data_dir=tmp_path, preload_templates=0)
    registry = open_registry(tmp_path)
    registry.ensure_demo()
    template_id = registry.add(photo(FRONTAL)).template_id
    pool = WorkPool(1, 1, deadline=60, initializer=worker.start, initargs=(settings,))
    try:
        pool.warm_up(worker.warm_up)
        assert asyncio.run(pool.run(gc.get_freeze_count)) > 20_000
        (first,) = pool._processes
        os.kill(asyncio.run(pool.run(os.getpid)), signal.SIGKILL)
        first.process.join(10)  # dead before the next job is given: that one goes to a replacement
        # The replacement, models not loaded: nothing of its own left out (a fresh 3.12
        # interpreter starts with a few hundred objects frozen, 3.11 with none).
        assert asyncio.run(pool.run(gc.get_freeze_count)) < 1_000
        asyncio.run(pool.run(worker.fuse, _job(template_id)))
        assert asyncio.run(pool.run(gc.get_freeze_count)) > 20_000
    finally:
        pool.shutdown()


def _job(template_id: str):
    from facefuse.service import FuseJob, UserPhoto

    return FuseJob(users=[UserPhoto(photo(FRONTAL))], template_id=template_id)
