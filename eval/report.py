"""The eval's plots (PNG, matplotlib from the ``bench`` extra) and HTML report (tables + image grids)."""

from __future__ import annotations

import html
import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def write_plots(payload: dict[str, Any], out_dir: Path) -> list[str]:
    """Bar charts of the scorer means, win rates and consistency per mode; [] without matplotlib."""
    try:
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        logger.warning("matplotlib is not installed (pip install -e '.[bench]'): plain Pillow bar charts")
        return _pillow_plots(payload, out_dir)
    summary: dict[str, Any] = payload["summary"]
    modes = list(summary)
    written: list[str] = []

    # 1. mean score per scorer and mode
    scorers = sorted({name for row in summary.values() for name in row["mean"]})
    figure, axis = plt.subplots(figsize=(max(6, 1.4 * len(scorers)), 4))
    width = 0.8 / len(modes)
    for index, mode in enumerate(modes):
        values = [summary[mode]["mean"].get(name) or 0.0 for name in scorers]
        axis.bar([x + index * width for x in range(len(scorers))], values, width, label=mode)
    axis.set_xticks([x + 0.4 - width / 2 for x in range(len(scorers))], scorers)
    axis.set_ylabel("mean 0-100 score of the kept image")
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(out_dir / "scores.png", dpi=100)
    plt.close(figure)
    written.append("scores.png")

    # 2. win rate over simple per scorer, advanced modes
    advanced = [mode for mode in modes if summary[mode]["win_rate_vs_simple"]]
    if advanced:
        figure, axis = plt.subplots(figsize=(max(6, 1.4 * len(scorers)), 4))
        width = 0.8 / len(advanced)
        for index, mode in enumerate(advanced):
            wins = summary[mode]["win_rate_vs_simple"]
            axis.bar(
                [x + index * width for x in range(len(scorers))],
                [wins.get(name) or 0.0 for name in scorers],
                width,
                label=mode,
            )
        axis.axhline(0.5, color="grey", linewidth=0.8, linestyle="--")
        axis.set_xticks([x + 0.4 - width / 2 for x in range(len(scorers))], scorers)
        axis.set_ylabel("win rate vs simple (ties 1/2)")
        axis.set_ylim(0, 1)
        axis.legend(fontsize=7)
        figure.tight_layout()
        figure.savefig(out_dir / "win_rates.png", dpi=100)
        plt.close(figure)
        written.append("win_rates.png")

    # 3. consistency and seconds per scene per mode
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.bar(modes, [summary[mode]["consistency"] or 0.0 for mode in modes])
    left.set_ylabel("consecutive kept scenes: CLIP image cosine")
    right.bar(modes, [summary[mode]["seconds_per_scene"] or 0.0 for mode in modes])
    right.set_ylabel("seconds per scene")
    for axis in (left, right):
        axis.tick_params(axis="x", labelrotation=45, labelsize=7)
    figure.tight_layout()
    figure.savefig(out_dir / "consistency_cost.png", dpi=100)
    plt.close(figure)
    written.append("consistency_cost.png")
    return written


def _pillow_bars(title: str, bars: list[tuple[str, float]], top: float, path: Path) -> None:
    """One horizontal bar chart, drawn with Pillow (the fallback without matplotlib)."""
    from PIL import Image, ImageDraw  # noqa: PLC0415

    row, label_width, bar_width = 16, 260, 300
    image = Image.new("RGB", (label_width + bar_width + 70, 28 + row * len(bars)), "white")
    draw = ImageDraw.Draw(image)
    draw.text((4, 4), title, fill="black")
    for index, (label, value) in enumerate(bars):
        y = 24 + row * index
        draw.text((4, y), label[:42], fill="black")
        length = int(bar_width * max(min(value / top, 1.0), 0.0)) if top > 0 else 0
        draw.rectangle((label_width, y + 2, label_width + length, y + row - 3), fill=(60, 110, 200))
        draw.text((label_width + length + 4, y), f"{value:.3g}", fill="black")
    image.save(path)


def _pillow_plots(payload: dict[str, Any], out_dir: Path) -> list[str]:
    summary: dict[str, Any] = payload["summary"]
    scorers = sorted({name for row in summary.values() for name in row["mean"]})
    plots = {
        "scores.png": (
            "mean 0-100 score of the kept image (mode / scorer)",
            [
                (f"{mode} / {name}", row["mean"].get(name) or 0.0)
                for mode, row in summary.items()
                for name in scorers
            ],
            100.0,
        ),
        "win_rates.png": (
            "win rate vs simple, ties 1/2 (mode / scorer)",
            [
                (f"{mode} / {name}", row["win_rate_vs_simple"].get(name) or 0.0)
                for mode, row in summary.items()
                if row["win_rate_vs_simple"]
                for name in scorers
            ],
            1.0,
        ),
        "consistency_cost.png": (
            "consecutive kept scenes: CLIP image cosine | seconds per scene",
            [(f"{mode} cosine", row["consistency"] or 0.0) for mode, row in summary.items()]
            + [(f"{mode} s/scene", row["seconds_per_scene"] or 0.0) for mode, row in summary.items()],
            max([row["seconds_per_scene"] or 0.0 for row in summary.values()] + [1.0]),
        ),
    }
    for name, (title, bars, top) in plots.items():
        _pillow_bars(title, bars, top, out_dir / name)
    return list(plots)


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return html.escape(str(value))


