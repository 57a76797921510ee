"""Typed model of an nsys export."""
