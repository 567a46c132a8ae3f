"""Cloud Vision labelling against a local gRPC server speaking the real Vision API.

The real ImageAnnotatorClient talks to a `grpc.server` on 127.0.0.1 that answers
BatchAnnotateImages with labels derived from the pixels of tiny PNGs.
"""

import io
import json
import threading
from concurrent import futures

import pytest

grpc = pytest.importorskip("grpc", reason="grpcio is not installed: pip install -e '.[test]'")
vision_v1 = pytest.importorskip(
    "google.cloud.vision_v1", reason="google-cloud-vision is not installed: pip install -e '.[test]'"
)
from PIL import Image  # noqa: E402

from likepred.errors import DataError, LikepredError  # noqa: E402
from likepred.labels.labelfile import load_labels, save_labels  # noqa: E402
from likepred.labels.vision import annotate, errors_path_for, make_client  # noqa: E402

COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "black": (0, 0, 0)}


class FakeVision:
    """Labels: the colour of pixel (0, 0) with score 0.9, then 'pixel', 'square', ...;
    faces: image width - 1; a black image gets a per-image error."""

    EXTRA = ["pixel", "square", "art", "pattern"]

    def __init__(self, fail_first=()):
        self.requests = []  # one BatchAnnotateImagesRequest per call, failed ones included
        self.fail_first = list(fail_first)  # status codes for the first calls
        self.lock = threading.Lock()

    def batch_annotate(self, request, context):
        with self.lock:
            self.requests.append(request)
            fail = self.fail_first.pop(0) if self.fail_first else None
        if fail is not None:
            context.abort(fail, "try again")
        out = vision_v1.BatchAnnotateImagesResponse()
        for r in request.requests:
            out.responses.append(self.one(r))
        return out

    def one(self, r):
        img = Image.open(io.BytesIO(r.image.content)).convert("RGB")
        rgb = img.getpixel((0, 0))
        res = vision_v1.AnnotateImageResponse()
        if rgb == (0, 0, 0):
            res.error.code = 3
            res.error.message = "Bad image data."
            return res
        types = {f.type_: f for f in r.features}
        label = types.get(vision_v1.Feature.Type.LABEL_DETECTION)
        if label:
            colour = next(n for n, c in COLOURS.items() if c == rgb)
            names = [colour, *self.EXTRA][: label.max_results]
            for k, n in enumerate(names):
                res.label_annotations.append(vision_v1.EntityAnnotation(description=n, score=0.9 - 0.1 * k))
        if vision_v1.Feature.Type.FACE_DETECTION in types:
            for _ in range(img.width - 1):
                res.face_annotations.append(vision_v1.FaceAnnotation(detection_confidence=0.8))
        return res


@pytest.fixture
def server():
    fake = FakeVision()
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handler = grpc.method_handlers_generic_handler(
        "google.cloud.vision.v1.ImageAnnotator",
        {
            "BatchAnnotateImages": grpc.unary_unary_rpc_method_handler(
                fake.batch_annotate,
                request_deserializer=vision_v1.types.BatchAnnotateImagesRequest.deserialize,
                response_serializer=vision_v1.types.BatchAnnotateImagesResponse.serialize,
            )
        },
    )
    srv.add_generic_rpc_handlers((handler,))
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    fake.client = make_client(channel=channel)
    yield fake
    channel.close()
    srv.stop(0)


def png(folder, name, colour, faces=0):
    path = folder / name
    Image.new("RGB", (faces + 1, 1), COLOURS[colour]).save(path)
    return path


def images(folder, n):
    return [png(folder, f"img{i:03d}.png", ["red", "green", "blue"][i % 3], faces=i % 4) for i in range(n)]


def run(fake, paths, out, **kw):
    kw = {"backoff": 0.0, "progress": False, **kw}
    return annotate(paths, out, client=fake.client, **kw)


def test_labels_and_faces_reach_the_file(server, tmp_path):
    paths = [png(tmp_path, "a.png", "red", faces=2), png(tmp_path, "b.png", "blue")]
    out = tmp_path / "labels.json"
    report = run(server, paths, out, max_results=3)
    assert (report.annotated, report.calls_made, report.errors) == (2, 1, [])
    raw = json.loads(out.read_text())
    assert raw[0] == {"filename": "a.png", "numFaces": 2, "labels": {"red": 0.9, "pixel": 0.8, "square": 0.7}}
    assert load_labels(out)["b.png"] == {"numFaces": 0, "labels": {"blue": 0.9, "pixel": 0.8, "square": 0.7}}
    # What was sent: the image bytes and both features.
    sent = server.requests[0].requests[0]
    assert sent.image.content == paths[0].read_bytes()
    assert {(f.type_, f.max_results) for f in sent.features} >= {(vision_v1.Feature.Type.LABEL_DETECTION, 3)}
    assert vision_v1.Feature.Type.FACE_DETECTION in {f.type_ for f in sent.features}


def test_transient_unavailable_is_retried(server, tmp_path):
    server.fail_first = [grpc.StatusCode.UNAVAILABLE]
    report = run(server, images(tmp_path, 3), tmp_path / "labels.json")
    assert (report.calls_made, report.annotated) == (2, 3)
    assert len(server.requests) == 2


