"""Every route against a small hostile list: no 5xx ever, and a refused request changes nothing.

The routes are enumerated from ``app.routes`` (GET and POST; path parameters, declared query
parameters, JSON body fields, form fields), so a new route is fuzzed without editing this file. Each
parameter in turn gets every value of ``HOSTILE`` while the others keep valid values, on a small
real store (a run with real WAVs, a finding, flags), on SQLite and on PostgreSQL. Then the raw-body
attacks: deeply nested JSON, lone surrogates, NUL bytes, and hostile flag files on the import.

After every refused write (4xx) the flags table and the run, data set, finding and clip counts must
be exactly what they were before it.
"""

from __future__ import annotations

import enum
import json
import time
import typing
from urllib.parse import quote

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.store.findings import NewFinding, replace_findings
from app.store.flags import upsert_flag
from app.store.models import Clip, Dataset, Finding, Flag, Run
from app.web.main import create_app
from tests.factories import make_run

CSRF = {"X-Earmark-CSRF": "1"}
NESTED = "[" * 100_000 + "]" * 100_000
HOSTILE: list = [0, -1, 2**31, 2**63, 10**100, "²", "١٢", "", " ", "NaN", "inf", "-inf", "1e309", "1.5",
                 "../../etc/passwd", "%00", "a\x00b", "\x00", "\ud800", "x" * 10_000, "<script>alert(1)</script>",
                 "' OR 1=1 --", "Ærø 東京 🎧", "null", NESTED[:2000] + NESTED[-2000:]]
NUMBER_HOSTILE: list = [-1, 2**63, 10**100, "NaN", "inf", "-inf", "1e309", "²", "\x00", "x" * 10_000]
CONDITION_HOSTILE: list = [*NUMBER_HOSTILE, "\ud800", "' OR 1=1 --", "1..2", "..", "a..b", "Ærø 東京"]
CONDITION_KEYS = ("meta.gender", "meta.take.min", "stat.rms_dbfs.below", "speaker", "speaker.missing", "col", "val")
VALID_QUERY = {"name": "speaker"}  # required query parameters: a value the route accepts
CLOSED_HOSTILE: list = [2**63, "²", "", "\x00", "\ud800", "x" * 10_000, "' OR 1=1 --"]


def _is_closed(annotation) -> bool:
    """A parameter with a fixed vocabulary (Literal, Enum, bool): FastAPI checks it against a set."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    return all(typing.get_origin(a) is typing.Literal or a is bool
               or (isinstance(a, type) and issubclass(a, enum.Enum)) for a in args)


def _values_for(annotation) -> list:
    """The hostile list; a closed vocabulary or a float gets a shorter one (pydantic parses those alike)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    if _is_closed(annotation):
        return CLOSED_HOSTILE
    return NUMBER_HOSTILE if args == [float] else HOSTILE


def _flat_routes(routes, prefix: str = ""):
    """(full path, route) for every APIRoute, including those of included routers."""
    for r in routes:
        if isinstance(r, APIRoute):
            yield prefix + r.path, r
        elif hasattr(r, "original_router"):  # FastAPI's lazily included routers
            yield from _flat_routes(r.original_router.routes, prefix + r.include_context.prefix)
        elif hasattr(r, "routes") and not hasattr(r, "app"):
            yield from _flat_routes(r.routes, prefix + getattr(r, "path", ""))


def _params(dependant, kind: str) -> dict:
    out = {p.name: p for p in getattr(dependant, kind)}
    for sub in dependant.dependencies:
        out.update(_params(sub, kind))
    return out


def _as_text(value) -> str:
    return str(value)


def _encode(value) -> str:
    """A value as it travels in a URL: percent-encoded UTF-8 (a lone surrogate as its raw bytes)."""
    return quote(_as_text(value).encode("utf-8", "surrogatepass"), safe="")


def _url(path: str, path_values: dict, query: dict) -> str:
    for name, value in path_values.items():
        path = path.replace("{" + name + "}", _encode(value))
    if query:
        path += "?" + "&".join(f"{_encode(k)}={_encode(v)}" for k, v in query.items())
    return path


def _raw_json(obj) -> bytes:
    """JSON as a hostile client sends it: lone surrogates kept as raw (invalid UTF-8) bytes."""
    return json.dumps(obj, ensure_ascii=False, allow_nan=True).encode("utf-8", "surrogatepass")


def _valid_field(annotation, ids: dict):
    """A valid value for a body field, from its annotation."""
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and args:
        return _valid_field(args[0], ids)
    if origin is list:
        return [ids["clip"]]
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "other" if "other" in {m.value for m in annotation} else next(iter(annotation)).value
    if annotation is int:
        return ids["clip"]
    if annotation is bool:
        return False
    return "x"


