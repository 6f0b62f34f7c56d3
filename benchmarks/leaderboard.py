"""Render ``leaderboard.md`` from result records.

Deterministic: the same records give a byte-identical file (records are read in sorted order,
no clock or path appears in the output). One table per dataset and data fingerprint; synthetic
and real data in separate sections; mean ± sample std over all runs (seeds × folds); efficiency
columns are medians over runs.
"""
from __future__ import annotations

import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from metrics import METRIC_DIRECTIONS

from .records import iter_records

ORDER = {  # column order per task, primary first is applied on top of this
    "classification": ["wa", "ua", "wf1", "mf1"],
    "regression": ["mae", "corr", "acc2_has0", "f1_has0", "acc2_non0", "f1_non0", "acc5", "acc7"],
    "distribution": ["chebyshev", "clark", "canberra", "kl", "cosine", "intersection", "top1"],
}


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _clean(values: list[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and not math.isnan(float(v))]


def mean_std(values: list[float | None]) -> str:
    vals = _clean(values)
    if not vals:
        return "–"
    if len(vals) == 1:
        return f"{vals[0]:.4f}"
    return f"{statistics.mean(vals):.4f} ± {statistics.stdev(vals):.4f}"


def _median(values: list[float | None], fmt: str) -> str:
    vals = _clean(values)
    return format(statistics.median(vals), fmt) if vals else "–"


def _arrow(metric: str) -> str:
    return "↑" if METRIC_DIRECTIONS.get(metric, "max") == "max" else "↓"


def load(results: Path) -> tuple[list[dict[str, Any]], list[Path]]:
    good, bad = [], []
    for path, rec in iter_records(results):
        (good.append(rec) if rec is not None else bad.append(path))
    return good, bad


def _table(recs: list[dict[str, Any]]) -> list[str]:
    spec = recs[0]["spec"]
    task, primary, direction = _task(recs[0]), spec["primary_metric"], spec["primary_direction"]
    metrics = [m for m in ORDER.get(task, []) if m in recs[0]["test"]]
    metrics = [primary] + [m for m in metrics if m != primary]
    has_strata = any(r.get("strata") for r in recs)
    rows: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in recs:  # one row per configuration: records of different settings are never averaged
        rows[(r["model"], r.get("variant", ""), r.get("config_hash", ""))].append(r)
    labels = defaultdict(set)
    for model, variant, cfg in rows:
        labels[(model, variant)].add(cfg)

    def key(item):
        (model, variant, cfg), rs = item
        vals = _clean([r["test"].get(primary) for r in rs])
        m = statistics.mean(vals) if vals else math.nan
        score = (-m if direction == "max" else m) if not math.isnan(m) else math.inf
        return (score, model, variant, cfg)

    head = ["rank", "model", "runs", "seeds", "folds"] + [f"{'**' + m + '**' if m == primary else m} {_arrow(m)}"
                                                          for m in metrics]
    if has_strata:
        head += [f"{primary} conflicting", f"{primary} consistent"]
    head += ["params", "train s/run (median)", "samples/s (median)", "peak RSS MB (median, per run)"]
    lines = [_row(head), "|" + "|".join(["---"] * len(head)) + "|"]
    limit = recs[0].get("limit")
    if limit:
        cells = ["–", f"*Bayes limit* ({limit.get('method', 'Monte-Carlo')})", "–", "–", "–",
                 f"{limit['value']:.4f} ± {limit['se']:.4f} (MC se)"] + [""] * (len(metrics) - 1)
        cells += ([""] * 2 if has_strata else []) + [""] * 4
        lines.append(_row(cells))
    for rank, ((model, variant, cfg), rs) in enumerate(sorted(rows.items(), key=key), 1):
        name = f"`{model}`" + (f" [{variant}]" if variant else "")
        if any(r.get("reconstruction") for r in rs):  # e.g. TiCAL: no paper text, a documented design
            label = rs[0].get("model_label") or model
            name += f" — {label} (reconstruction)" if "reconstruction" not in label else f" — {label}"
        if len(labels[(model, variant)]) > 1:  # same label, different settings (e.g. changed defaults)
            name += f" (config {cfg})"
        cells = [str(rank), name, str(len(rs)), str(len({r['seed'] for r in rs})), str(len({r['fold'] for r in rs}))]
        cells += [mean_std([r["test"].get(m) for r in rs]) for m in metrics]
        if has_strata:
            for stratum in ("conflict", "consistent"):
                cells.append(mean_std([r.get("strata", {}).get(stratum, {}).get(primary) for r in rs]))
        cells += [_median([r.get("params") for r in rs], ",.0f"), _median([r.get("train_time_s") for r in rs], ".1f"),
                  _median([r.get("train_samples_per_s") for r in rs], ",.0f"),
                  _median([r.get("peak_memory_mb", {}).get("process_rss") for r in rs], ",.0f")]
        lines.append(_row(cells))
    return lines


def _task(rec: dict[str, Any]) -> str:
    return rec["spec"]["task"]


def render(records: list[dict[str, Any]]) -> str:
    groups: dict[tuple[bool, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[(bool(r.get("synthetic")), r["data"], r.get("data_fingerprint", ""))].append(r)
    names_per_data: dict[tuple[bool, str], int] = defaultdict(int)
    for synth, data, _ in groups:
        names_per_data[(synth, data)] += 1
    out = ["# affectbench leaderboard", "",
           f"Generated by `bench leaderboard` from {len(records)} result records; do not edit by hand.",
           "Cells are test metrics of the checkpoint selected on the **validation** split, as mean ± sample std "
           "over all runs (seeds × folds), as fractions (not %). ↑ higher is better, ↓ lower is better; the "
           "primary metric is in bold and sets the rank. Efficiency columns are medians over runs; "
           "they depend on the hardware named under each table.", ""]
    for synth, title, note in ((True, "Synthetic presets",
                                "Generated data with a known Bayes-optimal score (the *Bayes limit* row). "
                                "Never compare these numbers with real-data results."),
                               (False, "Real datasets", "")):
        keys = sorted(k for k in groups if k[0] == synth)
        out += [f"## {title}", ""]
        if note:
            out += [note, ""]
        if not keys:
            out += ["No records yet.", ""]
            continue
        for key in keys:
            recs = sorted(groups[key], key=lambda r: (r["model"], r.get("variant", ""), str(r["fold"]), r["seed"]))
            _, data, fp = key
            spec, proto = recs[0]["spec"], recs[0]["protocol"]
            named = spec.get("name", data)  # e.g. the manifest name of a `features` dataset
            heading = f"### {data}" + (f": {named}" if named != data else "") + \
                (f" (data {fp})" if names_per_data[(synth, data)] > 1 else "")
            out += [heading, "",
                    f"Task: {spec['task']} · primary: `{spec['primary_metric']}` ({_arrow(spec['primary_metric'])}) · "
                    f"protocol: {proto['kind']}, {len(proto['folds'])} fold(s) · data fingerprint `{fp}`", ""]
            out += _table(recs)
            hw = sorted({f"{r.get('hardware', {}).get('cpu', '?')} ({r.get('hardware', {}).get('gpu', 'no GPU')})"
                         for r in recs})
            out += ["", "Hardware: " + "; ".join(hw), ""]
    return "\n".join(out).rstrip() + "\n"


def write_leaderboard(results: Path, out: Path, echo=print) -> str:
    records, bad = load(results)
    if bad:
        echo(f"bench leaderboard: skipped {len(bad)} unreadable or unfinished record(s): "
             + ", ".join(str(p) for p in bad[:5]) + (" ..." if len(bad) > 5 else ""), file=sys.stderr)
    text = render(records)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text)
    tmp.replace(out)
    return text
