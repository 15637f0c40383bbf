"""What a work process runs: fusion and template analysis, on models loaded once per process.

The HTTP process hands CPU-bound jobs to these processes (`facefuse.workpool.WorkPool`):
each one runs one job at a time on its own interpreter, so N processes use N cores and the
event loop never waits for the GIL behind a fusion. Every function here is called by name
in a work process; arguments and results cross a pipe, so they are plain data.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np

from facefuse import parallel
from facefuse.errors import Err, FacefuseError
from facefuse.media.limits import ImageLimits
from facefuse.service import FuseJob, FuseService, UserPhoto
from facefuse.settings import Settings
from facefuse.storage.blobs import open_blob_store
from facefuse.storage.database import open_database
from facefuse.templates.preview import make_thumbnail, template_view
from facefuse.templates.registry import DEMO_TEMPLATE_ID, TemplateRegistry, demo_photo
from facefuse.vision.detect import detect_faces
from facefuse.workpool import PoolLoad, freeze_startup_objects, tune_for_compute

_PARENT_CHECK_SECONDS = 1.0

_service: FuseService | None = None
_registry: TemplateRegistry | None = None
_settled = False  # start-up objects left out of garbage collection (after the first fusion)


def start(settings: Settings, load: PoolLoad | None = None) -> None:
    """Process initializer: tuned for compute, opens the data dir, exits with its parent.
    With the pool's `load`, a lone job's pieces may take a spare core (facefuse.parallel)."""
    global _service, _registry
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the server, which stops us
    tune_for_compute()
    if settings.spare_cores and load is not None:
        parallel.use_spare_cores(load.spare, set(load.cores))
    _registry = TemplateRegistry(
        open_database(settings.database_url, settings.db_path),
        open_blob_store(settings.storage_url, settings.data_dir, settings.s3_endpoint_url),
        ImageLimits.from_settings(settings),
        result_quality=settings.jpeg_quality,
    )
    _service = FuseService(settings, _registry)
    parent = os.getppid()
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


def warm_up() -> int:
    """Get a fresh work process ready for traffic (the pool runs this once in each, before
    /readyz answers): load the models, run every step of one fusion, and load the newest
    templates. Its first request would otherwise pay for the face-mesh graphs' set-up, the
    first calls into the codecs and the template's decode and analysis."""
    service, registry = _ready_service(), _ready_registry()
    detect_faces(np.zeros((128, 128, 3), np.uint8))  # loads the whole-image fallback's graph
    on_demo = registry.get(DEMO_TEMPLATE_ID) is not None
    try:
        demo = demo_photo()
        service.fuse_to_jpeg(
            FuseJob(
                users=[UserPhoto(demo)],
                template_id=DEMO_TEMPLATE_ID if on_demo else None,
                template_photo=None if on_demo else demo,
            )
        )
    except (FacefuseError, OSError):
        pass  # image rules that refuse the demo photo, or no photo: the first request pays instead
    for info in registry.newest(service.settings.preload_templates):
        try:
            registry.load(info.template_id)
        except (FacefuseError, OSError):
            pass  # removed meanwhile or unreadable: its request will say so
    _settle()
    return os.getpid()


def template_cache() -> dict[str, int]:
    """This process's loaded-template cache: templates, bytes, hits, misses."""
    return _ready_registry().cache_stats()


def fuse(job: FuseJob) -> bytes:
    """The fused JPEG as bytes: a third smaller on the pipe than its base64 text, which the
    HTTP process makes."""
    try:
        return _ready_service().fuse_to_jpeg(job)
    finally:
        if not _settled:  # a process started to replace one that died: not warmed up
            _settle()


def _settle() -> None:
    """Once the models are loaded: start-up objects out of garbage collection."""
    global _settled
    freeze_startup_objects()
    _settled = True


def add_template(
    photo: bytes, template_id: str | None, name: str | None, fuse_degree: int | None, shape_degree: int | None
) -> dict[str, object]:
    """Analyse and store a template photo (faces found here, the rows and files written here)."""
    registry = _ready_registry()
    info = registry.add(photo, template_id=template_id, name=name, fuse_degree=fuse_degree, shape_degree=shape_degree)
    return template_view(registry, info)


def template_thumbnail(template_id: str) -> bytes:
    """The template's photo shrunk to a thumbnail; decoded only, so that a gallery does not fill
    the loaded-template cache that fusions need."""
    registry = _ready_registry()
    info = registry.get(template_id)
    if info is None:
        raise FacefuseError(Err.TEMPLATE_NOT_FOUND, f"no template {template_id[:64]!r}")
    return make_thumbnail(registry.image(info))


def _ready_service() -> FuseService:
    assert _service is not None, "worker.start() was not called"
    return _service


def _ready_registry() -> TemplateRegistry:
    assert _registry is not None, "worker.start() was not called"
    return _registry


def _exit_with_parent(parent: int) -> None:
    """A server killed with -9 cannot stop its work processes: they notice and leave."""
    while os.getppid() == parent:
        time.sleep(_PARENT_CHECK_SECONDS)
    os._exit(0)
