"""The computation-times page, ``sg_execution_times``, made from the recipes' records.

sphinx-gallery's own page loads jQuery and DataTables from CDNs, so the site
turns it off (``write_computation_times: False``) and writes this one instead,
after the gallery is generated: a bar chart of run times as inline SVG and a
table of time, peak memory and device per recipe. ``recipes.js`` makes the
table sortable; without JavaScript it is a plain table sorted by time.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from . import records, report

PAGE = "sg_execution_times"
# sphinx-gallery's label for its page, kept so that references to it still work.
LABEL = "sphx_glr_sg_execution_times"


def _num(value, digits: int = 1) -> str:
    return f"{value:.{digits}f}" if value else "–"


def chart(rows: list[dict]) -> str:
    """An SVG bar chart of the run time of each executed recipe, longest first."""
    ran = sorted(
        (r for r in rows if r.get("status") == "executed" and r.get("seconds")),
        key=lambda r: (-r["seconds"], r["recipe"]),
    )
    if not ran:
        return ""
    # Labels are 12px monospace: about 7.3px a character.
    bar, gap, plot_w, value_w = 18, 6, 300, 70
    label_w = 16 + round(7.3 * max(len(r["recipe"]) for r in ran))
    height = len(ran) * (bar + gap) + gap
    width = label_w + plot_w + value_w
    longest = ran[0]["seconds"]
    parts = [
        f'<svg class="recipe-chart" role="img" aria-labelledby="recipe-chart-title" '
        f'viewBox="0 0 {width} {height}" width="100%" preserveAspectRatio="xMinYMin meet" '
        'xmlns="http://www.w3.org/2000/svg">',
        '<title id="recipe-chart-title">Run time of each executed recipe, in seconds</title>',
    ]
    for i, r in enumerate(ran):
        y = gap + i * (bar + gap)
        w = max(1.0, plot_w * r["seconds"] / longest)
        parts.append(
            f'<g class="recipe-chart-row"><text class="recipe-chart-label" x="{label_w - 8}" '
            f'y="{y + bar * 0.72:.1f}" text-anchor="end">{escape(r["recipe"])}</text>'
            f'<rect class="recipe-chart-bar" x="{label_w}" y="{y}" width="{w:.1f}" '
            f'height="{bar}" rx="3"><title>{escape(r["recipe"])}: {r["seconds"]:.1f} s</title>'
            f'</rect><text class="recipe-chart-value" x="{label_w + w + 6:.1f}" '
            f'y="{y + bar * 0.72:.1f}">{r["seconds"]:.1f} s</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def page(rows: list[dict], torch: str, host: str) -> str:
    """reST of the whole page."""
    ran = [r for r in rows if r.get("status") == "executed"]
    total = sum(r.get("seconds") or 0 for r in ran)
    title = "Computation times"
    out = [
        ":orphan:\n",
        f".. _{LABEL}:\n",
        f"{title}\n{'=' * len(title)}\n",
        f"{len(ran)} of {len(rows)} recipes have output from an executed run, "
        f"{total:.1f} s in all. This build used PyTorch {torch} on {host}. "
        "Select a column heading to sort the table by it.\n",
    ]
    svg = chart(rows)
    if svg:
        out.append(".. raw:: html\n\n   " + svg + "\n")
    else:
        out.append("No recipe has output from an executed run in this build.\n")
    out.append(
        ".. list-table:: Time, peak memory and device of each recipe\n"
        "   :header-rows: 1\n"
        "   :class: recipe-times recipe-sortable\n\n"
        "   * - Recipe\n     - Status\n     - Time (s)\n     - Peak CPU memory (MB)\n"
        "     - Peak CUDA memory (MB)\n     - Device\n"
    )
    order = sorted(rows, key=lambda r: (-(r.get("seconds") or 0), r["recipe"]))
    for r in order:
        out.append(
            f"   * - :doc:`/{r['docname']}`\n"
            f"     - {r['status']}\n"
            f"     - {_num(r.get('seconds'))}\n"
            f"     - {_num(r.get('peak_rss_mb'), 0)}\n"
            f"     - {_num(r.get('peak_cuda_mb'), 0)}\n"
            f"     - {r.get('device') or '–'}\n"
        )
    return "\n".join(out)


def write(app) -> None:
    """``builder-inited``, after sphinx-gallery generated the gallery: write the page."""
    gconf = app.config.sphinx_gallery_conf
    root = records.gallery_root(gconf)
    # Pages sphinx-gallery wrote before it was told not to: remove them and
    # their built HTML, which loads scripts from CDNs.
    for stale in root.rglob(f"{PAGE}.rst"):
        rel = stale.relative_to(app.srcdir).with_suffix(".html")
        stale.unlink()
        (Path(app.outdir) / rel).unlink(missing_ok=True)
    manifest = records.read_manifest(root)
    rows = report.collect(manifest)
    text = page(rows, manifest.get("torch", ""), report.devices(rows, manifest))
    path = Path(app.srcdir) / f"{PAGE}.rst"
    # Rewrite only on change, or Sphinx would re-read the page on every build.
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