def test_other_errors_are_not_retried(server, tmp_path):
    server.fail_first = [grpc.StatusCode.PERMISSION_DENIED]
    with pytest.raises(LikepredError, match="request failed"):
        run(server, images(tmp_path, 3), tmp_path / "labels.json")
    assert len(server.requests) == 1


def test_retries_give_up(server, tmp_path):
    server.fail_first = [grpc.StatusCode.RESOURCE_EXHAUSTED] * 3
    with pytest.raises(LikepredError, match="after 2 retries"):
        run(server, images(tmp_path, 3), tmp_path / "labels.json", retries=2)
    assert len(server.requests) == 3


def test_per_image_error_is_recorded_and_others_saved(server, tmp_path):
    paths = [png(tmp_path, "a.png", "red"), png(tmp_path, "bad.png", "black"), png(tmp_path, "c.png", "green")]
    out = tmp_path / "labels.json"
    report = run(server, paths, out)
    assert report.errors == [("bad.png", "Bad image data.")]
    assert set(load_labels(out)) == {"a.png", "c.png"}
    assert errors_path_for(out) == str(tmp_path / "labels.errors.csv")
    assert (tmp_path / "labels.errors.csv").read_text().splitlines() == ["filename,message", "bad.png,Bad image data."]


def test_resume_sends_only_missing_images(server, tmp_path):
    paths = images(tmp_path, 20)
    out = tmp_path / "labels.json"
    save_labels(out, [{"filename": p.name, "numFaces": 0, "labels": {"old": 1.0}} for p in paths[:7]])
    report = run(server, paths, out)
    assert (report.already_done, report.annotated, report.calls_made) == (7, 13, 1)
    sent = server.requests[0].requests
    assert len(sent) == 13
    assert sent[0].image.content == paths[7].read_bytes()
    labels = load_labels(out)
    assert len(labels) == 20 and labels["img000.png"]["labels"] == {"old": 1.0}
    # A second run has nothing left to do.
    assert run(server, paths, out).calls_made == 0 and len(server.requests) == 1


def test_batches_of_at_most_16(server, tmp_path):
    report = run(server, images(tmp_path, 35), tmp_path / "labels.json")
    assert (report.calls_planned, report.calls_made, report.annotated) == (3, 3, 35)
    assert [len(r.requests) for r in server.requests] == [16, 16, 3]
    report = run(server, images(tmp_path, 40), tmp_path / "more.json", batch_size=10)
    assert [len(r.requests) for r in server.requests[3:]] == [10] * 4


def test_dry_run_makes_no_calls(server, tmp_path, capsys):
    out = tmp_path / "labels.json"
    report = annotate(images(tmp_path, 35), out, client=None, dry_run=True, progress=False)
    assert (report.calls_planned, report.calls_made) == (3, 0)
    assert server.requests == [] and not out.exists()
    assert "3 requests" in capsys.readouterr().err


def test_bad_batch_size(tmp_path):
    with pytest.raises(LikepredError, match="batch_size"):
        annotate([], tmp_path / "x.json", batch_size=17, dry_run=True)


def test_study_format_loads_as_is(tmp_path):
    path = tmp_path / "labels.json"
    path.write_text(json.dumps([
        {"filename": "2017-06-01_12-00-00_UTC.jpg", "numFaces": 3,
         "labels": {"Smile": 0.9560123, "Fun": 0.8, "Event": 1}},
        {"filename": "b.jpg", "numFaces": 0, "labels": {}},
    ]))
    labels = load_labels(path)
    assert labels["2017-06-01_12-00-00_UTC.jpg"] == {"numFaces": 3, "labels": {"Smile": 0.9560123, "Fun": 0.8, "Event": 1.0}}
    assert labels["b.jpg"] == {"numFaces": 0, "labels": {}}
    save_labels(path, labels)
    assert load_labels(path) == labels


@pytest.mark.parametrize(
    "content, record, field",
    [
        ('{"a": 1}', None, None),
        ('[{"filename": "a.jpg", "labels": {}}]', 0, "numFaces"),
        ('[{"filename": "a.jpg", "numFaces": 0, "labels": {}}, {"filename": 3, "numFaces": 0, "labels": {}}]', 1, "filename"),
        ('[{"filename": "a.jpg", "numFaces": -1, "labels": {}}]', 0, "numFaces"),
        ('[{"filename": "a.jpg", "numFaces": 1, "labels": {"x": "high"}}]', 0, "labels"),
        ('[{"filename": "a.jpg", "numFaces": 1, "labels": {}}, {"filename": "a.jpg", "numFaces": 1, "labels": {}}]', 1, "filename"),
        ("[{", None, None),
    ],
)
def test_load_labels_errors_name_file_record_field(tmp_path, content, record, field):
    path = tmp_path / "labels.json"
    path.write_text(content)
    with pytest.raises(DataError) as err:
        load_labels(path)
    assert (err.value.file, err.value.record, err.value.field) == (str(path), record, field)
    assert str(path) in str(err.value)
    if field:
        assert field in str(err.value)