@pytest.fixture
def fuzz_site(store, tmp_path):
    """A small real store: two runs over 30 real clips, a finding, three flags; and a client on it."""
    with store.sessions() as s:
        fx = make_run(s, tmp_path / "audio", n_clips=30)
        make_run(s, tmp_path / "audio", name="second", seed=1, write_audio=False,
                 dataset=(s.get(Dataset, fx.dataset_id), fx.clip_ids))  # two runs: compare has a pair
        replace_findings(s, fx.run_id, [NewFinding(kind="cutoff", score=0.9, title="cut words", description="d",
                                                   reason="cutoff", suggested_label=None, stats={},
                                                   members=[(c, 0.5, None) for c in fx.clip_ids[:5]])])
        for cid in fx.clip_ids[:3]:
            upsert_flag(s, cid, "other", note="kept", author="ann")
        s.commit()
        fid = s.scalars(select(Finding.id)).first()
        run_name = s.get(Run, fx.run_id).name
    client = TestClient(create_app(store.settings), raise_server_exceptions=False)
    ids = dict(clip=fx.clip_ids[0], run=fx.run_id, dataset=fx.dataset_id, finding=fid, run_name=run_name)
    return client, ids, store


def _snapshot(store) -> tuple:
    with store.sessions() as s:
        flags = sorted(tuple(str(v) for v in (f.clip_id, f.reason, f.corrected_label, f.note, f.author,
                                               f.finding_id, f.updated_at)) for f in s.scalars(select(Flag)))
        counts = tuple(s.scalar(select(func.count()).select_from(t)) for t in (Run, Dataset, Finding, Clip))
    return tuple(flags), counts


def _valid_path_value(name: str, ids: dict):
    if "run" in name:
        return ids["run"]
    if "dataset" in name:
        return ids["dataset"]
    if name in ("fid", "finding_id"):
        return ids["finding"]
    return ids["clip"]


class Fuzzer:
    """Sends the requests and records every 5xx and every refused write that changed something."""

    def __init__(self, client: TestClient, store):
        self.client, self.store = client, store
        self.failures: list[str] = []
        self.sent = 0
        self.state = _snapshot(store)

    def send(self, method: str, url: str, what: str, **kw) -> int:
        self.sent += 1
        r = self.client.request(method, url, **kw)
        if r.status_code >= 500:
            self.failures.append(f"{r.status_code} {method} {url[:80]} ({what})")
        if method == "POST":
            after = _snapshot(self.store)
            if 400 <= r.status_code < 500 and after != self.state:
                self.failures.append(f"{r.status_code} {method} {url[:120]} ({what}) changed the store")
            self.state = after
        return r.status_code

    def check_unchanged(self, what: str) -> None:
        """Reads change nothing: the store is as the last write left it."""
        if _snapshot(self.store) != self.state:
            self.failures.append(f"{what} changed the store")
            self.state = _snapshot(self.store)


def _route_cases(path: str, route: APIRoute, ids: dict):
    """(what, path values, query, body kwargs) for every hostile value in every parameter of a route."""
    path_names = list(_params(route.dependant, "path_params"))
    valid_path = {n: _valid_path_value(n, ids) for n in path_names}
    body_params = _params(route.dependant, "body_params")
    body_kw: dict = {}
    json_model = None
    form_fields: dict = {}
    for name, field in body_params.items():
        ann = field.field_info.annotation
        models = [a for a in (ann, *typing.get_args(ann)) if isinstance(a, type) and hasattr(a, "model_fields")]
        if models:
            json_model = models[0]
        elif "UploadFile" in str(ann):
            form_fields[name] = None
        else:
            form_fields[name] = {"dataset": str(ids["dataset"])}.get(name, "fuzz")
    if json_model is not None:
        base = {k: _valid_field(f.annotation, ids) for k, f in json_model.model_fields.items() if f.is_required()}
        body_kw = dict(content=_raw_json(base), headers={**CSRF, "Content-Type": "application/json"})
    elif form_fields:
        body_kw = dict(data={k: v for k, v in form_fields.items() if v is not None},
                       files={k: ("f.csv", b"path,reason\n", "text/csv") for k, v in form_fields.items() if v is None},
                       headers=CSRF)
    elif "POST" in route.methods:
        body_kw = dict(headers=CSRF)
    query_params = _params(route.dependant, "query_params")
    base_query = {n: VALID_QUERY.get(n, "x") for n, f in query_params.items() if f.field_info.is_required()}
    yield "valid", valid_path, base_query, body_kw
    for name in path_names:
        for value in HOSTILE:
            yield f"path {name}={_as_text(value)[:20]!r}", {**valid_path, name: value}, base_query, body_kw
    for name, field in query_params.items():
        for value in _values_for(field.field_info.annotation):
            yield f"query {name}={_as_text(value)[:20]!r}", valid_path, {**base_query, name: value}, body_kw
    if "sort" in query_params:  # the clip list's filters also read column conditions (undeclared keys)
        for name in CONDITION_KEYS:
            for value in CONDITION_HOSTILE:
                yield f"query {name}={_as_text(value)[:20]!r}", valid_path, {**base_query, name: value}, body_kw
    if json_model is not None:
        base = json.loads(body_kw["content"])
        for name in json_model.model_fields:
            for value in [*HOSTILE, [2**63], ["²"], {"a": 1}, None, True]:
                body = {**base, name: value}
                yield (f"body {name}={_as_text(value)[:20]!r}", valid_path, base_query,
                       dict(content=_raw_json(body), headers={**CSRF, "Content-Type": "application/json"}))
        for raw in (NESTED.encode(), b'{"reason": ' + NESTED.encode() + b"}", b'{"reason": "other", "note": "\\ud800"}',
                    b'{"reason": "other", "note": "a\\u0000b"}', b"\xff\xfe", b"", b"null", b"[]",
                    b'{"reason": "other", "note": "' + "\ud800".encode("utf-8", "surrogatepass") + b'"}'):
            yield (f"raw body {raw[:20]!r}", valid_path, base_query,
                   dict(content=raw, headers={**CSRF, "Content-Type": "application/json"}))
    for name, default in form_fields.items():
        if default is None:
            continue
        for value in HOSTILE:
            data = {**body_kw["data"], name: _as_text(value).encode("utf-8", "surrogatepass")}
            yield f"form {name}={_as_text(value)[:20]!r}", valid_path, base_query, {**body_kw, "data": data}


