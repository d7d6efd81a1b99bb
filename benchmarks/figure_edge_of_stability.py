"""The edge of stability, drawn: `python benchmarks/figure_edge_of_stability.py [--out FILE.svg]`.

Runs backprop.edge_of_stability's two learning rates (full-batch gradient descent on the 2D
multi-gauss regression) and writes a plain SVG (no plotting library needed): the sharpness λ_max
against 2/η above, the training cost (log scale) below, and prints each run's summary.
"""

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backprop.edge_of_stability import DEMO, run_edge_of_stability  # noqa: E402

WIDTH, PANEL, LEFT, RIGHT, TOP, GAP = 760, 230, 70, 20, 40, 60
COLOURS = ("#1f77b4", "#d62728")


def polyline(points, colour, dash=None, width=1.6):
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    dashed = f' stroke-dasharray="{dash}"' if dash else ""
    return f'<polyline fill="none" stroke="{colour}" stroke-width="{width}"{dashed} points="{path}"/>'


def text(x, y, words, size=13, anchor="start", colour="#222"):
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-family="sans-serif" font-size="{size}" '
            f'text-anchor="{anchor}" fill="{colour}">{words}</text>')


def draw(runs):
    steps = max(len(run.costs) for run in runs)
    plot_width = WIDTH - LEFT - RIGHT
    top_sharp = max(max(max(run.sharpness), run.limit) for run in runs) * 1.1
    costs = [c for run in runs for c in run.costs if c > 0]
    low, high = math.log10(min(costs)), math.log10(max(costs))

    def x_of(i):
        return LEFT + plot_width * i / steps

    def y_sharp(value):
        return TOP + PANEL * (1 - value / top_sharp)

    def y_cost(value):
        return TOP + PANEL + GAP + PANEL * (1 - (math.log10(value) - low) / (high - low))

    height = TOP + 2 * PANEL + GAP + 50
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
             f'viewBox="0 0 {WIDTH} {height}">', '<rect width="100%" height="100%" fill="white"/>',
             text(WIDTH / 2, 22, "Edge of stability: full-batch gradient descent, [2, 32, 32, 1] tanh, "
                                  "multi-gauss regression", 15, "middle")]
    for panel_top in (TOP, TOP + PANEL + GAP):
        parts.append(f'<rect x="{LEFT}" y="{panel_top}" width="{plot_width}" height="{PANEL}" '
                     'fill="none" stroke="#999"/>')
    for value in range(0, int(top_sharp) + 1, 10):
        parts.append(text(LEFT - 6, y_sharp(value) + 4, str(value), 11, "end"))
    for exponent in range(math.ceil(low), math.floor(high) + 1):
        parts.append(text(LEFT - 6, y_cost(10 ** exponent) + 4, f"1e{exponent}", 11, "end"))
    for i in range(0, steps + 1, 600):
        parts.append(text(x_of(i), TOP + 2 * PANEL + GAP + 16, str(i), 11, "middle"))
    parts.append(text(WIDTH / 2, TOP + 2 * PANEL + GAP + 36, "iteration", 12, "middle"))
    parts.append(text(LEFT, TOP - 6, "sharpness λ_max (solid) and the stability limit 2/η (dashed)", 12))
    parts.append(text(LEFT, TOP + PANEL + GAP - 6, "training cost (log scale)", 12))
    for run, colour in zip(runs, COLOURS, strict=False):
        parts.append(polyline([(x_of(i), y_sharp(v)) for i, v in zip(run.iterations, run.sharpness,
                                                                         strict=True)], colour))
        parts.append(polyline([(LEFT, y_sharp(run.limit)), (LEFT + plot_width, y_sharp(run.limit))], colour,
                              dash="6,4", width=1.2))
        parts.append(text(LEFT + plot_width - 4, y_sharp(run.limit) - 5, f"2/η = {run.limit:.1f} (η = "
                          f"{run.learning_rate:g})", 11, "end", colour))
        stride = max(1, len(run.costs) // 1500)
        points = [(x_of(i), y_cost(c)) for i, c in enumerate(run.costs) if c > 0]
        parts.append(polyline(points[::stride], colour, width=1.0))
    parts.append("</svg>")
    return "\n".join(parts)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "docs" /
                                             "edge-of-stability.svg"))
    args = parser.parse_args()
    runs = []
    for learning_rate, steps in DEMO:
        run = run_edge_of_stability(learning_rate, steps)
        summary = run.summary()
        print(f"lr {learning_rate:g}: 2/η {run.limit:.1f}, λ_max at start {run.sharpness[0]:.1f}, "
              f"reaches 0.95·2/η at iteration {summary.edge_iteration}, λ_max/(2/η) afterwards "
              f"{summary.ratio_after[0]:.3f}-{summary.ratio_after[1]:.3f}, cost at the edge "
              f"{summary.cost_at_edge:.5f} -> {summary.final_cost:.5f}, {summary.rises_after} steps with "
              f"the cost rising after the edge; reproduced: {summary.reproduced}")
        runs.append(run)
    Path(args.out).write_text(draw(runs))
    print(f"Wrote {args.out}")


if __name__ == "__main__":
    main()
