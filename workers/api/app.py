"""The FastAPI application: read API under /api/v1, event stream, dashboard and probes.

`create_app(settings)` builds a self-contained app (its own Redis client and Prometheus
registry), so tests and the pipeline runner can start several in one process.

Auth (workers/api/auth.py): when a bearer token is configured, everything under /api/v1
requires it or the dashboard's session cookie (POST /auth/login exchanges the token for an
HttpOnly, SameSite=Strict cookie, so the token never sits in the page's storage or in a URL);
the probes, the OpenAPI spec and the dashboard's static files stay open (the dashboard
holds no data and asks for the token).

`/metrics` is not on this public port: like every stage, the API serves it (and /healthz,
/readyz) on its health port (`runtime.health_port`), which stays inside the cluster.
"""

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pydantic import StringConstraints
from redis.asyncio import Redis
from sse_starlette import EventSourceResponse

from runtime.logs import get_logger
from runtime.service import Health, ServiceRuntime
from schemas.alert import AlertEvent
from schemas.redis_state import SPANS, HistoryRange, Keys
from workers.api.auth import authorizer, login_router
from workers.api.fleet_metrics import FleetCollector
from workers.api.history import CameraHistory, history_csv
from workers.api.models import (
    CameraList,
    CameraStatus,
    CameraSummary,
    LabelAggregates,
    Overview,
    label_groups,
)
from workers.api.overview import LiveOverview
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


LABEL_FILTER = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}=.{1,64}$")]
LABEL_NAME = PathParam(pattern=r"^[a-z][a-z0-9_]{0,31}$", description="Label name.")
NO_CAMERAS = '"cameras":[]}'
"""How an Overview serialised without cameras ends (its last field), where they are joined."""
READY_WAIT_S = 10.0
"""How long a request waits for the first load of the fleet after start-up."""


