"""The stand-in's S3 side: moto as a server, behind a gate that accepts only the account's S3 API key
(reference §4: access key id = the user id, secret shown once). moto itself accepts any key, so the
gate is what makes "S3 key refused" possible; it answers like S3 does (403 InvalidAccessKeyId)."""
from __future__ import annotations

import re

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import Response

from tests.standin.account import Account

_CREDENTIAL = re.compile(r"Credential=([^/]+)/")
_REFUSED = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InvalidAccessKeyId</Code><Message>The AWS '
            'Access Key Id you provided does not exist in our records.</Message></Error>')
_HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection"}


def make_s3_gate(account: Account, moto_url: str) -> FastAPI:
    app = FastAPI()
    client = httpx.AsyncClient(base_url=moto_url, timeout=60)

    @app.api_route("/{path:path}", methods=["GET", "PUT", "POST", "DELETE", "HEAD"])
    async def forward(path: str, request: Request):
        found = _CREDENTIAL.search(request.headers.get("authorization", ""))
        if not found or found.group(1) != account.s3_access_key:
            return Response(_REFUSED, status_code=403, media_type="application/xml")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        answer = await client.request(request.method, "/" + path, params=request.query_params,
                                      headers=headers, content=await request.body())
        out = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_HEADERS | {"content-encoding"}}
        return Response(answer.content, status_code=answer.status_code, headers=out)

    return app