def _import_files(clip_path: str) -> list[tuple[str, bytes]]:
    """Hostile flag files: NUL bytes, surrogates, overflowing times, deep nesting, bad encodings."""
    nul, sur = "a\x00b", "\ud800"
    rows = [dict(path=clip_path, reason="other", note=nul), dict(path=clip_path, reason="other", author=nul),
            dict(path=clip_path, reason="other", note=sur), dict(path=clip_path + nul, reason="other"),
            dict(path=clip_path, reason="other", time="9999-12-31T23:59:59-14:00"),
            dict(path=clip_path, reason="other", time="0001-01-01T00:00:00+14:00"),
            dict(path=clip_path, reason="other", time="NaN"),
            dict(path=clip_path, reason="other", label=str(2**63)), dict(path=clip_path, reason="mislabeled",
                                                                        corrected_label=nul)]
    out = [(f"f{i}.json", _raw_json([r])) for i, r in enumerate(rows)]
    out += [(f"f{i}-escaped.json", json.dumps({"flags": [r]}).encode()) for i, r in enumerate(rows)]
    out += [(f"f{i}.csv", ("path,reason,corrected_label,note,author,time\n" +
                           f"{r['path']},{r['reason']},{r.get('corrected_label', '')},{r.get('note', '')},"
                           f"{r.get('author', '')},{r.get('time', '')}\n").encode("utf-8", "surrogatepass"))
            for i, r in enumerate(rows)]
    out += [("deep.json", NESTED.encode()), ("deep2.json", b'[{"path": ' + NESTED.encode() + b"}]"),
            ("bad.json", b"\xff\xfe\x00"), ("bad.csv", b"\xff\xfe\x00\x00"), ("obj.json", b'{"a": 1}'),
            ("num.json", b"1e999999")]
    return out


def test_every_route_survives_hostile_input(fuzz_site):
    client, ids, store = fuzz_site
    fuzz = Fuzzer(client, store)
    t0 = time.monotonic()
    routes = [(p, r) for p, r in _flat_routes(client.app.routes) if r.methods & {"GET", "POST"}]
    assert len(routes) > 30, "the route enumeration found too few routes"
    valid: dict[str, int] = {}
    for path, route in routes:
        if path.startswith("/static/"):
            continue
        for method in sorted(route.methods & {"GET", "POST"}):
            for what, path_values, query, kw in _route_cases(path, route, ids):
                status = fuzz.send(method, _url(path, path_values, query), what, **kw)
                if what == "valid":
                    valid[f"{method} {path}"] = status
            if method == "GET":
                fuzz.check_unchanged(f"GET {path}")
    with store.sessions() as s:
        clip_path = s.get(Clip, ids["clip"]).path
    for url in ("/api/flags/import", "/flags/import"):
        for name, content in _import_files(clip_path):
            fuzz.send("POST", url, f"import {name}", files={"file": (name, content)}, headers=CSRF)
    elapsed = time.monotonic() - t0
    print({k: v for k, v in valid.items() if v >= 300})
    print(f"\n{store.kind}: {fuzz.sent} requests over {len(routes)} routes in {elapsed:.1f} s")
    assert not fuzz.failures, f"{len(fuzz.failures)} failures:\n" + "\n".join(fuzz.failures[:300])