def create_app(settings: ApiSettings) -> FastAPI:
    """Build the API (see the module doc)."""
    redis = Redis.from_url(
        settings.redis_url, decode_responses=True, socket_timeout=5, **settings.redis_options()
    )
    store = Store(
        redis, Keys(settings.key_prefix), settings.stale_after_s, settings.compliance_target
    )
    fleet = LiveOverview(
        store,
        coalesce_s=settings.stream_coalesce_s,
        tick_s=settings.tick_s,
        resync_s=settings.resync_s,
    )
    metrics = Metrics()
    metrics.registry.register(
        FleetCollector(
            fleet,
            settings.metric_labels,
            settings.metric_max_cameras,
            settings.metric_max_label_values,
        )
    )
    token = settings.bearer_token()
    streams = asyncio.Semaphore(settings.max_streams)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = ServiceRuntime(
            "api", settings.runtime.health_port, metrics.registry, settings.host
        )
        app.state.health_port = runtime.port
        tasks = [
            asyncio.create_task(fleet.run(), name="overview"),
            asyncio.create_task(_report_health(store, runtime.health), name="health"),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await redis.aclose()
            await asyncio.to_thread(runtime.close)

    async def loaded() -> None:
        try:
            await asyncio.wait_for(fleet.ready.wait(), READY_WAIT_S)
        except TimeoutError:
            raise HTTPException(503, "camera overview not loaded yet (Redis?)") from None

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

    authorize = authorizer(token)
    app.include_router(login_router(token))

    # The spec declares bearer auth only when a token is set, so it never lies about it.
    api = APIRouter(prefix="/api/v1", dependencies=[Depends(authorize)] if token else [])

    @api.get(
        "/cameras",
        response_model=Overview,
        summary="Cameras (one page, optionally filtered by label) and fleet totals",
        responses={503: {"description": "Overview not loaded yet"}},
    )
    async def cameras(
        label: Annotated[
            list[LABEL_FILTER],
            Query(description="`name=value`; repeat to require several labels (AND)."),
        ] = [],  # noqa: B006 (FastAPI copies query defaults)
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=settings.max_page)] = settings.max_page,
    ) -> Response:
        await loaded()
        wanted = dict(item.split("=", 1) for item in label)
        at = datetime.now(UTC)
        total, page = fleet.page_json(wanted, offset, limit, at.timestamp())
        totals = fleet.totals or await store.totals()
        head = Overview(
            at=at,
            windows=totals.windows,
            lifetime=totals.lifetime,
            stale_after_s=settings.stale_after_s,
            target=settings.compliance_target,
            total=total,
            offset=offset,
            limit=limit,
            cameras=[],
        ).model_dump_json()
        # The cameras are joined from JSON held per camera (serialised once per change, see
        # LiveOverview.page_json): re-validating and re-serialising 500 summaries per request
        # was most of its time. `cameras` is the model's last field.
        if not head.endswith(NO_CAMERAS):
            raise RuntimeError("Overview no longer ends with its cameras")
        body = f'{head[: -len(NO_CAMERAS)]}"cameras":[{",".join(page)}]}}'
        return Response(body, media_type="application/json")

    @api.get(
        "/labels/{label}",
        response_model=LabelAggregates,
        summary="Per value of a label (e.g. site): cameras, firing, stale and summed windows",
        responses={503: {"description": "Overview not loaded yet"}},
    )
    async def labels(label: Annotated[str, LABEL_NAME]) -> LabelAggregates:
        await loaded()
        _, cams = fleet.page({}, 0, len(fleet.entries) or 1)
        return LabelAggregates(at=datetime.now(UTC), label=label, groups=label_groups(label, cams))

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

    async def known(camera_id: str) -> None:
        await loaded()
        if camera_id not in fleet.entries:
            raise HTTPException(404, f"unknown camera {camera_id}")

    span_query = Query(
        alias="range", description="1h (per minute), 24h and 7d (per hour), 30d (per UTC day)."
    )

    @api.get(
        "/cameras/{camera_id}/history",
        response_model=CameraHistory,
        summary="One camera's counts per bucket over 1 h, 24 h, 7 d or 30 d (oldest first)",
        responses={404: {"description": "Unknown camera"}},
    )
    async def history(
        camera_id: Annotated[str, CAMERA_ID],
        span: Annotated[HistoryRange, span_query] = "24h",
    ) -> CameraHistory:
        await known(camera_id)
        return await store.history(camera_id, SPANS[span])

    @api.get(
        "/cameras/{camera_id}/history.csv",
        response_class=PlainTextResponse,
        summary="The same history as CSV (start, end, frames, skipped, faces, with_mask, "
        "without_mask, compliance, skipped_share; UTC times; empty compliance: no faces)",
        responses={200: {"content": {"text/csv": {}}}, 404: {"description": "Unknown camera"}},
    )
    async def history_export(
        camera_id: Annotated[str, CAMERA_ID],
        span: Annotated[HistoryRange, span_query] = "24h",
    ) -> Response:
        await known(camera_id)
        body = history_csv(await store.history(camera_id, SPANS[span]))
        name = f"{camera_id}-{span}.csv"
        return Response(
            body,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

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
        summary="Server-sent events: `cameras` (changed CameraSummary list), `removed` (ids), "
        "`totals` (Totals), `alert` (AlertEvent)",
        response_class=EventSourceResponse,
        responses={200: {"content": {"text/event-stream": {}}}, 503: {"description": "Busy"}},
    )
    async def stream(
        request: Request,
        since_ms: Annotated[
            int | None,
            Query(
                ge=0,
                description="Server epoch ms of the view the client holds (its `at`): only "
                "cameras changed since then are sent first. Absent: all cameras.",
            ),
        ] = None,
    ) -> EventSourceResponse:
        if streams.locked():
            raise HTTPException(503, "too many event streams")
        await loaded()
        return EventSourceResponse(_events(request, fleet, since_ms, streams, metrics), ping=15)

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

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/cameras/{camera_id}", include_in_schema=False)
    async def camera_page(camera_id: Annotated[str, CAMERA_ID]) -> FileResponse:
        """The detail page (static; it reads the id from its own URL)."""
        return FileResponse(STATIC / "camera.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


HEALTH_EVERY_S = 5.0
"""How often the health port's readiness is refreshed from a Redis PING."""


async def _report_health(store: Store, health: Health) -> None:
    """Keep the health port's /healthz beating and its /readyz on Redis's answer."""
    while True:
        health.beat()
        try:
            await store.ping()
        except Exception as error:  # any failure to reach Redis means "not ready"
            health.set_ready(False, f"redis: {error}")
        else:
            health.set_ready(True)
        await asyncio.sleep(HEALTH_EVERY_S)


CATCH_UP_MARGIN_MS = 2000
"""Catch-up also resends what changed just before `since_ms` (clock skew between replicas)."""
EVENT_CAMERAS = 100
"""Cameras per `cameras` event, so one event stays small."""


def _camera_events(cameras: list[CameraSummary]) -> list[dict[str, str]]:
    return [
        {
            "event": "cameras",
            "data": CameraList(cameras=cameras[i : i + EVENT_CAMERAS]).model_dump_json(),
        }
        for i in range(0, len(cameras), EVENT_CAMERAS)
    ]


async def _events(
    request: Request,
    fleet: LiveOverview,
    since_ms: int | None,
    streams: asyncio.Semaphore,
    metrics: Metrics,
) -> AsyncIterator[dict[str, str]]:
    """Totals and the catch-up first (so the client knows the stream is live), then each
    change the overview announces; never the whole fleet again."""
    await streams.acquire()
    metrics.streams.inc()
    sub = fleet.subscribe()
    try:
        if fleet.totals is not None:
            yield {"event": "totals", "data": fleet.totals.model_dump_json()}
        since = -1 if since_ms is None else since_ms - CATCH_UP_MARGIN_MS
        catch_up = fleet.changed_since(since)
        for event in _camera_events(catch_up) or [
            {"event": "cameras", "data": CameraList(cameras=[]).model_dump_json()}
        ]:
            yield event
        while not sub.overflowed:
            try:
                kind, payload = await asyncio.wait_for(sub.queue.get(), 1.0)
            except TimeoutError:
                if await request.is_disconnected():
                    return
                continue
            if kind == "cameras":
                for event in _camera_events(payload):
                    yield event
            elif kind == "removed":
                yield {"event": "removed", "data": json.dumps({"cameras": payload})}
            elif kind == "totals":
                yield {"event": "totals", "data": payload.model_dump_json()}
            else:
                yield {"event": "alert", "data": payload}
    finally:
        fleet.unsubscribe(sub)
        metrics.streams.dec()
        streams.release()
