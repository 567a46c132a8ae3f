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


def _fmt(v):
    return "-" if v is None or v != v else f"{v:8.3f}" if abs(v) < 10 else f"{v:8.2f}"


def _known(v) -> bool:
    return v is not None and v == v


def verdict(metrics: dict) -> str:
    """Which baseline the model's test MAPE beats or loses to, and by how many points."""
    mape = metrics.get("test_mape")
    if not _known(mape):
        return ""
    parts = []
    for name, key in BASELINES:
        base = metrics.get(key)
        if not _known(base):
            continue
        gap = mape - base
        if abs(gap) < 0.005:
            parts.append(f"ties with {name} ({base:.2f})")
        else:
            parts.append(f"{'beats' if gap < 0 else 'loses to'} {name} ({base:.2f}) by {abs(gap):.2f} points")
    return f"test MAPE {mape:.2f} " + " and ".join(parts) if parts else ""


def format_summary(title: str, metrics: dict, sizes: dict, run_id=None, uri=None) -> str:
    lines = [title, "rows: " + ", ".join(f"{k} {v}" for k, v in sizes.items()), ""]
    lines.append(f"{'metric':26}{'all':>10}{'mature':>10}")
    for label, key in ROWS:
        lines.append(f"{label:26}{_fmt(metrics.get(key)):>10}{_fmt(metrics.get(key + '_mature')):>10}")
    lines.append(f"{'mape_vs_baseline':26}{_fmt(metrics.get('mape_vs_baseline')):>10}   (test MAPE - baseline user mean)")
    said = verdict(metrics)
    if said:
        lines += ["", said]
    if run_id:
        lines.append(f"\nMLflow run {run_id}: likepred ui --backend-store-uri {uri}")
    return "\n".join(lines)
