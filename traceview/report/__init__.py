"""Outputs: JSON, text (rich), Markdown, HTML."""
