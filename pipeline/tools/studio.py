"""``syndgan studio``: the defect studio's web app (Starlette + uvicorn) on 127.0.0.1.

    syndgan studio [--checkpoint models/train_synth/synthesizer.pt] [--port 8765] [--host 127.0.0.1]

One static page (``syndgan/studio/static``: HTML + vanilla JS on a canvas, nothing from a CDN) and a
small JSON API over ``syndgan.studio.Studio``. Requests name images by manifest id or upload token and
results by id, never by path. Every refusal is ``{"error": "<field>: <problem>"}`` with a 4xx status.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pandas as pd
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

import syndgan.studio
from pipeline.config import Params
from pipeline.tools.cli import STUDIO_OUT, STUDIO_PORT
from syndgan.studio import ImageStore, Studio, StudioError
from syndgan.studio.images import png_bytes

log = logging.getLogger("syndgan.studio")

STATIC = Path(syndgan.studio.__file__).resolve().parent / "static"  # package data
NO_STORE = {"Cache-Control": "no-store"}


def _error(e: StudioError) -> JSONResponse:
    return JSONResponse({"error": str(e)}, status_code=e.status)


async def _json(request: Request) -> dict:
    try:
        body = json.loads(await request.body() or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise StudioError("request", "body is not valid JSON") from None
    if not isinstance(body, dict):
        raise StudioError("request", "body must be a JSON object")
    return body


async def _limited_body(request: Request, limit: int, name: str) -> bytes:
    """The upload, refused as soon as it passes ``limit`` (a huge body is never held in memory)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise StudioError("upload", f"{name}: {declared} bytes, over the limit of {limit} bytes", status=413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise StudioError("upload", f"{name}: over the limit of {limit} bytes", status=413)
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(studio: Studio) -> Starlette:
    static_files = {p.name: p for p in STATIC.iterdir() if p.is_file()}

    def guarded(handler):
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except StudioError as e:
                return _error(e)

        return endpoint

    async def index(request):
        return FileResponse(STATIC / "index.html", headers=NO_STORE)

    async def static(request):
        path = static_files.get(request.path_params["name"])  # a fixed set of names: no path reaches the disk
        if path is None:
            raise StudioError("static", f"{request.path_params['name']!r} not found", status=404)
        return FileResponse(path, headers=NO_STORE)

    async def info(request):
        return JSONResponse(studio.info())

    async def images(request):
        return JSONResponse({"images": studio.images.listing(request.query_params.get("split", "train"))})

    async def image(request):
        src = await run_in_threadpool(studio.images.get, request.query_params.get("id", ""))
        return Response(await run_in_threadpool(png_bytes, src.image), media_type="image/png")

    async def thumb(request):
        data = await run_in_threadpool(studio.images.thumbnail, request.query_params.get("id", ""))
        return Response(data, media_type="image/png")

    async def upload(request):
        name = Path(request.query_params.get("name", "upload")).name or "upload"
        data = await _limited_body(request, studio.images.max_upload_bytes, name)
        src = await run_in_threadpool(studio.images.add_upload, data, name)
        w, h = src.image.size
        return JSONResponse({"id": src.ref, "name": src.name, "width": w, "height": h, "split": src.split})

    async def synthesize(request):
        return JSONResponse(await run_in_threadpool(studio.synthesize, await _json(request)))

    async def result_png(request):
        res = studio.result(request.path_params["rid"])
        return Response(await run_in_threadpool(png_bytes, res.image), media_type="image/png")

    async def mask_png(request):
        return Response(studio.mask_png(request.path_params["mid"]), media_type="image/png")

    async def save(request):
        body = await _json(request)
        return JSONResponse(await run_in_threadpool(studio.save, str(body.get("result", ""))))

    routes = [
        Route("/", guarded(index)),
        Route("/static/{name}", guarded(static)),
        Route("/api/info", guarded(info)),
        Route("/api/images", guarded(images)),
        Route("/api/image", guarded(image)),
        Route("/api/thumb", guarded(thumb)),
        Route("/api/upload", guarded(upload), methods=["POST"]),
        Route("/api/synthesize", guarded(synthesize), methods=["POST"]),
        Route("/api/result/{rid}.png", guarded(result_png)),
        Route("/api/mask/{mid}.png", guarded(mask_png)),
        Route("/api/save", guarded(save), methods=["POST"]),
    ]

    async def not_found(request, exc):
        return JSONResponse({"error": f"{request.url.path}: not found"}, status_code=404)

    return Starlette(routes=routes, exception_handlers={404: not_found})


def build_studio(
    params: Params,
    checkpoint: str | Path,
    *,
    out: str | Path = STUDIO_OUT,
    scorer: str | Path | None = None,
    no_scorer: bool = False,
    device: str | None = "cpu",
) -> Studio:
    """The studio of this project: ingest's manifest, ingest.classes, the checkpoint (and the ablations)."""
    from pipeline.ingest import sources_from_params
    from pipeline.rasterize import class_table
    from syndgan.data.processed import read_dataset_info

    manifest_path = params.resolve(params.ingest.out) / "manifest.parquet"
    manifest = pd.read_parquet(manifest_path) if manifest_path.is_file() else None
    if manifest is None:
        log.warning("%s not found (run `dvc repro ingest`): only uploaded images can be used", manifest_path)
    roots = [Path.cwd(), *(Path(s.root) for s in sources_from_params(params))]
    store = ImageStore(manifest, roots, max_pixels=params.ingest.max_pixels)
    processed = params.resolve(params.rasterize.out)
    channels = read_dataset_info(processed)["channels"] if (processed / "dataset.json").is_file() else None
    ckpts = {str(checkpoint): Path(checkpoint)}
    ablations = params.resolve(params.train_synth.ablation_out)
    for p in sorted(ablations.glob("*/synthesizer.pt")) if ablations.is_dir() else []:
        ckpts[os.path.relpath(p)] = p
    return Studio(
        class_table(params),
        ckpts,
        store,
        params.resolve(out),
        channels=channels,
        scorer=None if no_scorer else project_scorer(params, scorer),
        device=device,
    )


def project_scorer(params: Params, explicit: str | Path | None = None):
    """The studio's quality scorer: ``explicit``, else the classifier `classify` saves for method none and the
    first of classify.seeds, else the pretraining discriminator (None without either)."""
    from syndgan.classify import real_data_model
    from syndgan.quality.scorers import ClassifierScorer
    from syndgan.studio.core import find_scorer

    out, seed = params.resolve(params.classify.out), params.classify.seeds[0]
    scorer = find_scorer(out, explicit, params.resolve(params.pretrain.out), seed=seed)
    if not explicit and not isinstance(scorer, ClassifierScorer):
        log.info(
            "no real-data classifier at %s (classify.save_model: true and `dvc repro classify` write it): %s",
            real_data_model(out, seed),
            f"scores are {scorer.name}" if scorer else "no quality score",
        )
    return scorer


def serve(studio: Studio, host: str = "127.0.0.1", port: int = STUDIO_PORT) -> None:
    import uvicorn

    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "studio listens on %s: anyone who reaches this address can use it and write to %s", host, studio.out_dir
        )
    log.info("defect studio on http://%s:%d/ (Ctrl-C stops it); saves go to %s", host, port, studio.out_dir)
    uvicorn.run(create_app(studio), host=host, port=port, log_level="warning")
