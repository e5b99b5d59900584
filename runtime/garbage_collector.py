"""The garbage collector's settings for the long-running processes (API, workers,
projector), whose hot paths allocate a few objects per event or item."""

import gc


def settle_after_start_up() -> None:
    """Call once start-up is done. What exists then lives as long as the process: freeze it
    out of the collector's scans. Then collect young objects every 20,000 allocations
    instead of 700: at tens of thousands of events a second the default ran a collection
    every few dozen events, and the older generations' scans grow with what is alive
    (what it cost: BENCHMARKS.md)."""
    gc.freeze()
    gc.set_threshold(20_000, 20, 50)
