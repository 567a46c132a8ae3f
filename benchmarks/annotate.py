"""Throughput of `annotate` against a local fake Cloud Vision gRPC server.

Measures our side (reading images, building requests, proto round trips, rewriting
the label file after each batch), not Google's latency.

    python benchmarks/annotate.py [--images 320] [--batch-size 16]
"""

import argparse
import tempfile
import threading
from concurrent import futures
from pathlib import Path

import grpc
from google.cloud import vision_v1
from PIL import Image

from likepred.labels.vision import annotate, make_client


class FakeVision:
    """Answers every image with three labels and one face; counts requests."""

    def __init__(self):
        self.calls = 0
        self.lock = threading.Lock()

    def batch_annotate(self, request, context):
        with self.lock:
            self.calls += 1
        out = vision_v1.BatchAnnotateImagesResponse()
        for _ in request.requests:
            res = vision_v1.AnnotateImageResponse(
                label_annotations=[vision_v1.EntityAnnotation(description=d, score=0.9) for d in ("a", "b", "c")],
                face_annotations=[vision_v1.FaceAnnotation(detection_confidence=0.8)],
            )
            out.responses.append(res)
        return out


def start_server(fake):
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    srv.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "google.cloud.vision.v1.ImageAnnotator",
        {"BatchAnnotateImages": grpc.unary_unary_rpc_method_handler(
            fake.batch_annotate,
            request_deserializer=vision_v1.types.BatchAnnotateImagesRequest.deserialize,
            response_serializer=vision_v1.types.BatchAnnotateImagesResponse.serialize,
        )},
    ),))
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    return srv, f"127.0.0.1:{port}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=320)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    fake = FakeVision()
    srv, addr = start_server(fake)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            paths = []
            for i in range(args.images):
                p = folder / f"img{i:05d}.png"
                Image.new("RGB", (8, 8), (i % 256, 0, 0)).save(p)
                paths.append(p)
            client = make_client(channel=grpc.insecure_channel(addr))
            report = annotate(paths, folder / "labels.json", client=client,
                              batch_size=args.batch_size, progress=False)
    finally:
        srv.stop(0)
    print(report.summary())
    print(f"{report.annotated / report.seconds:.0f} images/s, {fake.calls} requests "
          f"for {args.images} images (batch size {args.batch_size})")


if __name__ == "__main__":
    main()
