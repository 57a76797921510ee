"""Analyses: pure functions from model frames to result frames."""
