"""The FastAPI application: read API under /api/v1, event stream, dashboard, probes, metrics.

`create_app(settings)` builds a self-contained app (its own Redis client and Prometheus
registry), so tests and the pipeline runner can start several in one process.

Auth: when a bearer token is configured, everything under /api/v1 requires it; the probes,
/metrics, the OpenAPI spec and the dashboard's static files stay open (the dashboard holds
no data and asks for the token). The stream is read with fetch(), not EventSource, so the
browser can send the token in a header instead of a URL that ends up in access logs.
"""

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from redis.asyncio import Redis
from sse_starlette import EventSourceResponse

from runtime.logs import get_logger
from schemas.alert import AlertEvent
from schemas.redis_state import Keys
from workers.api.models import CameraStatus, Overview
from workers.api.settings import ApiSettings
from workers.api.store import Store

log = get_logger("api")
STATIC = Path(__file__).parent / "static"
CAMERA_ID = PathParam(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", description="Camera id.")


class Metrics:
    """The app's own registry, so several apps in one process do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "maskwatch_api_requests_total",
            "HTTP requests.",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "maskwatch_api_request_seconds",
            "HTTP request latency.",
            ["route"],
            registry=self.registry,
        )
        self.streams = Gauge("maskwatch_api_streams", "Open event streams.", registry=self.registry)


def create_app(settings: ApiSettings) -> FastAPI:
    """Build the API (see the module doc)."""
    redis = Redis.from_url(settings.redis_url, decode_responses=True, socket_timeout=5)
    store = Store(
        redis, Keys(settings.key_prefix), settings.stale_after_s, settings.compliance_target
    )
    metrics = Metrics()
    token = settings.bearer_token()
    streams = asyncio.Semaphore(settings.max_streams)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await redis.aclose()

    app = FastAPI(
        title="maskwatch API",
        version="1",
        description="Per-camera face-mask compliance, live. Read-only view of the aggregator's "
        "Redis state.",
        docs_url=None,  # Swagger UI loads from a CDN; the spec is at /openapi.json
        redoc_url=None,
        lifespan=lifespan,
    )

    @app.middleware("http")
    async def measure(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        name = getattr(route, "path", "unmatched")
        metrics.requests.labels(name, str(response.status_code)).inc()
        metrics.latency.labels(name).observe(time.perf_counter() - started)
        return response

    bearer = HTTPBearer(auto_error=False, description="Required when the API has a token.")

    async def authorize(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        if token is None:
            return
        given = credentials.credentials if credentials else ""
        if not secrets.compare_digest(given.encode(), token.encode()):
            raise HTTPException(
                401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
            )

    # The spec declares bearer auth only when a token is set, so it never lies about it.
    api = APIRouter(prefix="/api/v1", dependencies=[Depends(authorize)] if token else [])

    @api.get("/cameras", response_model=Overview, summary="All cameras and totals")
    async def cameras() -> Overview:
        return await store.overview()

    @api.get(
        "/cameras/{camera_id}",
        response_model=CameraStatus,
        summary="One camera",
        responses={404: {"description": "Unknown camera"}},
    )
    async def camera(camera_id: Annotated[str, CAMERA_ID]) -> CameraStatus:
        status = await store.camera(camera_id)
        if status is None:
            raise HTTPException(404, f"unknown camera {camera_id}")
        return status

    @api.get("/alerts", response_model=list[AlertEvent], summary="Recent alert events")
    async def alerts(
        limit: Annotated[int, Query(ge=1, le=settings.max_alerts)] = 100,
        camera_id: Annotated[str | None, Query(max_length=64)] = None,
    ) -> list[AlertEvent]:
        events = await store.alerts(settings.max_alerts if camera_id else limit)
        if camera_id:
            events = [e for e in events if e.camera_id == camera_id][:limit]
        return events

    @api.get(
        "/stream",
        summary="Server-sent events: `snapshot` (Overview), `camera` (CameraStatus), `alert`",
        response_class=EventSourceResponse,
        responses={200: {"content": {"text/event-stream": {}}}, 503: {"description": "Busy"}},
    )
    async def stream(request: Request) -> EventSourceResponse:
        if streams.locked():
            raise HTTPException(503, "too many event streams")
        return EventSourceResponse(_events(request, store, settings, streams, metrics), ping=15)

    app.include_router(api)

    @app.get("/healthz", response_class=PlainTextResponse, include_in_schema=True)
    async def healthz() -> str:
        return "ok\n"

    @app.get(
        "/readyz",
        response_class=PlainTextResponse,
        responses={503: {"description": "Redis unreachable"}},
    )
    async def readyz() -> PlainTextResponse:
        try:
            await store.ping()
        except Exception as error:
            return PlainTextResponse(f"not ready: redis: {error}\n", status_code=503)
        return PlainTextResponse("ready\n")

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics_text() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


async def _events(
    request: Request,
    store: Store,
    settings: ApiSettings,
    streams: asyncio.Semaphore,
    metrics: Metrics,
) -> AsyncIterator[dict[str, Any]]:
    """A snapshot now and every `stream_refresh_s`; changed cameras and alerts in between."""
    await streams.acquire()
    metrics.streams.inc()
    pubsub = store.redis.pubsub()
    try:
        await pubsub.subscribe(store.keys.updates)
        loop = asyncio.get_running_loop()
        yield {"event": "snapshot", "data": await store.snapshot_json()}
        next_snapshot = loop.time() + settings.stream_refresh_s
        pending: set[str] = set()
        flush_at: float | None = None
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
            if message is not None:
                update = json.loads(message["data"])
                if "alert" in update:
                    yield {"event": "alert", "data": json.dumps(update["alert"])}
                pending.update(update.get("cameras", ()))
                if pending and flush_at is None:
                    flush_at = loop.time() + settings.stream_coalesce_s
            now = loop.time()
            if now >= next_snapshot:
                # shared and up to a second old: pending camera updates still follow it
                yield {"event": "snapshot", "data": await store.snapshot_json()}
                next_snapshot = now + settings.stream_refresh_s
            if flush_at is not None and now >= flush_at:
                seen = dict(await store.registry())
                changed = [(c, seen[c]) for c in sorted(pending) if c in seen]
                for status in await store.statuses(changed):
                    yield {"event": "camera", "data": status.model_dump_json()}
                pending, flush_at = set(), None
            if await request.is_disconnected():
                return
    finally:
        metrics.streams.dec()
        streams.release()
        await pubsub.aclose()  # type: ignore[no-untyped-call]
