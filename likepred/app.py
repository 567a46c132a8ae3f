"""The experiment, top to bottom: data, split, features, model, fit, evaluate, log."""

from __future__ import annotations

import logging
import sys

from omegaconf import DictConfig

from likepred.errors import ConfigError, LikepredError

log = logging.getLogger("likepred")


def train(cfg: DictConfig) -> dict:
    """Run one experiment; return its metrics."""
    from likepred.backend import use_backend
    from likepred.data import load_dataset
    from likepred.evaluate import evaluate, predict_likes
    from likepred.features import build_features
    from likepred.images.grid import error_grid
    from likepred.models import build_model
    from likepred.pipeline import Pipeline
    from likepred.plots import predicted_vs_actual
    from likepred.split import make_split
    from likepred.summary import format_summary
    from likepred.targets import build_target
    from likepred.tracking import run_name, start_run

    use_backend(cfg.backend)
    data = load_dataset(cfg.data)
    split = make_split(data.posts, cfg.split)
    features = build_features(cfg.features, data)
    if features.leaky and cfg.split.kind != "legacy":
        raise ConfigError(f"features={cfg.features.name} uses likes of the predicted posts (the study's leak); "
                          "it is allowed only with split=legacy, to reproduce the study")
    pipeline = Pipeline(features, build_target(cfg.target), cfg.split.get("train_as_unseen", False))
    rows = lambda ix: data.posts.iloc[ix].reset_index(drop=True)  # noqa: E731
    train_d = pipeline.fit_transform(rows(split.train))
    val_d, test_d = pipeline.transform(rows(split.val)), pipeline.transform(rows(split.test))
    model = build_model(cfg)

    tags = {"leaky": str(features.leaky).lower(), "data_source": data.source,
            "dataset_hash": data.fingerprint(), "target": cfg.target.name}
    with start_run(cfg, tags) as run:
        model.fit(train_d, val_d, on_epoch=run.log_epoch)
        if cfg.evaluate.calibrate and len(val_d):
            scale = pipeline.calibrate(predict_likes(model, pipeline, val_d), val_d.posts["likes"])
            log.info("calibrated on val rows: predictions x %.3f", scale)
        metrics, predictions = evaluate(model, pipeline, train_d, val_d, test_d, data.scrape_date,
                                        cfg.evaluate.mature_days)
        run.log_results(metrics, predictions, model, cfg, predicted_vs_actual, pipeline, train_d, val_d)
        run.log_extras(features.reports(train=rows(split.train), test=rows(split.test)), features.write_artifacts)
        run.log_extras({}, error_grid(features, test_d.posts, predictions))  # image runs: the worst-predicted test images
    title = f"likepred {run_name(cfg)} on {data.source} data" + (" [LEAKY: study reproduction]" if features.leaky else "")
    print(format_summary(title, metrics, split.sizes(), run.run_id, cfg.tracking.uri), flush=True)
    return metrics


def run_job(cfg: DictConfig):
    """Hydra's task: train inside the job's MLflow run; return the optimised metric.

    The one owner of failure handling. In a sweep a failing job ends its run FAILED (error tag,
    traceback artifact) and returns None, so the other jobs go on, Optuna records the trial as
    failed, and the sweep exits 1 at its end naming the job. A finished job with the same config
    is skipped (resume). Alone, a LikepredError is one line for people, not a traceback.
    """
    from likepred.sweep import check_optimized_metric, current_job, prepare_job, reuse_finished, score
    from likepred.tracking import job_run

    job = current_job()
    try:
        if job is not None:
            prepare_job(cfg, job)
            done, value = reuse_finished(cfg, job)
            if done:
                return value
        with job_run(cfg, job):
            check_optimized_metric(cfg)
            metrics = train(cfg)
    except LikepredError as e:
        log.error("%s", e)
        if job is not None:
            return None
        print(f"likepred: error: {e}", file=sys.stderr)
        sys.exit(2)
    except Exception:
        if job is None:
            raise
        log.exception("job #%s failed", job.num)
        return None
    return score(metrics, cfg.optimized_metric)
