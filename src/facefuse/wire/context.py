"""What the routes share: the core objects of the HTTP process and its work pool."""

from __future__ import annotations

from dataclasses import dataclass, field

from facefuse import worker
from facefuse.keys.limits import UsageLimiter
from facefuse.keys.store import KeyStore
from facefuse.media.limits import FetchLimits, ImageLimits
from facefuse.settings import Settings
from facefuse.storage.blobs import BlobStore, open_blob_store
from facefuse.storage.database import Database, open_database
from facefuse.storage.results import ResultStore
from facefuse.templates.preview import ThumbnailCache
from facefuse.templates.registry import TemplateRegistry
from facefuse.wire.dbcalls import DatabaseCalls
from facefuse.workpool import WorkPool


@dataclass
class AppContext:
    settings: Settings
    db: Database
    blobs: BlobStore
    registry: TemplateRegistry
    keys: KeyStore
    limiter: UsageLimiter
    db_calls: DatabaseCalls  # where key checks and limits run: the event loop or a few threads
    results: ResultStore
    pool: WorkPool  # work processes: fusion and template analysis run there
    image_limits: ImageLimits
    fetch_limits: FetchLimits
    thumbnails: ThumbnailCache = field(default_factory=ThumbnailCache)
    ready: bool = field(default=False)

    @classmethod
    def open(cls, settings: Settings) -> "AppContext":
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = open_database(settings.database_url, settings.db_path)
        blobs = open_blob_store(settings.storage_url, settings.data_dir, settings.s3_endpoint_url)
        image_limits = ImageLimits.from_settings(settings)
        registry = TemplateRegistry(db, blobs, image_limits)
        return cls(
            settings=settings,
            db=db,
            blobs=blobs,
            registry=registry,
            keys=KeyStore(db),
            limiter=UsageLimiter(db),
            db_calls=DatabaseCalls(db, settings.database_threads),
            results=ResultStore(db, blobs, settings.result_ttl_seconds),
            pool=WorkPool(
                settings.workers,
                settings.queue_size,
                settings.request_deadline,
                initializer=worker.start,
                initargs=(settings,),
                pin_to_cores=settings.pin_workers,
            ),
            image_limits=image_limits,
            fetch_limits=FetchLimits.from_settings(settings),
        )
