"""The HTTP server: a trained run behind FastAPI, with a web page where a person drops an image.

GET /health, GET /model (task, classes, input, metrics), POST /predict (an image or volume file, the files
of one DICOM series, or a zip of them) -> JSON with the task's record, its pictures as base64 PNG and, for
3D inputs, the volume and predicted label map as NIfTI for the page's viewer (NiiVue, shipped in static/);
/docs (OpenAPI), and the page at /. What a task writes is not known here: each record's "images" ({label:
[PNG paths]}) become data URLs and every other JSON-able entry is passed on. Uploads live in a private
temporary folder that is removed after each request; the only files read besides them are the run's own
and the page's static files, looked up by fixed name.
"""

from __future__ import annotations

import base64
import json
import tempfile
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response

from medsight import __version__
from medsight.errors import MedsightError
from medsight.inference.predictor import Predictor
from medsight.io.images import IMAGE_SUFFIXES
from medsight.io.inputs import discover_inputs
from medsight.jsonio import jsonable
from medsight.serving.limits import BearerToken, BodyLimit
from medsight.serving.uploads import UploadError, check_self_contained, check_voxels, problem_text, save_uploads
from medsight.serving.volumes import viewer_volumes
from medsight.serving.voxels import MAX_VOXELS

MAX_UPLOAD_MB = 64
# The page's files, by the only names the server will serve.
STATIC = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8",
          "niivue.umd.js": "text/javascript; charset=utf-8", "niivue-LICENSE.txt": "text/plain; charset=utf-8"}
PICTURE_FOLDERS = ("overlays", "explain", "slices")  # where pictures meant for people are written
MAX_INLINE_JSON = 4 << 20


def static_bytes(name: str) -> bytes:
    return resources.files("medsight.serving").joinpath("static", name).read_bytes()


def data_url(path: str | Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def public_record(record: dict[str, Any], out_dir: Path) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """A task's record made fit to send: pictures become data URLs, JSON result files are inlined, and no
    server path is left in it (other files written for the request are named, not sent)."""
    images = {label: [data_url(p) for p in paths] for label, paths in record.get("images", {}).items()}
    public: dict[str, Any] = {}
    for key, value in record.items():
        if key in ("images", "arrays", "name"):
            continue
        paths = [Path(v) for v in (value if isinstance(value, list) else [value]) if isinstance(v, str)]
        inside = [p for p in paths if p.is_absolute() and out_dir in p.parents]
        if not paths or len(paths) != len(value if isinstance(value, list) else [value]):
            public[key] = value
        elif inside and all(p.suffix == ".png" and p.parent.name in PICTURE_FOLDERS for p in inside):
            images[key] = [data_url(p) for p in inside]
        elif len(inside) == 1 and inside[0].suffix == ".json" and inside[0].stat().st_size <= MAX_INLINE_JSON:
            public[key] = json.loads(inside[0].read_text(encoding="utf-8"))
        elif inside:
            public[key] = [p.name for p in inside] if isinstance(value, list) else inside[0].name
        elif not any(p.is_absolute() for p in paths):
            public[key] = value  # plain text such as a class name
    return public, images


def scrub(value: Any, folder: str, name: str) -> Any:
    """Every string naming a file of the request's folder becomes the upload's name (no server path leaks)."""
    if isinstance(value, str):
        return name if value.startswith(folder) else value
    if isinstance(value, dict):
        return {k: scrub(v, folder, name) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, folder, name) for v in value]
    return value


def response_body(predictor: Predictor, name: str, record: dict[str, Any], out_dir: Path, seconds: float) -> dict[str, Any]:
    """The JSON answer: the task's record without local paths, plus its pictures as data URLs."""
    prediction, images = public_record(record, out_dir)
    prediction = scrub(prediction, str(out_dir.parent), name)
    for key in ("file", "input"):
        prediction.pop(key, None)  # the upload's own name is in "file" below
    return {"file": name, "task": predictor.task.name, "prediction": prediction, "images": images,
            "seconds": round(seconds, 4)}