def write_report(payload: dict[str, Any], out_dir: Path) -> Path:
    """report.html: the settings, one table per metric, the plots, and an image grid (prompt x mode)."""
    summary: dict[str, Any] = payload["summary"]
    modes = list(summary)
    scorers = sorted({name for row in summary.values() for name in row["mean"]})
    parts = [
        "<!doctype html><meta charset='utf-8'><title>scenechain eval</title>",
        "<style>body{font-family:sans-serif}td,th{border:1px solid #ccc;padding:2px 6px;font-size:12px}"
        "table{border-collapse:collapse;margin-bottom:1em}img{image-rendering:pixelated}</style>",
        f"<h1>scenechain eval: {html.escape(payload['profile'])}</h1>",
        f"<p>{html.escape(payload['what'])}. Prompts: {html.escape(payload['prompts'])} "
        f"({payload['prompt_count']} in {payload['stories']} stories); steps {payload['steps']}, "
        f"guidance {payload['guidance_scale']}, img2img strength {payload['strength']}, base seed "
        f"{payload['base_seed']}; total {payload['total_seconds']} s.</p>",
    ]
    # 1. tables
    header = "<tr><th>mode</th>" + "".join(f"<th>{html.escape(s)}</th>" for s in scorers) + "</tr>"
    parts.append("<h2>Mean score of the kept image (0-100)</h2><table>" + header)
    for mode in modes:
        values = "".join(f"<td>{_cell(summary[mode]['mean'].get(s))}</td>" for s in scorers)
        parts.append(f"<tr><td>{mode}</td>{values}</tr>")
    parts.append("</table><h2>Win rate over simple (paired by scene, ties 1/2)</h2><table>" + header)
    for mode in modes:
        wins = summary[mode]["win_rate_vs_simple"]
        if wins:
            parts.append(
                f"<tr><td>{mode}</td>" + "".join(f"<td>{_cell(wins.get(s))}</td>" for s in scorers) + "</tr>"
            )
    parts.append(
        "</table><h2>Judge accuracy, consistency, cost</h2><table><tr><th>mode</th><th>judge</th>"
        "<th>consistency (cosine)</th><th>s / scene</th></tr>"
    )
    for mode in modes:
        judge = summary[mode]["judge_accuracy"]
        judge_text = ", ".join(f"{k} {_cell(v)}" for k, v in judge.items()) if judge else "–"
        parts.append(
            f"<tr><td>{mode}</td><td>{html.escape(judge_text)}</td>"
            f"<td>{_cell(summary[mode]['consistency'])}</td><td>{_cell(summary[mode]['seconds_per_scene'])}</td></tr>"
        )
    parts.append("</table>")
    # 2. plots
    for plot in payload.get("plots", []):
        parts.append(f"<img src='{html.escape(plot)}' style='max-width:48%'>")
    # 3. image grid: one row per prompt, one column per mode
    parts.append("<h2>Kept images</h2><table><tr><th>prompt</th>")
    parts += [f"<th>{html.escape(mode)}</th>" for mode in modes]
    parts.append("</tr>")
    by_key = {(scene["mode"], scene["prompt_id"]): scene for scene in payload["scenes"]}
    prompt_ids = list(dict.fromkeys(scene["prompt_id"] for scene in payload["scenes"]))
    prompts = {scene["prompt_id"]: scene for scene in payload["scenes"]}
    for prompt_id in prompt_ids:
        parts.append(f"<tr><td>{html.escape(prompt_id)}</td>")
        for mode in modes:
            scene = by_key.get((mode, prompt_id))
            if scene is None:
                parts.append("<td></td>")
                continue
            marks = " ".join(f"{k}:{'✓' if ok else '✗'}" for k, ok in scene["judge"].items())
            title = f"{prompts[prompt_id]['category']} seed {scene['kept_seed']} overall {scene['scores'].get('overall', 0):.1f}"
            parts.append(
                f"<td><img src='{html.escape(scene['image'])}' width=64 height=64 title='{html.escape(title)}'>"
                f"<br><small>{html.escape(marks)}</small></td>"
            )
        parts.append("</tr>")
    parts.append("</table>")
    path = out_dir / "report.html"
    path.write_text("\n".join(parts))
    return path
