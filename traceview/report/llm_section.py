"""The report's "LLM inference" section, from ``extra["llm"]`` (docs/llm.md): the decode step,
the quantization what-if and the deployment projection table."""

from __future__ import annotations

from typing import Any

from traceview.report.htmlparts import Section, esc, fmt_ns, generic_table


def _quant_rows(quant: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"format": q["format"], "projected_step_ns": q["projected_step_ns"], "speedup": q["speedup"],
             "projected_weight_bytes_per_step": q["projected_weight_bytes_per_step"],
             "accuracy_caveat": q["accuracy_caveat"]} for q in quant]


def _projection_rows(proj: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"config": c["config"], "nodes": c["nodes"], "step_ns": c["step_ns"],
             "tokens_per_s": round(c["tokens_per_s"], 1), "weights_per_node_bytes": c["weights_per_node_bytes"],
             "fits": "yes" if c["fits"] else "NO", "limited_by": c["limited_by"]} for c in proj["configs"]]


def llm_inference(data: dict[str, Any]) -> Section | None:
    """None when the trace has no decode steps."""
    decode = (data.get("llm") or {}).get("decode")
    if not decode:
        return None
    html = (f"<p>decode phase <b>{esc(decode['phase'])}</b>: {decode['steps']} steps on GPU {decode['device_id']}, "
            f"{esc(fmt_ns(decode['gpu_ns_per_step']))} GPU time and {decode['launches_per_step']:.0f} kernel launches "
            f"per step</p>" + generic_table("tv-llm-decode", decode["kernels"], "kernels per step"))
    if decode.get("quantization"):
        html += ("<h3>Quantization what-if (estimate)</h3>"
                 + generic_table("tv-llm-quant", _quant_rows(decode["quantization"]),
                                 "memory-bound weight kernels scale with bytes at their achieved bandwidth"))
    proj = data["llm"].get("projection")
    if proj:
        html += (f"<h3>Deployment projection on {esc(proj['target'])} (estimate)</h3>"
                 + generic_table("tv-llm-projection", _projection_rows(proj))
                 + "<details><summary>assumptions</summary><ul>"
                 + "".join(f"<li>{esc(a)}</li>" for a in proj["assumptions"]) + "</ul></details>")
    return Section("llm", "LLM inference", html, {})
