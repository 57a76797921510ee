"""traceview: answers from NVIDIA Nsight Systems traces."""

__version__ = "0.1.0"

# The subpackage traceview.compare is imported first so that the name `compare` below stays the
# function: importing a subpackage later would rebind the package attribute to the module.
from traceview import compare as _compare_package  # noqa: E402, F401
from traceview.api import AnalysisResult, AnalyzeOptions, analyze, compare, load  # noqa: E402
from traceview.errors import TraceviewError  # noqa: E402
from traceview.model.trace import Trace  # noqa: E402

__all__ = ["AnalysisResult", "AnalyzeOptions", "Trace", "TraceviewError", "__version__", "analyze", "compare", "load"]
