"""Helpers that start and drive the real components the tests run against."""
