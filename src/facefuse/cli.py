"""The `facefuse` command line (docs/api.md part C)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click
import pydantic

from facefuse.errors import FacefuseError
from facefuse.settings import Settings


def _settings(ctx: click.Context) -> Settings:
    settings: Settings = ctx.obj["settings"]
    return settings


@click.group()
@click.option(
    "--data-dir", type=click.Path(path_type=Path), default=None, help="Data directory (env FACEFUSE_DATA_DIR)."
)
@click.pass_context
def cli(ctx: click.Context, data_dir: Path | None) -> None:
    """Self-hostable face fusion speaking the MTLab facefuse v3 protocol."""
    if data_dir is not None:
        os.environ["FACEFUSE_DATA_DIR"] = str(data_dir)
    ctx.obj = {"settings": _read_settings()}


def _read_settings() -> Settings:
    """The settings, or the command fails naming each bad FACEFUSE_* variable."""
    try:
        return Settings()
    except pydantic.ValidationError as exc:
        problems = [
            (f"FACEFUSE_{'_'.join(map(str, e['loc'])).upper()}: " if e["loc"] else "")
            + e["msg"].removeprefix("Value error, ")
            for e in exc.errors(include_url=False)
        ]
        raise click.ClickException("; ".join(problems)) from None


def _open_core(settings: Settings) -> Any:
    from facefuse.wire.context import AppContext  # the CLI needs no HTTP, but shares the wiring

    return _or_fail(lambda: AppContext.open(settings))  # the database or object storage may not answer


@cli.command()
@click.option("--host", default=None, help="Address to listen on (env FACEFUSE_HOST, default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (env FACEFUSE_PORT, default 8080).")
@click.option(
    "--workers", type=int, default=None, help="Work processes (env FACEFUSE_WORKERS, default: one per CPU, at most 8)."
)
@click.option(
    "--data-dir",
    "serve_data_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Data directory (env FACEFUSE_DATA_DIR).",
)
@click.pass_context
def serve(
    ctx: click.Context, host: str | None, port: int | None, workers: int | None, serve_data_dir: Path | None
) -> None:
    """Run the service; the first start creates the data dir, the demo template and a key."""
    overrides = {"HOST": host, "PORT": port, "WORKERS": workers, "DATA_DIR": serve_data_dir}
    for name, value in overrides.items():
        if value is not None:
            os.environ[f"FACEFUSE_{name}"] = str(value)
    settings = _read_settings()
    _bootstrap(settings)
    import uvicorn

    click.echo(
        f"facefuse: listening on http://{_url_host(settings.host)}:{settings.port} "
        f"({settings.workers} worker{'s' if settings.workers > 1 else ''})",
        err=True,
    )
    address = f"http://{_url_host(_browsable_host(settings.host))}:{settings.port}"
    click.echo(f"facefuse: open {address}/ in a browser: the console (API docs: {address}/docs)", err=True)
    uvicorn.run(
        "facefuse.wire.app:create_server_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=1,  # one event loop; the fusion runs in settings.workers work processes
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.request_deadline) + 5,
    )


def _bootstrap(settings: Settings) -> None:
    from facefuse.labels import signing_credentials

    try:
        signing_credentials(settings)  # a key that cannot sign stops the start, not the first fusion
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    core = _open_core(settings)
    click.echo(f"facefuse: data dir {settings.data_dir}", err=True)
    if settings.demo_template:
        demo = core.registry.ensure_demo()
        click.echo(f"facefuse: demo template {demo.template_id} ({demo.width}x{demo.height})", err=True)
    first = core.keys.create_first("first key")
    if first is not None:
        key, secret = first
        click.echo("facefuse: created the first API key (admin). The secret is shown only this once:")
        click.echo(f"  api_key={key.api_key}")
        click.echo(f"  api_secret={secret}")
        sys.stdout.flush()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _browsable_host(host: str) -> str:
    """Where a browser on this machine reaches a server listening on `host` (not 0.0.0.0 or ::)."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


# ---------------------------------------------------------------- keys


@cli.group()
def keys() -> None:
    """API keys: create, list, revoke."""


@keys.command("create")
@click.option("--name", required=True)
@click.option("--admin", is_flag=True, help="May use the admin template API.")
@click.option("--qps", type=float, default=None, help="Requests per second allowed for this key.")
@click.option("--daily-quota", type=int, default=None, help="Requests per UTC day allowed for this key.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def keys_create(
    ctx: click.Context, name: str, admin: bool, qps: float | None, daily_quota: int | None, as_json: bool
) -> None:
    """Create a key; its secret is printed once and never again."""
    core = _open_core(_settings(ctx))
    key, secret = core.keys.create(name, admin=admin, qps=qps, daily_quota=daily_quota)
    if as_json:
        click.echo(json.dumps({"api_key": key.api_key, "api_secret": secret}))
    else:
        click.echo(f"api_key={key.api_key}\napi_secret={secret}\n(the secret is not shown again)")


