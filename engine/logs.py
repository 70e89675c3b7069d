"""Structured logs: JSON off a TTY, readable on one; phone numbers masked to their last digits."""

from __future__ import annotations

import logging
import sys
import traceback
from types import TracebackType

import structlog

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def format_exception(exc_info: ExcInfo) -> str:
    """A traceback without the 3.11 "^^^" caret lines.

    Computing the carets calls ast.parse, which on Debian's Python 3.11.2 can raise
    "SystemError: AST constructor recursion depth mismatch" from inside a logging call.
    """
    te = traceback.TracebackException(*exc_info, compact=True)
    pending = [te]
    while pending:
        current = pending.pop()
        for frame in current.stack:
            frame.colno = None
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]
    return "".join(te.format())


def configure(level: str = "info", fmt: str = "auto", *, cache: bool = True) -> None:
    """cache=False keeps loggers re-reading the configuration (tests capture logs with structlog.testing)."""
    json_output = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if json_output
        else structlog.dev.ConsoleRenderer(colors=False, exception_formatter=_console_exception)
    )
    numeric = logging.getLevelNamesMapping()[level.upper()]
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.ExceptionRenderer(format_exception), renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=cache,
    )
    # Libraries that log through stdlib logging (aiohttp, asyncpg) go to the same stream.
    handler = logging.StreamHandler(_CurrentStderr())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.INFO))
    # aiohttp's own access log carries query strings (http.php has passwords): ours replaces it.
    logging.getLogger("aiohttp.access").disabled = True


class _CurrentStderr:
    """Whatever sys.stderr is when a line is written (test runners swap it; a CLI run in-process must not
    leave the logs pointing at a stream that was closed since)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _console_exception(sio: object, exc_info: ExcInfo) -> None:
    sio.write("\n" + format_exception(exc_info))  # type: ignore[attr-defined]
