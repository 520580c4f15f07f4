"""Logs, metrics and health endpoints shared by every service."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
from collections.abc import Awaitable, Callable, Mapping

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from shared.tracing import child_traceparent, current_trace_id, reset_traceparent, set_traceparent

# --- metrics: defined once per process; labels carry the service/consumer -----------------------
HTTP_REQUESTS = Counter("mentorloom_http_requests_total", "HTTP requests", ["service", "method", "route", "status"])
HTTP_LATENCY = Histogram("mentorloom_http_request_seconds", "HTTP request latency", ["service", "method", "route"])
OUTBOX_BACKLOG = Gauge("mentorloom_outbox_backlog", "Outbox rows not yet published", ["service"])
OUTBOX_PUBLISHED = Counter("mentorloom_outbox_published_total", "Outbox rows published to Kafka", ["service"])
OUTBOX_PUBLISH_ERRORS = Counter("mentorloom_outbox_publish_errors_total", "Failed relay batches", ["service"])
EVENTS_HANDLED = Counter("mentorloom_events_handled_total", "Events handled by consumers", ["consumer", "type"])
INBOX_PRUNED = Counter("mentorloom_inbox_pruned_total", "Inbox rows deleted after the retention period", ["service"])
EVENTS_DUPLICATE = Counter("mentorloom_events_duplicate_total", "Redelivered events skipped by the inbox", ["consumer"])
HANDLER_ERRORS = Counter("mentorloom_handler_errors_total", "Handler failures (each attempt)", ["consumer", "type"])
DEAD_LETTERS = Counter("mentorloom_dead_letters_total", "Events sent to a dead-letter topic", ["consumer", "reason"])
CONSUMER_LAG = Gauge("mentorloom_consumer_lag", "Messages behind the partition end", ["consumer", "topic", "partition"])
# How full batches run: full ones mean the batch-size setting binds (a backlog), short ones that the stage keeps up.
BATCH_SIZE_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000)
OUTBOX_BATCH_ROWS = Histogram(
    "mentorloom_outbox_batch_rows", "Rows per published relay batch", ["service"], buckets=BATCH_SIZE_BUCKETS
)
CONSUMER_BATCH_RECORDS = Histogram(
    "mentorloom_consumer_batch_records", "Records per consumer batch", ["consumer"], buckets=BATCH_SIZE_BUCKETS
)


def _add_trace_id(_: object, __: str, event_dict: structlog.types.EventDict) -> structlog.types.EventDict:
    trace_id = current_trace_id()
    if trace_id:
        event_dict["trace_id"] = trace_id
    return event_dict


def configure_logging(service: str, level: str = "INFO", json: bool = True) -> None:
    """JSON lines on stdout with service name and trace id; stdlib logging routed through the same renderer."""
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared_processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_trace_id,
    ]
    structlog.configure(
        processors=[*shared_processors, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            # format_exc_info: a stdlib record's exc_info (uvicorn's "Exception in ASGI application") becomes the
            # traceback text; without it the renderer wrote the repr of a traceback object and the stack was lost.
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
            foreign_pre_chain=shared_processors,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiokafka").setLevel(logging.WARNING)


ReadinessCheck = Callable[[], Awaitable[None]]


class _TraceAndMetricsMiddleware(BaseHTTPMiddleware):
    def __init__(self, app: object, service: str) -> None:
        super().__init__(app)  # type: ignore[arg-type]
        self.service = service

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        token = set_traceparent(child_traceparent(request.headers.get("traceparent")))
        started = time.perf_counter()
        try:
            response = await call_next(request)
        finally:
            reset_traceparent(token)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        HTTP_REQUESTS.labels(self.service, request.method, path, str(response.status_code)).inc()
        HTTP_LATENCY.labels(self.service, request.method, path).observe(time.perf_counter() - started)
        return response


def install_observability(app: FastAPI, service: str, readiness: Mapping[str, ReadinessCheck]) -> None:
    """/healthz (the process answers), /readyz (its own dependencies answer), /metrics, trace context."""
    app.add_middleware(_TraceAndMetricsMiddleware, service=service)
    # Named after the app's title ("Mentorloom profiles" -> mentorloom_profiles_healthz), not FastAPI's default
    # healthz_healthz_get, which all four services shared: one client generated for all four would clash. Not after
    # `service`, which deployments set and the committed documents must not depend on.
    prefix = re.sub(r"[^a-z0-9]+", "_", app.title.lower()).strip("_")

    @app.get("/healthz", tags=["operations"], summary="Liveness: the process is up", operation_id=f"{prefix}_healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["operations"],
        operation_id=f"{prefix}_readyz",
        summary="Readiness: database, broker and Redis reachable",
        responses={503: {"description": "a dependency is unreachable"}},
    )
    async def readyz() -> JSONResponse:
        results = await check_readiness(readiness)
        ok = all(v == "ok" for v in results.values())
        body = {"status": "ok" if ok else "unavailable", "checks": results}
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def check_readiness(checks: Mapping[str, ReadinessCheck], limit_seconds: float = 2.0) -> dict[str, str]:
    async def run(check: ReadinessCheck) -> str:
        try:
            await asyncio.wait_for(check(), limit_seconds)
            return "ok"
        except Exception as exc:  # any failure means "not ready"; the reason is reported, not raised
            return f"error: {type(exc).__name__}: {exc}"[:200]

    names = list(checks)
    outcomes = await asyncio.gather(*(run(checks[name]) for name in names))
    return dict(zip(names, outcomes, strict=True))
