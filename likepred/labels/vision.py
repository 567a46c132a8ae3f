"""Label images with Google Cloud Vision: LABEL_DETECTION plus a face count.

Results go to the study's label file (see `labelfile`), rewritten after every
request so that an interrupted run loses at most one batch and a rerun only
sends the images that are not in the file yet.
"""

import csv
import io
import math
import os
import sys
import time
from dataclasses import dataclass, field

from tqdm.auto import tqdm

from likepred.errors import ConfigError, DataError, LikepredError, MissingDependencyError
from likepred.files import write_atomic
from likepred.labels.labelfile import load_labels, save_labels

MAX_BATCH = 16  # the API's limit on images per BatchAnnotateImages request
TIMEOUT_S = 120.0
MAX_SLEEP_S = 60.0
CREDENTIALS_HELP = (
    "no Google Cloud credentials found. Run `gcloud auth application-default login`, "
    "or set GOOGLE_APPLICATION_CREDENTIALS=key.json (a service-account key) "
    "for a project with the Cloud Vision API enabled"
)


@dataclass
class AnnotateReport:
    requested_images: int
    already_done: int
    calls_planned: int
    calls_made: int = 0  # RPCs sent, retries included
    annotated: int = 0
    errors: list = field(default_factory=list)  # (filename, message)
    seconds: float = 0.0

    def summary(self):
        return (
            f"{self.annotated} of {self.requested_images} images annotated "
            f"({self.already_done} already done), {len(self.errors)} errors, "
            f"{self.calls_made}/{self.calls_planned} requests, {self.seconds:.1f}s"
        )


def _vision():
    try:
        from google.cloud import vision_v1
    except ImportError:
        raise MissingDependencyError("google-cloud-vision", "gcv", "image labelling") from None
    return vision_v1


def make_client(endpoint=None, channel=None):
    """An ImageAnnotatorClient: on `channel` if given, else with application-default credentials."""
    vision = _vision()
    if channel is not None:
        if endpoint is not None:
            raise ConfigError("give either endpoint or channel for the Vision client, not both")
        from google.cloud.vision_v1.services.image_annotator.transports import ImageAnnotatorGrpcTransport

        return vision.ImageAnnotatorClient(transport=ImageAnnotatorGrpcTransport(channel=channel))
    from google.auth.exceptions import DefaultCredentialsError

    try:
        return vision.ImageAnnotatorClient(client_options={"api_endpoint": endpoint} if endpoint else None)
    except DefaultCredentialsError as e:
        raise LikepredError(CREDENTIALS_HELP) from e


def errors_path_for(labels_path):
    """Where per-image errors go: ``labels.json`` -> ``labels.errors.csv``."""
    return os.path.splitext(os.fspath(labels_path))[0] + ".errors.csv"


