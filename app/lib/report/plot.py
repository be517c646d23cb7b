"""A failover as a picture: operations per interval (ok vs error), event marks, the downtime and faults shaded.

matplotlib is optional: only --plot needs it, so it is imported here, late, and its absence is a
one-line SetupError that says how to install it, not a traceback.
"""

from __future__ import annotations

from pathlib import Path

from lib import events
from lib.checks.timeline import Timeline
from lib.errors import SetupError

INSTALL_HINT = "--plot needs matplotlib: .venv/bin/python -m pip install matplotlib==3.11.2"


def require_matplotlib() -> None:
    """Fail before the run, not after it, when --plot cannot be honoured."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise SetupError(INSTALL_HINT) from None


def plot_timeline(timeline: Timeline, path: str | Path, title: str) -> Path:
    """Write a PNG of the timeline to path and return it."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")  # no display on CI machines and servers
    import matplotlib.pyplot as plt

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    width = timeline.interval_s
    starts = [b.start_s for b in timeline.buckets]
    per_s = 1.0 / width
    fig, ax = plt.subplots(figsize=(11, 4.5), dpi=100)
    try:
        ax.bar(starts, [b.ok * per_s for b in timeline.buckets], width=width, align="edge", color="#2b8a3e",
               label="ok")
        ax.bar(starts, [b.error * per_s for b in timeline.buckets], width=width, align="edge", color="#c92a2a",
               bottom=[b.ok * per_s for b in timeline.buckets], label="error / unknown")
        if timeline.downtime is not None:
            start, end = timeline.downtime
            end = end if end is not None else (starts[-1] + width if starts else start)
            label = (f"downtime {timeline.downtime_ms:,.0f} ms" if timeline.downtime_ms is not None
                     else "downtime (no recovery)")
            ax.axvspan(start, end, color="#868e96", alpha=0.25, label=label)
        _shade_faults(ax, timeline, starts[-1] + width if starts else 0.0)
        _mark_events(ax, timeline)
        ax.set_xlabel("seconds from the fault")
        ax.set_ylabel("operations per second")
        ax.set_title(title)
        ax.legend(loc="lower left", fontsize="small", framealpha=0.9)
        fig.tight_layout()
        fig.savefig(out, format="png")
    finally:
        plt.close(fig)
    return out


def _mark_events(ax, timeline: Timeline) -> None:
    top = ax.get_ylim()[1]
    seen: set[str] = set()
    for event in timeline.events:
        if event.name not in events.MARKED or event.name in seen:
            continue  # one line per kind of event: its first sighting
        seen.add(event.name)
        ax.axvline(event.offset_s, color="#1864ab", linestyle="--", linewidth=0.8)
        ax.text(event.offset_s, top * 0.98, f" {event.name} {event.offset_s:+.2f}s", rotation=90,
                va="top", ha="left", fontsize=7, color="#1864ab")


def _shade_faults(ax, timeline: Timeline, plot_end: float) -> None:
    """Each fault's window, from the fault to its heal (or to the end of the plot when the run did not heal it)."""
    labelled: set[str] = set()
    for window in timeline.fault_windows:
        healed = window.end_s is not None
        end = window.end_s if healed else max(plot_end, window.start_s)
        label = "fault until healed" if healed else "fault (not healed in the run)"
        ax.axvspan(window.start_s, end, color="#f08c00", alpha=0.12, hatch="//", linewidth=0,
                   label=None if label in labelled else label)
        labelled.add(label)
