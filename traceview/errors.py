"""Typed errors; each carries the process exit code the CLI uses."""

from __future__ import annotations


class TraceviewError(Exception):
    """Base class: a one-line, user-facing message and an exit code."""

    exit_code = 2


class InputError(TraceviewError):
    """The input cannot be analyzed (missing, unreadable, not an export)."""


class ExportNotFound(InputError):
    pass


class NotAnNsysExport(InputError):
    pass


class CorruptExport(InputError):
    pass


class NoCudaActivity(InputError):
    pass


class ResourceLimitExceeded(InputError):
    """The export would need more memory than is available (see traceview.ingest.limits)."""


class OutputError(TraceviewError):
    """A report cannot be written where the user asked (missing directory, no permission, ...)."""


class RecipeError(TraceviewError):
    pass


class IncomparableTraces(TraceviewError):
    pass
