"""`datawhisperer report DIR`: one self-contained HTML page for a selection run or a bench directory."""

from __future__ import annotations

import base64
import html
import io
import json
import re
from pathlib import Path

import numpy as np

from ..data import atomic_write_text, load_table
from ..errors import UserError
from ..extras import require
from ..fingerprint import content_hash
from ..methods import wording_of
from ..reliability import describe, verdict
from ..rundir import RunDirectory
from .command_configs import ReportConfig


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return f'<img alt="chart" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _plt():
    require("matplotlib", command="report")  # an extra: a plain `pip install .` selects but does not chart
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _page(title: str, body: str) -> str:
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
             "vertical-align:top;font-size:14px}th{background:#f4f4f4}pre{white-space:pre-wrap;margin:0}"
             "img{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>\n")


def _inline(text: str) -> str:
    """Markdown inline text as HTML: escaped, with `code` spans as <code> (the tables module writes both)."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{_inline(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def selection_report(run_dir: Path, n_examples: int) -> str:
    run = RunDirectory(run_dir)
    info, scores = run.info(), run.score_rows()
    values = np.array([s["score"] for s in scores if s["score"] is not None], dtype=np.float64)
    plt = _plt()
    parts = []
    facts = {k: info.get(k) for k in ("method", "pool_size", "episodes", "failed_episodes", "layer", "query_source",
                                      "rounds_played", "reliability_by_round", "selection_seconds",
                                      "model_load_seconds", "peak_rss_mb")}
    facts["model"] = (info.get("model") or {}).get("model")
    config = info.get("config", {})
    facts.update({k: config.get(k) for k in ("data", "task", "estimator", "panel", "n_demos", "n_queries", "rounds",
                                             "seed", "weighting", "query_mode", "scoring",
                                             "strategy", "target_filter")})
    kept = info.get("target_filter")
    if kept and kept.get("on_task") is not None:
        facts["records like the --val examples"] = f"{kept['on_task']} of {kept['pool']} (the subsets come from them)"
    parts.append("<h2>Run</h2>" + _table(["fact", "value"], [[html.escape(k), html.escape(str(v))]
                                                             for k, v in facts.items() if v is not None]))
    reliability = info.get("reliability")
    if reliability:
        wording = wording_of(reliability["estimator"])
        warning = verdict(reliability, wording)
        parts.append(f"<h2>Reliability</h2><p>{html.escape(describe(reliability, wording))}</p>"
                     + (f"<p><b>Warning:</b> {html.escape(warning)}.</p>" if warning else ""))
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.hist(values, bins=40)
    ax.set_xlabel("score")
    ax.set_ylabel("examples")
    fig.tight_layout()
    parts.append(f"<h2>Score distribution</h2><p>{len(values)} scored, {len(scores) - len(values)} unscored.</p>"
                 + _png(fig))
    parts.append(_measured(run, plt))
    records, why_not = _pool_records(info, run_dir)
    if records is None:
        parts.append(f"<p>Records are not shown: {html.escape(why_not)}.</p>")
    ranked = sorted((s for s in scores if s["score"] is not None), key=lambda s: -s["score"])
    top = min(n_examples, (len(ranked) + 1) // 2)  # on a small pool the two tables share no example
    bottom = ranked[max(top, len(ranked) - n_examples):][::-1]
    for title, chosen in (("Top examples", ranked[:top]), ("Bottom examples", bottom)):
        rows = [[str(s["index"]), f"{s['score']:.5f}", str(s["appearances"]),
                 f"<pre>{html.escape(json.dumps(records[s['index']], ensure_ascii=False)[:1500])}</pre>"
                 if records else ""] for s in chosen]
        parts.append(f"<h2>{title}</h2>" + _table(["index", "score", "appearances", "record"], rows))
    return _page(f"datawhisperer selection: {run_dir}", "".join(parts))


def _measured(run: RunDirectory, plt) -> str:
    """What the run's episodes measured: the attention weight by demonstration slot where episodes show several
    demonstrations; where each shows one (the calibrated estimator), each example's coherence."""
    outcomes = list(run.outcomes().values())
    coherence = [o.coherence for o in outcomes if len(o.demos) == 1 and o.coherence is not None]
    if outcomes and all(len(o.demos) <= 1 for o in outcomes):
        if not coherence:
            return ""
        fig, ax = plt.subplots(figsize=(7, 3))
        ax.hist(coherence, bins=40)
        ax.set_xlabel("coherence: log-probability of the answer after its own input minus after none")
        ax.set_ylabel("examples")
        fig.tight_layout()
        low = sum(c < 0 for c in coherence)
        return ("<h2>Coherence of each example</h2><p>Each example is shown alone, so there are no positions to "
                f"compare; this is what the estimator adds to its in-context score. {low} of {len(coherence)} "
                "examples' answers are less likely after their own input than after none (swapped or broken "
                "records look like this).</p>" + _png(fig))
    by_slot: dict[int, list[float]] = {}
    for episode in outcomes:  # attention is measured whether or not the answers could be scored
        for slot, weight in enumerate(episode.weights):
            by_slot.setdefault(slot, []).append(weight)
    if by_slot:
        slots = sorted(by_slot)
        means = [float(np.mean(by_slot[s])) for s in slots]
        fig, ax = plt.subplots(figsize=(7, 3))
        ax.bar([s + 1 for s in slots], means)
        ax.set_xlabel("demonstration position in the prompt (1 = first)")
        ax.set_ylabel("mean attention weight")
        fig.tight_layout()
        return ("<h2>Attention weight by demonstration position</h2><p>"
                + ", ".join(f"{m:.3f}" for m in means) + "</p>" + _png(fig))
    return ""