def annotate(image_paths, labels_path, client=None, max_results=10, batch_size=16,
             dry_run=False, retries=5, backoff=1.0, progress=True):
    """Annotate the images not yet in `labels_path`; returns an `AnnotateReport`."""
    if not 1 <= batch_size <= MAX_BATCH:
        raise ConfigError(f"batch_size must be between 1 and {MAX_BATCH}, got {batch_size}")
    if max_results < 1:
        raise ConfigError(f"max_results must be at least 1, got {max_results}")
    if retries < 0 or backoff < 0:
        raise ConfigError("retries and backoff must not be negative")
    started = time.perf_counter()
    paths = _by_name(image_paths)
    done = load_labels(labels_path) if os.path.exists(labels_path) else {}
    todo = [(name, p) for name, p in paths.items() if name not in done]
    report = AnnotateReport(len(paths), len(paths) - len(todo), math.ceil(len(todo) / batch_size))
    # Each image is billed once per feature, so say what a run costs before it starts.
    print(
        f"Cloud Vision: {len(todo)} images to annotate ({report.already_done} already in "
        f"{os.path.basename(labels_path)}) in {report.calls_planned} requests; "
        f"billed as {len(todo)} x 2 features" + (" [dry run, nothing sent]" if dry_run else ""),
        file=sys.stderr,
    )
    if dry_run or not todo:
        report.seconds = time.perf_counter() - started
        return report

    vision = _vision()
    client = client if client is not None else make_client()
    features = [
        vision.Feature(type_=vision.Feature.Type.LABEL_DETECTION, max_results=max_results),
        vision.Feature(type_=vision.Feature.Type.FACE_DETECTION),
    ]
    errors_path = errors_path_for(labels_path)
    if os.path.exists(errors_path):
        os.remove(errors_path)  # it described an earlier run; those images are retried now
    with tqdm(total=len(todo), unit="img", desc="Cloud Vision", disable=not progress) as bar:
        for i in range(0, len(todo), batch_size):
            batch = todo[i:i + batch_size]
            sent, requests = [], []
            for name, path in batch:
                try:
                    with open(path, "rb") as f:
                        content = f.read()
                except OSError as e:
                    report.errors.append((name, f"cannot read image: {e}"))
                    continue
                sent.append(name)
                requests.append(vision.AnnotateImageRequest(image=vision.Image(content=content), features=features))
            if requests:
                reply = _call(client, requests, retries, backoff, report, labels_path)
                if len(reply.responses) != len(requests):
                    raise LikepredError(
                        f"Cloud Vision answered {len(reply.responses)} results for {len(requests)} images"
                    )
                for name, r in zip(sent, reply.responses):
                    if r.error.message:
                        report.errors.append((name, r.error.message))
                    else:
                        done[name] = {"numFaces": len(r.face_annotations), "labels": _labels(r)}
                        report.annotated += 1
                save_labels(labels_path, done)
            if report.errors:
                _save_errors(errors_path, report.errors)
            bar.update(len(batch))
    report.seconds = time.perf_counter() - started
    return report


def _by_name(image_paths):
    """Map base name -> path; the label file is keyed by base name, so names must be unique."""
    paths = {}
    for p in image_paths:
        p = os.fspath(p)
        name = os.path.basename(p)
        if name in paths and os.path.abspath(paths[name]) != os.path.abspath(p):
            raise DataError(f"two images share the file name {name!r}: {paths[name]} and {p}", file=p)
        paths[name] = p
    return paths


def _labels(response):
    labels = {}
    for a in response.label_annotations:
        # Scores are float32 on the wire; 7 digits keeps 0.97 from becoming 0.9700000286.
        score = float(f"{a.score:.7g}")
        labels[a.description] = max(score, labels.get(a.description, score))
    return labels


def _call(client, requests, retries, backoff, report, labels_path):
    """One BatchAnnotateImages call, retried with exponential backoff on transient errors."""
    from google.api_core import exceptions as gexc
    from google.auth.exceptions import DefaultCredentialsError, RefreshError

    transient = (gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.ResourceExhausted)
    saved = f"{report.annotated} images saved to {labels_path}; rerun to resume"
    for attempt in range(retries + 1):
        report.calls_made += 1
        try:
            # retry=None: the client's own retry would otherwise stack on top of this loop.
            return client.batch_annotate_images(requests=requests, retry=None, timeout=TIMEOUT_S)
        except transient as e:
            if attempt == retries:
                raise LikepredError(f"Cloud Vision still failing after {retries} retries: {e} ({saved})") from e
            time.sleep(min(backoff * 2**attempt, MAX_SLEEP_S))
        except gexc.GoogleAPICallError as e:
            raise LikepredError(f"Cloud Vision request failed: {e} ({saved})") from e
        except (DefaultCredentialsError, RefreshError) as e:
            raise LikepredError(f"{CREDENTIALS_HELP} ({e}; {saved})") from e


def _save_errors(path, errors):
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["filename", "message"])
    w.writerows(errors)
    write_atomic(path, buf.getvalue())
