"""traceview: answers from NVIDIA Nsight Systems traces."""

__version__ = "0.1.0"

from traceview.api import AnalysisResult, AnalyzeOptions, analyze, load  # noqa: E402
from traceview.errors import TraceviewError  # noqa: E402
from traceview.model.trace import Trace  # noqa: E402

__all__ = ["AnalysisResult", "AnalyzeOptions", "Trace", "TraceviewError", "__version__", "analyze", "load"]