@keys.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def keys_list(ctx: click.Context, as_json: bool) -> None:
    """All keys, without secrets."""
    rows = [k.to_dict() for k in _open_core(_settings(ctx)).keys.list()]
    if as_json:
        click.echo(json.dumps(rows))
        return
    for row in rows:
        state = "revoked" if row["revoked_at"] else "active"
        click.echo(f"{row['api_key']}  {state:7}  admin={row['admin']!s:5}  qps={row['qps']}  {row['name']}")


@keys.command("revoke")
@click.argument("api_key")
@click.pass_context
def keys_revoke(ctx: click.Context, api_key: str) -> None:
    """Revoke a key; requests with it are refused at once."""
    if not _open_core(_settings(ctx)).keys.revoke(api_key):
        raise click.ClickException(f"no active key {api_key}")
    click.echo(f"revoked {api_key}")


# ---------------------------------------------------------------- templates


@cli.group()
def templates() -> None:
    """The template library: add, list, show, remove."""


@templates.command("add")
@click.argument("photo", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--id", "template_id", default=None, help="16-19 lowercase base-36 characters.")
@click.option("--name", default=None)
@click.option("--fuse-degree", type=click.IntRange(0, 100), default=None)
@click.option("--shape-degree", type=click.IntRange(0, 100), default=None)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def templates_add(
    ctx: click.Context,
    photo: Path,
    template_id: str | None,
    name: str | None,
    fuse_degree: int | None,
    shape_degree: int | None,
    as_json: bool,
) -> None:
    """Register PHOTO as a template (analysed once, usable at once by a running server)."""
    core = _open_core(_settings(ctx))
    info = _or_fail(
        lambda: core.registry.add(
            photo.read_bytes(),
            template_id=template_id,
            name=name or photo.stem,
            fuse_degree=fuse_degree,
            shape_degree=shape_degree,
        )
    )
    if as_json:
        click.echo(json.dumps({"template_id": info.template_id, "faces": info.faces}))
    else:
        click.echo(f"{info.template_id}  {info.faces} face(s)  {info.width}x{info.height}  {info.name}")


@templates.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def templates_list(ctx: click.Context, as_json: bool) -> None:
    """All templates."""
    infos = _open_core(_settings(ctx)).registry.list()
    if as_json:
        click.echo(json.dumps([i.to_dict() for i in infos]))
        return
    for info in infos:
        click.echo(
            f"{info.template_id}  {info.faces} face(s)  {info.width}x{info.height}  {info.created_at}  {info.name}"
        )


@templates.command("show")
@click.argument("template_id")
@click.pass_context
def templates_show(ctx: click.Context, template_id: str) -> None:
    """One template as JSON."""
    info = _open_core(_settings(ctx)).registry.get(template_id)
    if info is None:
        raise click.ClickException(f"no template {template_id}")
    click.echo(json.dumps(info.to_dict(), indent=2))


@templates.command("remove")
@click.argument("template_id")
@click.pass_context
def templates_remove(ctx: click.Context, template_id: str) -> None:
    """Delete a template."""
    if not _open_core(_settings(ctx)).registry.remove(template_id):
        raise click.ClickException(f"no template {template_id}")
    click.echo(f"removed {template_id}")


# ---------------------------------------------------------------- fuse


@cli.command()
@click.argument("photos", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--template", "template_id", default=None, help="A registered template id.")
@click.option("--template-photo", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option(
    "-o",
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="Output JPEG (one photo) or folder (several photos or a folder).",
)
@click.option("--fuse-degree", type=click.IntRange(0, 100), default=None)
@click.option("--shape-degree", type=click.IntRange(0, 100), default=None)
@click.option(
    "--ai-label/--no-ai-label",
    default=None,
    help="Draw the visible AI label or not, where FACEFUSE_AI_LABEL allows (default: its default).",
)
@click.pass_context
def fuse(
    ctx: click.Context,
    photos: tuple[Path, ...],
    template_id: str | None,
    template_photo: Path | None,
    out: Path,
    fuse_degree: int | None,
    shape_degree: int | None,
    ai_label: bool | None,
) -> None:
    """Fuse offline: each PHOTO's face into the template; results are labelled as the service's are."""
    from tqdm import tqdm

    from facefuse import parallel
    from facefuse.service import FuseJob, FuseService, UserPhoto

    if (template_id is None) == (template_photo is None):
        raise click.UsageError("give exactly one of --template ID or --template-photo PHOTO")
    inputs = _expand_photos(photos)
    single = len(inputs) == 1 and not photos[0].is_dir() and out.suffix.lower() in (".jpg", ".jpeg")
    if not single:
        out.mkdir(parents=True, exist_ok=True)
    settings = _settings(ctx)
    core = _open_core(settings)
    if settings.demo_template:
        core.registry.ensure_demo()  # offline use on a fresh data dir knows the demo too
    try:
        service = FuseService(settings, core.registry)  # in this process: no server, no work pool
    except ValueError as exc:  # signing credentials that cannot sign
        raise click.ClickException(str(exc)) from None
    if settings.spare_cores:
        parallel.use_spare_cores(lambda: True)  # one photo at a time: the other cores are idle
    template_bytes = template_photo.read_bytes() if template_photo else None
    failures = 0
    for path in tqdm(inputs, desc="fusing", unit="photo", disable=single or not sys.stderr.isatty()):
        job = FuseJob(
            users=[UserPhoto(path.read_bytes())],
            template_id=template_id,
            template_photo=template_bytes,
            fuse_degree=fuse_degree,
            shape_degree=shape_degree,
            ai_label=ai_label,
        )
        target = out if single else out / f"{path.stem}.jpg"
        try:
            jpeg = service.fuse_to_jpeg(job)
        except FacefuseError as exc:
            failures += 1
            click.echo(f"{path}: {exc.error.code} {exc.error.message}: {exc.detail}", err=True)
            continue
        target.write_bytes(jpeg)
        if single:
            click.echo(str(target))
    if not single:
        click.echo(f"{len(inputs) - failures} of {len(inputs)} fused into {out}")
    if failures:
        sys.exit(1)


_PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png"}


def _expand_photos(photos: tuple[Path, ...]) -> list[Path]:
    found: list[Path] = []
    for path in photos:
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir() if p.suffix.lower() in _PHOTO_SUFFIXES))
        else:
            found.append(path)
    return found


# ---------------------------------------------------------------- moving up


@cli.command()
@click.option("--to-database", default="", help="postgresql://user:password@host:port/db (default: the current one).")
@click.option("--to-storage", default="", help="s3://bucket/prefix (default: the current one; see FACEFUSE_S3_*).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def migrate(ctx: click.Context, to_database: str, to_storage: str, as_json: bool) -> None:
    """Copy this install's keys, templates and live results into PostgreSQL and S3-compatible
    storage, then check every row and every blob's checksum there. Safe to run twice."""
    from facefuse.migrate import MigrationError, copy_install
    from facefuse.storage.blobs import open_blob_store
    from facefuse.storage.database import open_database

    if not to_database and not to_storage:
        raise click.UsageError("name a target: --to-database, --to-storage or both")
    settings = _settings(ctx)
    source_db = _or_fail(lambda: open_database(settings.database_url, settings.db_path))
    source_blobs = _or_fail(lambda: open_blob_store(settings.storage_url, settings.data_dir, settings.s3_endpoint_url))
    try:
        target_db = _or_fail(lambda: open_database(to_database, settings.db_path)) if to_database else source_db
        target_blobs = (
            _or_fail(lambda: open_blob_store(to_storage, settings.data_dir, settings.s3_endpoint_url))
            if to_storage
            else source_blobs
        )
        report = _or_fail(lambda: copy_install(source_db, source_blobs, target_db, target_blobs))
    except (MigrationError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(report.to_dict()))
        return
    for name, count in report.tables.items():
        click.echo(f"{name}: {count.source} rows, {count.copied} copied, {count.present} there already")
    click.echo(
        f"blobs: {report.blobs_copied} copied, {report.blobs_present} there already, "
        f"{report.blobs_verified} checked (SHA-256)"
    )
    if report.results_skipped:
        click.echo(f"results: {report.results_skipped} left behind (their JPEG is gone from the source)")
    click.echo("verified: every row and blob is in the target")


def _or_fail(action: Any) -> Any:
    try:
        return action()
    except FacefuseError as exc:
        raise click.ClickException(f"{exc.error.code} {exc.error.message}: {exc.detail}") from None


def main() -> None:
    cli(prog_name="facefuse")


if __name__ == "__main__":
    main()
