"""Turning results.json into tables, plots and report.md/html."""
