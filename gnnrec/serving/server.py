"""HTTP service over an export (FastAPI + uvicorn, the ``serve`` extra): loaded once, answers with original ids.

Errors are JSON ``{"detail": ...}``: an unknown user or item is 404; a bad k or a malformed body is 422
(pydantic validates the request models before any handler runs); adding an item whose id exists is 409.
Queries and item additions take one lock: an addition grows the arrays and the FAISS index in place.
"""
from __future__ import annotations

import threading
from pathlib import Path

from gnnrec.errors import GnnrecError, UnknownIdError
from gnnrec.serving.export import DuplicateIdError, Export

try:
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel, ConfigDict, Field, model_validator
except ImportError:  # pragma: no cover - the message is the point
    raise GnnrecError("serving needs the serve extra: pip install 'gnnrec[serve]'") from None


class Query(BaseModel):
    # ids may come as JSON numbers (MovieLens "196"): they are matched as strings
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


class RecommendRequest(Query):
    user: str
    k: int = Field(10, ge=1)
    exclude_seen: bool = True
    items: list[str] | None = Field(None, min_length=1, description="allow-list of original item ids")


class SimilarRequest(Query):
    item: str
    k: int = Field(10, ge=1)


class NewItemRequest(Query):
    item: str = Field(min_length=1, pattern=r"\S")
    features: dict[str, list[float]] | None = Field(None, description="modality -> feature vector")
    text: str | dict[str, str] | None = Field(None, description="raw text, encoded with the recorded encoder; "
                                              "a string goes to the one modality that has a text encoder")

    @model_validator(mode="after")
    def one_input_per_modality(self):
        texts = self.text if isinstance(self.text, dict) else {"": self.text} if self.text is not None else {}
        blank = [m or "text" for m, t in texts.items() if not t.strip()]
        if blank:
            raise ValueError(f"empty text for {blank}: an item needs words to be encoded")
        both = sorted(set(texts) & set(self.features or {}))
        if both:
            raise ValueError(f"both features and text for modality {both}: send one of them")
        return self


class NewItem(BaseModel):
    item: str
    method: str
    items: int


class Recommendation(BaseModel):
    user: str
    items: list[str]
    scores: list[float]


class Similar(BaseModel):
    item: str
    items: list[str]
    scores: list[float]


def create_app(export: Export | str | Path) -> FastAPI:
    """The app over ``export`` (an Export or its folder, loaded here, once)."""
    export = export if isinstance(export, Export) else Export.load(export)
    m = export.manifest
    app = FastAPI(title="gnnrec", description=f"{m['model']} on {m['dataset']}")
    lock = threading.Lock()

    @app.exception_handler(UnknownIdError)
    async def unknown_id(request: Request, exc: UnknownIdError):
        return JSONResponse(status_code=404, content={"detail": str(exc)})

    @app.exception_handler(DuplicateIdError)
    async def duplicate_id(request: Request, exc: DuplicateIdError):
        return JSONResponse(status_code=409, content={"detail": str(exc)})

    @app.exception_handler(GnnrecError)
    async def bad_request(request: Request, exc: GnnrecError):
        return JSONResponse(status_code=422, content={"detail": str(exc)})

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "model": m["model"], "dataset": m["dataset"], "users": m["n_users"],
                "items": len(export.item_ids), "added_items": len(export.added), "index": m["index"]["type"]}

    @app.post("/recommend")
    def recommend(req: RecommendRequest) -> Recommendation:
        with lock:
            return export.recommend([req.user], req.k, req.exclude_seen, req.items)[0]

    @app.post("/similar-items")
    def similar_items(req: SimilarRequest) -> Similar:
        with lock:
            return export.similar_items(req.item, req.k)

    @app.post("/items", status_code=201)
    def add_item(req: NewItemRequest) -> NewItem:
        if req.features is None and req.text is None:
            raise GnnrecError("a new item needs 'features' (modality -> vector) or 'text'")
        texts = req.text
        if isinstance(texts, str) and export.cold_start is not None:  # else add_items says why it cannot
            encoders = (export.cold_start.spec.get("encoders") if export.cold_start else None) or {}
            named = sorted(n for n, enc in encoders.items()  # text encoders only, as encode_text accepts them
                           if enc and enc.get("model") and ":" not in str(enc["model"]))
            if len(named) != 1:
                raise GnnrecError(f"'text' as a string needs exactly one modality with a text encoder, this export "
                                  f"has {named}; send {{modality: text}}")
            texts = {named[0]: texts}
        with lock:
            export.add_items([req.item], {k: [v] for k, v in (req.features or {}).items()}, texts)
            return {"item": req.item, "method": export.cold_start.spec["method"], "items": len(export.item_ids)}

    return app


def serve(folder, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Load the export and serve it with uvicorn until interrupted."""
    try:
        import uvicorn
    except ImportError:
        raise GnnrecError("serving needs the serve extra: pip install 'gnnrec[serve]'") from None
    uvicorn.run(create_app(folder), host=host, port=port, log_level=log_level)