def create_app(run: str | Path | Predictor, engine: str = "torch", max_upload_mb: int = MAX_UPLOAD_MB,
               concurrency: int = 2, threads: int | None = None, max_voxels: int = MAX_VOXELS,
               token: str | None = None, device: str | None = None) -> FastAPI:
    """The FastAPI application of one run (or of a ready Predictor, e.g. an ensemble).

    ``concurrency`` predictions run at once, each on ``threads`` onnxruntime threads (None: one per core).
    An upload over ``max_upload_mb`` bytes or whose headers declare more than ``max_voxels`` voxels gets 413;
    with ``token`` every route but /health needs ``Authorization: Bearer <token>``.
    """
    predictor = run if isinstance(run, Predictor) else Predictor([run], engine=engine, threads=threads, device=device)
    limit = int(max_upload_mb) << 20
    gate = threading.Semaphore(concurrency)  # more parallel predictions than cores only add waiting
    app = FastAPI(title="medsight", version=__version__,
                  description=f"{predictor.task.name} model served from a medsight run folder")
    app.state.predictor = predictor

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": f"internal error ({type(exc).__name__}); the server keeps running"}, 500)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(static_bytes("index.html"))

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in STATIC:
            raise HTTPException(404, "not found")
        return Response(static_bytes(name), media_type=STATIC[name])

    @app.get("/health")
    def health() -> dict[str, Any]:
        """The server is up and its model is loaded."""
        return {"status": "ok", "task": predictor.task.name, "engine": predictor.engine}

    @app.get("/model")
    def model() -> dict[str, Any]:
        """Task, classes, input format, operating point and evaluation metrics of the served run."""
        uploads = {"accepts": [*IMAGE_SUFFIXES, ".zip (one DICOM series)", "several DICOM files (one series)"], "max_upload_mb": int(max_upload_mb),
                   "max_voxels": int(max_voxels)}
        return jsonable({**predictor.describe(), "uploads": uploads})

    @app.post("/predict")
    def predict(file: list[UploadFile] = File(..., description="an image or volume, the files of one DICOM "
                                                             "series (this field repeated), or a zip of them"),
                explain: bool = Form(False, description="also return Grad-CAM heat maps where the task has them")
                ) -> JSONResponse:
        """Predict one uploaded image, volume or DICOM series; the answer holds the result, its pictures (base64
        PNG) and, for a 3D input, "volumes": the image and its label map as NIfTI data URLs."""
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="medsight-serve-") as tmp:
            upload_dir = Path(tmp) / "upload"
            name = "upload"
            try:
                source, name = save_uploads([(part.file, part.filename) for part in file], upload_dir, limit)
                inputs = discover_inputs([source])
                if len(inputs) != 1:
                    raise UploadError(400, f"{name}: holds {len(inputs)} images; send one image or one DICOM series")
                check_self_contained(inputs[0], name)
                check_voxels(inputs[0], name, max_voxels)
                with gate:
                    records = predictor.predict_files(inputs, Path(tmp) / "out", explain=explain)
                volumes = viewer_volumes(records[0], Path(tmp) / "out")
                body = response_body(predictor, name, records[0], Path(tmp) / "out", time.perf_counter() - started)
                if volumes:
                    body["volumes"] = volumes
            except UploadError as exc:
                return JSONResponse({"detail": exc.message}, exc.status)
            except MedsightError as exc:
                return JSONResponse({"detail": problem_text(exc, upload_dir, name)}, 400)
        return JSONResponse(jsonable(body))

    app.add_middleware(BodyLimit, limit_bytes=limit + (1 << 20), shown_limit_mb=int(max_upload_mb))  # room for the multipart framing
    if token:
        app.add_middleware(BearerToken, token=token, open_paths=("/health",))  # outermost: checked before the body
    return app


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def serve(run: str | Path, host: str = "127.0.0.1", port: int = 8000, engine: str = "torch",
          threads: int = 1, concurrency: int | None = None, token: str | None = None,
          max_upload_mb: int = MAX_UPLOAD_MB, max_voxels: int = MAX_VOXELS, device: str = "auto") -> None:
    """Run the server under uvicorn until interrupted (``concurrency`` defaults to one prediction per core).

    Binding to anything but loopback needs a token: a model on a network is not left open to anyone.
    """
    import os
    import sys

    if host not in LOOPBACK and not token:
        raise MedsightError(None, f"serve refuses to listen on {host} without a token: give --token or set "
                                  "MEDSIGHT_TOKEN (clients then send Authorization: Bearer <token>)")
    import torch
    import uvicorn

    # one thread per prediction and one prediction per core: requests overlap instead of fighting for cores
    cores = max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
    torch.set_num_threads(threads)
    app = create_app(run, engine=engine, concurrency=concurrency or cores, threads=threads, token=token,
                     max_upload_mb=max_upload_mb, max_voxels=max_voxels, device=device)
    print(f"serving {run} ({app.state.predictor.task.name}, {engine}) at http://{host}:{port}/  (API docs: /docs)",
          file=sys.stderr, flush=True)
    uvicorn.run(app, host=host, port=port, log_level="info")
