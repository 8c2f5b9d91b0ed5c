#!/usr/bin/env python3
"""plot-performance.py: draws the performance plots from mqtt-load RESULT lines, as SVG.

Reads every line containing `RESULT key=value ...` from the given files (lines may carry a
prefix such as `round 2`, as compare-brokers.sh and perf-sweep.sh print them), takes the median
over rounds and writes:

  perf-fanout.svg   scenario=fanout: deliveries per second (msg_per_s, summed over all
                    subscribers) against the subscriber count, one line per broker, log axes;
                    a whisker spans the rounds' lowest to highest, and the median share
                    delivered is written beside points under 99.5 % (QoS 0 may be dropped);
  perf-latency.svg  scenario=latency: p50 / p99 / p99.9 / max end-to-end latency per broker,
                    grouped bars on a log axis.

Standard library only (Python 3.11): the SVG is written directly.

Usage: scripts/plot-performance.py [--out-dir docs] [--title-suffix TEXT] FILE...
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from xml.sax.saxutils import escape

BROKER_ORDER = ["ours", "ours-2cpu", "mosquitto", "rumqttd"]
COLORS = {
    "ours": "#d62728",
    "ours-2cpu": "#ff9896",
    "mosquitto": "#1f77b4",
    "rumqttd": "#2ca02c",
}
FALLBACK_COLORS = ["#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
LATENCY_FIELDS = [("p50_us", "p50"), ("p99_us", "p99"), ("p999_us", "p99.9"), ("max_us", "max")]

WIDTH, HEIGHT = 720, 440
LEFT, RIGHT, TOP, BOTTOM = 90, 150, 50, 60


def parse_results(paths: list[Path]) -> list[dict[str, str]]:
    """Every RESULT line of the files, as a dict of its key=value fields."""
    results = []
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.lstrip().startswith("#") or "RESULT " not in line:
                continue
            fields = line.split("RESULT ", 1)[1].split()
            pairs = dict(f.split("=", 1) for f in fields if "=" in f)
            if "scenario" in pairs and "broker" in pairs and "error" not in pairs:
                results.append(pairs)
    return results


def number(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def brokers_in(keys) -> list[str]:
    """The broker names in a fixed order (ours first), unknown ones after, sorted."""
    names = set(keys)
    known = [b for b in BROKER_ORDER if b in names]
    return known + sorted(names - set(known))


def color(broker: str, index: int) -> str:
    return COLORS.get(broker, FALLBACK_COLORS[index % len(FALLBACK_COLORS)])


def log_ticks(low: float, high: float) -> list[float]:
    """Powers of ten (and 2x, 5x between them when the range is short) covering low..high."""
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    steps = (1, 2, 5) if last - first <= 3 else (1,)
    ticks = [m * 10**e for e in range(first, last + 1) for m in steps]
    return [t for t in ticks if low <= t <= high]


def si(value: float) -> str:
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= factor:
            text = f"{value / factor:.3g}"
            return f"{text}{suffix}"
    return f"{value:.3g}"


def micros(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:.3g} ms"
    return f"{value:.0f} µs"


class Svg:
    """A minimal SVG writer."""

    def __init__(self, title: str):
        self.parts = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
            f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        ]
        self.text(WIDTH / 2, 24, title, size=15, anchor="middle", weight="bold")

    def text(self, x, y, body, size=12, anchor="start", weight="normal", rotate=None, fill="#222"):
        transform = f' transform="rotate({rotate} {x:.1f} {y:.1f})"' if rotate is not None else ""
        self.parts.append(
            f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
            f'font-weight="{weight}" fill="{fill}"{transform}>{escape(str(body))}</text>'
        )

    def line(self, x1, y1, x2, y2, stroke="#222", width=1.0, dash=None):
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        self.parts.append(
            f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
            f'stroke="{stroke}" stroke-width="{width}"{dashed}/>'
        )

    def polyline(self, points, stroke, width=2.0):
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        self.parts.append(
            f'<polyline points="{coords}" fill="none" stroke="{stroke}" stroke-width="{width}"/>'
        )

    def circle(self, x, y, r, fill):
        self.parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" fill="{fill}"/>')

    def rect(self, x, y, w, h, fill, title=None):
        tip = f"<title>{escape(title)}</title>" if title else ""
        self.parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" fill="{fill}">{tip}</rect>'
        )

    def legend(self, entries):
        x, y = WIDTH - RIGHT + 20, TOP + 10
        for i, (label, fill) in enumerate(entries):
            self.rect(x, y + i * 20 - 9, 14, 10, fill)
            self.text(x + 20, y + i * 20, label)

    def write(self, path: Path):
        path.write_text("\n".join(self.parts + ["</svg>", ""]), encoding="utf-8")


def log_axis(svg: Svg, low: float, high: float, label: str, fmt) -> callable:
    """Draws a vertical log axis with grid lines; returns value -> y."""
    plot_h = HEIGHT - TOP - BOTTOM
    span = math.log10(high) - math.log10(low)

    def y_of(value: float) -> float:
        return TOP + plot_h * (1 - (math.log10(value) - math.log10(low)) / span)

    for tick in log_ticks(low, high):
        y = y_of(tick)
        svg.line(LEFT, y, WIDTH - RIGHT, y, stroke="#ddd")
        svg.text(LEFT - 6, y + 4, fmt(tick), anchor="end")
    svg.line(LEFT, TOP, LEFT, HEIGHT - BOTTOM)
    svg.line(LEFT, HEIGHT - BOTTOM, WIDTH - RIGHT, HEIGHT - BOTTOM)
    svg.text(22, TOP + plot_h / 2, label, anchor="middle", rotate=-90)
    return y_of


def padded_range(values: list[float]) -> tuple[float, float]:
    low, high = min(values), max(values)
    low = 10 ** math.floor(math.log10(low))
    high = 10 ** math.ceil(math.log10(high * 1.05))
    return low, high


def plot_fanout(results, out: Path, suffix: str) -> bool:
    """deliveries/s against subscriber count, median per (broker, subscribers)."""
    samples, delivered = defaultdict(list), defaultdict(list)
    for r in results:
        value, subs = number(r.get("msg_per_s")), number(r.get("subscribers"))
        if r["scenario"] == "fanout" and value and subs:
            samples[(r["broker"], int(subs))].append(value)
            share = number(r.get("delivered_pct"))
            if share is not None:
                delivered[(r["broker"], int(subs))].append(share)
    if not samples:
        return False
    medians = {key: statistics.median(v) for key, v in samples.items()}
    all_values = [v for values in samples.values() for v in values]
    counts = sorted({s for _, s in medians})
    brokers = brokers_in(b for b, _ in medians)
    svg = Svg(f"QoS 0 fan-out: 1 publisher -> S subscribers{suffix}")
    y_of = log_axis(svg, *padded_range(all_values), "deliveries per second", si)
    plot_w = WIDTH - LEFT - RIGHT
    lo_c, hi_c = math.log10(min(counts)), math.log10(max(counts))

    def x_of(count: int) -> float:
        if hi_c == lo_c:
            return LEFT + plot_w / 2
        return LEFT + 30 + (plot_w - 60) * (math.log10(count) - lo_c) / (hi_c - lo_c)

    for count in counts:
        svg.line(x_of(count), HEIGHT - BOTTOM, x_of(count), HEIGHT - BOTTOM + 5)
        svg.text(x_of(count), HEIGHT - BOTTOM + 20, f"{count:,}", anchor="middle")
    svg.text(LEFT + plot_w / 2, HEIGHT - 18, "subscribers (log scale)", anchor="middle")
    legend = []
    for i, broker in enumerate(brokers):
        points = [(x_of(c), y_of(medians[(broker, c)])) for c in counts if (broker, c) in medians]
        fill = color(broker, i)
        svg.polyline(points, fill)
        for (x, y), c in zip(points, [c for c in counts if (broker, c) in medians]):
            svg.line(x, y_of(min(samples[(broker, c)])), x, y_of(max(samples[(broker, c)])), stroke=fill)
            svg.circle(x, y, 4, fill)
            svg.parts.append(f"<!-- {broker} {c}: {medians[(broker, c)]:.0f} -->")
            share = statistics.median(delivered[(broker, c)]) if delivered[(broker, c)] else 100.0
            if share < 99.5:
                svg.text(x + 7, y + 4, f"{share:.3g}%", size=9, fill=fill)
        legend.append((broker, fill))
    svg.legend(legend)
    rounds = max(len(v) for v in samples.values())
    svg.text(WIDTH - RIGHT + 20, HEIGHT - BOTTOM - 28, f"median of up to {rounds},", size=10)
    svg.text(WIDTH - RIGHT + 20, HEIGHT - BOTTOM - 14, "whisker: min to max;", size=10)
    svg.text(WIDTH - RIGHT + 20, HEIGHT - BOTTOM, "n%: share delivered", size=10)
    svg.write(out)
    return True


def plot_latency(results, out: Path, suffix: str) -> bool:
    """p50/p99/p99.9/max per broker as grouped bars, median over rounds."""
    samples = defaultdict(list)
    rate = None
    for r in results:
        if r["scenario"] != "latency":
            continue
        rate = rate or r.get("rate")
        for key, _ in LATENCY_FIELDS:
            value = number(r.get(key))
            if value and value > 0:
                samples[(r["broker"], key)].append(value)
    if not samples:
        return False
    medians = {key: statistics.median(v) for key, v in samples.items()}
    brokers = brokers_in(b for b, _ in medians)
    rate_text = f" at {int(float(rate)):,} msg/s" if rate else ""
    svg = Svg(f"End-to-end latency{rate_text}, QoS 0, 64 B{suffix}")
    low, high = padded_range(list(medians.values()))
    y_of = log_axis(svg, low, high, "latency (log scale)", micros)
    plot_w = WIDTH - LEFT - RIGHT
    group_w = plot_w / len(LATENCY_FIELDS)
    bar_w = group_w * 0.8 / max(len(brokers), 1)
    base = HEIGHT - BOTTOM
    for g, (key, label) in enumerate(LATENCY_FIELDS):
        gx = LEFT + g * group_w + group_w * 0.1
        svg.text(LEFT + (g + 0.5) * group_w, base + 20, label, anchor="middle")
        for i, broker in enumerate(brokers):
            value = medians.get((broker, key))
            if value is None:
                continue
            y = y_of(value)
            svg.rect(gx + i * bar_w, y, bar_w - 2, base - y, color(broker, i), f"{broker} {label}: {micros(value)}")
            svg.text(gx + (i + 0.5) * bar_w, y - 4, micros(value), size=9, anchor="middle")
    if low <= 1000 <= high:  # the 1 ms target for p99.9
        svg.line(LEFT, y_of(1000), WIDTH - RIGHT, y_of(1000), stroke="#888", dash="4 3")
    svg.legend([(b, color(b, i)) for i, b in enumerate(brokers)])
    rounds = max(len(v) for v in samples.values())
    svg.text(WIDTH - RIGHT + 20, HEIGHT - BOTTOM, f"median of up to {rounds}", size=10)
    svg.write(out)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, help="files with RESULT lines")
    parser.add_argument("--out-dir", type=Path, default=Path("docs"))
    parser.add_argument("--title-suffix", default="", help="appended to both titles")
    args = parser.parse_args()
    results = parse_results(args.files)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    wrote = []
    if plot_fanout(results, args.out_dir / "perf-fanout.svg", args.title_suffix):
        wrote.append(args.out_dir / "perf-fanout.svg")
    if plot_latency(results, args.out_dir / "perf-latency.svg", args.title_suffix):
        wrote.append(args.out_dir / "perf-latency.svg")
    if not wrote:
        print("no fanout or latency RESULT lines found", file=sys.stderr)
        return 1
    for path in wrote:
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
