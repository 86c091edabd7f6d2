"""`sparkyfruit inspect OUTPUT --plot FILE.png`: one figure of what an output holds.

Left: the vectors projected on their first two principal components (numpy SVD on the driver, no Spark),
one colour per label. Right: images with a vector per label, and the failed images in a bar of their own.
The title names the model, image size and dimension. Matplotlib's Agg backend: no display needed.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from sparkyfruit.errors import ConfigError
from sparkyfruit.s3_settings import S3Settings

WIDTH_PX, HEIGHT_PX, DPI = 1600, 700, 100
POINTS = 50_000  # beyond this many vectors, the figure shows a sample of about this many


def project_2d(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) coordinates on the two leading principal components, and the variance share of each."""
    centered = vectors - vectors.mean(axis=0)
    _, singular, components = np.linalg.svd(centered, full_matrices=False)
    variance = singular**2
    share = variance[:2] / variance.sum() if variance.sum() > 0 else np.zeros(2)
    return centered @ components[:2].T, share


def bar_rows(labels_with_vectors: list[str], failed: int) -> list[tuple[str, int]]:
    """(name, images) for the bar chart: each label counts its images that have a vector, and the failed
    ones are counted once, in a "failed" bar of their own."""
    counts = Counter(labels_with_vectors)
    return [(name, counts[name]) for name in sorted(counts)] + [("failed", failed)]


def plot_output(output: str, target: str | Path, s3: S3Settings, summary) -> Path:
    """Write the figure for `output` to `target` (a .png path); `summary` is inspect's result."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sparkyfruit.output_format import finished_output, load_vectors

    target = Path(target)
    if target.suffix.lower() != ".png":
        raise ConfigError(f"--plot writes a PNG; got {str(target)!r}.", "Give a file name ending in .png.")
    if not target.parent.is_dir():
        raise ConfigError(f"--plot folder does not exist: {str(target.parent)!r}.", "Create it, or pick another path.")
    loaded = load_vectors(finished_output(output, s3), at_most=POINTS)  # a scatter shows no more
    labels, vectors, column = loaded.labels, loaded.vectors, loaded.column
    shown = f"a sample of {len(vectors):,} of {loaded.rows:,}" if loaded.sampled else f"{len(vectors):,}"
    points, share = project_2d(vectors)
    names = sorted(set(labels))
    colours = plt.get_cmap("tab20" if len(names) > 10 else "tab10")

    figure, (scatter, bars) = plt.subplots(
        1, 2, figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI, gridspec_kw={"width_ratios": [3, 2]}
    )
    label_array = np.asarray(labels)
    for index, name in enumerate(names):
        mine = points[label_array == name]
        scatter.scatter(mine[:, 0], mine[:, 1], s=18, alpha=0.8, color=colours(index % colours.N), label=name)
    scatter.set_xlabel(f"PC 1 ({share[0]:.0%} of variance)")
    scatter.set_ylabel(f"PC 2 ({share[1]:.0%} of variance)")
    scatter.set_title(f"{shown} vectors ({column}), first two principal components")
    scatter.grid(alpha=0.3)
    scatter.legend(loc="best", fontsize=8, markerscale=1.2, ncol=2 if len(names) > 8 else 1)

    rows = bar_rows(labels, summary.failed)
    positions = np.arange(len(rows))
    bar_colours = [colours(names.index(n) % colours.N) if n in names else "grey" for n, _ in rows[:-1]] + ["firebrick"]
    bars.barh(positions, [c for _, c in rows], color=bar_colours)
    bars.set_yticks(positions, [n for n, _ in rows], fontsize=9)
    bars.invert_yaxis()
    for position, (_, count) in zip(positions, rows):
        bars.text(count, position, f" {count}", va="center", fontsize=9)
    bars.set_xlabel("images")
    per_label = "in the sample" if loaded.sampled else "per label"
    bars.set_title(f"encoded images {per_label} ({summary.rows:,} rows, {summary.failed:,} failed)")
    bars.margins(x=0.15)

    figure.suptitle(f"{summary.output}: {summary.model}, {summary.image_size} px, {summary.dim}-d", fontsize=13)
    figure.tight_layout()
    figure.savefig(target, dpi=DPI)
    plt.close(figure)
    return target
