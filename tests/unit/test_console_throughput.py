"""The throughput chart's drawing: one bar per step, scaled to the peak, text that says
what it shows."""

import re

from ingest_api.console.throughput import Throughput, svg


def test_the_chart_draws_a_bar_per_busy_step_scaled_to_the_peak():
    drawn = svg(Throughput(step_s=2, rates=[100.0, 0.0, 50.0]))
    heights = [float(h) for h in re.findall(r'<rect[^>]* height="([0-9.]+)"', drawn)]
    assert len(heights) == 2  # an idle step draws nothing
    assert heights[0] == 2 * heights[1]
    assert "100/s" in drawn and "60 s" in drawn  # at least 30 steps wide: 30 x 2 s
    assert 'aria-label="items per second over 6 seconds, peak 100"' in drawn
