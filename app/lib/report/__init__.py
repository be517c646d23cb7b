"""Report: the only place that renders (rich tables, timelines, plots, JSON)."""
