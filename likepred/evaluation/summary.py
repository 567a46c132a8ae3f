"""The table printed at the end of each run."""

ROWS = [
    ("MAPE %", "test_mape"),
    ("  baseline user mean", "baseline_user_mean_mape"),
    ("  baseline best constant", "baseline_best_constant_mape"),
    ("MdAPE %", "test_mdape"),
    ("RMSE log", "test_rmse_log"),
    ("Spearman", "test_spearman"),
    ("Spearman within user", "test_spearman_within_user"),
]
BASELINES = [("the user mean", "baseline_user_mean_mape"), ("the best constant", "baseline_best_constant_mape")]
DIFFS = {"baseline_user_mean_mape": "test_mape_vs_user_mean", "baseline_best_constant_mape": "test_mape_vs_best_constant"}


def _fmt(v):
    return "-" if v is None or v != v else f"{v:8.3f}" if abs(v) < 10 else f"{v:8.2f}"


def _known(v) -> bool:
    return v is not None and v == v


def verdict(metrics: dict) -> str:
    """Which baseline the model's test MAPE beats or loses to, and by how many points; with
    intervals (evaluate.bootstrap), a difference whose 95% interval holds 0 is a tie."""
    mape = metrics.get("test_mape")
    if not _known(mape):
        return ""
    parts = []
    for name, key in BASELINES:
        base = metrics.get(key)
        if not _known(base):
            continue
        gap = mape - base
        lo, hi = metrics.get(f"{DIFFS[key]}_ci_low"), metrics.get(f"{DIFFS[key]}_ci_high")
        if _known(lo) and _known(hi) and lo <= 0 <= hi:  # an interval holding 0: a tie, never a win
            parts.append(f"ties with {name} ({base:.2f}): {gap:+.2f} points, 95% interval [{lo:+.2f}, {hi:+.2f}]")
        elif abs(gap) < 0.005:
            parts.append(f"ties with {name} ({base:.2f})")
        else:
            parts.append(f"{'beats' if gap < 0 else 'loses to'} {name} ({base:.2f}) by {abs(gap):.2f} points")
    return f"test MAPE {mape:.2f} " + " and ".join(parts) if parts else ""


def interval_line(metrics: dict, prefix: str = "test", suffix: str = "") -> str:
    """`test MAPE 32.2 [28.2, 37.3]; vs best constant -1.5 [-3.7, +1.0]: not significant` (from the
    bootstrap metrics; empty when the run has none). A difference whose interval holds 0 is a tie."""
    from likepred.evaluation.intervals import describe, verdict_word

    key = f"{prefix}_mape{suffix}"
    if not _known(metrics.get(f"{key}_ci_low")):
        return ""
    parts = [f"{prefix} MAPE{suffix.replace('_', ' ')} " + describe(metrics[key], metrics[f"{key}_ci_low"], metrics[f"{key}_ci_high"])]
    for name in ("best_constant", "user_mean"):
        d = f"{prefix}_mape_vs_{name}{suffix}"
        if _known(metrics.get(d)):
            lo, hi = metrics[f"{d}_ci_low"], metrics[f"{d}_ci_high"]
            parts.append(f"vs {name.replace('_', ' ')} {describe(metrics[d], lo, hi, signed=True)}: {verdict_word(lo, hi)}")
    return "; ".join(parts)


def format_summary(title: str, metrics: dict, sizes: dict, run_id=None, uri=None) -> str:
    lines = [title, "rows: " + ", ".join(f"{k} {v}" for k, v in sizes.items()), ""]
    lines.append(f"{'metric':26}{'all':>10}{'mature':>10}")
    for label, key in ROWS:
        lines.append(f"{label:26}{_fmt(metrics.get(key)):>10}{_fmt(metrics.get(key + '_mature')):>10}")
    lines.append(f"{'mape_vs_baseline':26}{_fmt(metrics.get('mape_vs_baseline')):>10}   (test MAPE - baseline user mean)")
    said = verdict(metrics)
    if said:
        lines += ["", said]
    intervals = [t for t in (interval_line(metrics, "val"), interval_line(metrics), interval_line(metrics, suffix="_mature")) if t]
    if intervals:
        lines += ["", "95% intervals (bootstrap over users; differences paired, model - baseline):", *intervals]
    if run_id:
        lines.append(f"\nMLflow run {run_id}: likepred ui --backend-store-uri {uri}")
    return "\n".join(lines)