def _pool_records(info: dict, run_dir: Path) -> tuple[list[dict] | None, str]:
    """The run's pool, or why it cannot be shown. `select` records the pool's absolute path; a relative one
    (older runs) is looked for from here and from the run directory upwards, and any file found must be
    the one the run scored (its fingerprint), so that no other file's records are shown by mistake."""
    data = (info.get("config") or {}).get("data")
    if not data:
        return None, "the pool was given as records in memory"
    expected = (info.get("fingerprint") or {}).get("data")
    path = Path(data)
    candidates = [path]
    if expected and not path.is_absolute():
        candidates += [d / path for d in [run_dir, *run_dir.resolve().parents]]
    found = [c for c in candidates if c.exists()]
    if not found:
        return None, f"the pool {data} is not found from here"
    match = next((c for c in found if expected is None or content_hash(c) == expected), None)
    if match is None:
        return None, f"{found[0]} is not the pool this run scored (it changed since)"
    return load_table(match).records, ""


def bench_report(bench_dir: Path) -> str:
    from .tables import charts, collect, markdown

    results = collect(bench_dir)
    config = json.loads((bench_dir / "results.json").read_text(encoding="utf-8")).get("config", {})
    images = ""
    for path in charts(results, bench_dir / "charts"):
        images += f'<h2>{html.escape(path.stem)}</h2><img alt="{path.stem}" src="data:image/png;base64,' \
                  f'{base64.b64encode(path.read_bytes()).decode()}">'
    return _page(f"datawhisperer benchmark: {bench_dir}", _markdown_blocks(markdown(results, config)) + images)


def _markdown_blocks(text: str) -> str:
    """The tables module's Markdown (a heading, paragraphs, pipe tables) as HTML."""
    parts = []
    for block in text.strip().split("\n\n"):
        lines = block.splitlines()
        if lines[0].startswith("# "):
            continue  # the page has its own title
        if lines[0].startswith("|"):
            rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
            parts.append(_table(rows[0], [[_inline(c) for c in row] for row in rows[2:]]))
        else:
            parts.append(f"<p>{_inline(' '.join(lines))}</p>")
    return "".join(parts)


def report(config: ReportConfig) -> Path:
    run_dir = Path(config.run_dir)
    if (run_dir / "results.json").exists():
        page = bench_report(run_dir)
    elif RunDirectory(run_dir).finished():
        page = selection_report(run_dir, config.examples)
    else:
        raise UserError(f"{run_dir} is neither a finished selection run nor a bench directory")
    out = Path(config.out) if config.out else run_dir / "report.html"
    atomic_write_text(out, page)
    print(f"wrote {out}")
    return out
