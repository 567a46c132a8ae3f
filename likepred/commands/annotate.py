"""`likepred annotate images.dir=DIR labels.path=FILE [--dry-run]` (old spelling: `python -m likepred.labels
annotate ...`): see `--help`."""

from __future__ import annotations

import sys
from pathlib import Path

from likepred.errors import ConfigError, LikepredError

CONF = Path(__file__).resolve().parents[1] / "conf"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp"}
HELP = """\
likepred.labels: label images with Google Cloud Vision (LABEL_DETECTION and a face count),
written to the study's label file; resumable (a rerun sends only the images not in the file).

Usage: likepred annotate images.dir=DIR [labels.path=FILE] [key=value ...] [--dry-run]

  --dry-run    print how many images and requests a run would make (each costs money); send nothing
  -h, --help   this text

Credentials: gcloud auth application-default login, or GOOGLE_APPLICATION_CREDENTIALS=key.json.
Settings (Hydra overrides of conf/annotate.yaml and conf/labels/vision.yaml):

{config}
Then train on the labels: likepred data=... paths.labels=FILE features=labels_ae model=labels_dense
"""


def compose_config(overrides):
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    try:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return compose("annotate", overrides=list(overrides))
    except HydraException as e:
        raise ConfigError(" ".join(str(e).split())) from None


def list_images(folder) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"images.dir: not a folder: {folder}")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _setting(labels, key, kind):
    try:
        return kind(labels[key])
    except (TypeError, ValueError):
        raise ConfigError(f"labels.{key}: expected {kind.__name__}, got {labels[key]!r}") from None


def annotate_command(cfg, dry_run=False, client=None):
    from omegaconf import MissingMandatoryValue
    from omegaconf.errors import InterpolationToMissingValueError

    from likepred.labels.vision import annotate, errors_path_for, make_client

    try:
        folder, out = cfg.images.dir, cfg.labels.path
    except (MissingMandatoryValue, InterpolationToMissingValueError):
        raise ConfigError("images.dir is required: python -m likepred.labels annotate images.dir=DIR") from None
    paths = list_images(folder)
    if not paths:
        raise ConfigError(f"images.dir: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    lab = cfg.labels
    if client is None and not dry_run and lab.endpoint:  # else annotate() makes one, only if there is work
        client = make_client(endpoint=lab.endpoint)
    report = annotate(paths, out, client=client, dry_run=dry_run, max_results=_setting(lab, "max_results", int),
                      batch_size=_setting(lab, "batch_size", int), retries=_setting(lab, "retries", int),
                      backoff=_setting(lab, "backoff", float))
    if not dry_run:
        print(report.summary())
    if report.errors:
        print(f"{len(report.errors)} images failed (listed in {errors_path_for(out)}); a rerun retries them")
    return report


def main(argv=None, client=None) -> int:
    """`likepred annotate [KEY=VALUE ...] [--dry-run]`; returns the exit status; `client`: an
    ImageAnnotatorClient to use (tests)."""
    rest = list(sys.argv[1:] if argv is None else argv)
    if "-h" in rest or "--help" in rest:
        from omegaconf import OmegaConf

        print(HELP.format(config=OmegaConf.to_yaml(compose_config([]))))
        return 0
    dry_run = "--dry-run" in rest
    overrides = [a for a in rest if a != "--dry-run"]
    try:
        unknown = [a for a in overrides if a.startswith("-")]
        if unknown:
            raise ConfigError(f"unknown option {unknown[0]}; options: --dry-run, --help")
        annotate_command(compose_config(overrides), dry_run, client)
    except LikepredError as e:
        print(f"likepred.labels: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
