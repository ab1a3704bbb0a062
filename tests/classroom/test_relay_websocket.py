"""The protocol over real WebSockets: a FastAPI route binding ``StarletteChannel`` (what the
classroom domain's route does) and bots using ``WebSocketChannel``, through uvicorn."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import uvicorn
from fastapi import FastAPI, WebSocket

from classguard.cli.common import free_port
from classroom.bot import Bot, WebSocketChannel
from classroom.relay import Relay
from classroom.signaling import StarletteChannel

from .conftest import Events


@pytest.mark.slow
async def test_bots_over_websockets_hear_each_other(relay: Relay, events: Events) -> None:
    app = FastAPI()
    room = uuid.uuid4()

    @app.websocket("/live/{name}")
    async def live(websocket: WebSocket, name: str) -> None:
        assert websocket.headers.get("x-test") == "yes"
        await websocket.accept()
        await relay.connect(room, uuid.uuid4(), name, "student", StarletteChannel(websocket))

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    serving = asyncio.ensure_future(server.serve())
    try:
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.05)
        headers = {"x-test": "yes"}
        a = await Bot(await WebSocketChannel(f"ws://127.0.0.1:{port}/live/A", headers).open(), name="A").start()
        b = await Bot(await WebSocketChannel(f"ws://127.0.0.1:{port}/live/B", headers).open(), name="B").start()
        a.publish_mic()
        assert a.participant_id is not None
        await b.wait_for(lambda: b.heard(a.participant_id or "", "mic") > 20)
        assert [p["display_name"] for p in relay.participants(room)] == ["A", "B"]
        await a.leave()
        await b.wait_for(lambda: len(b.participants) == 1)
        await b.leave()
        await a.wait_for(lambda: relay.participants(room) == [])
        assert len(events.left) == 2 and events.segments
    finally:
        server.should_exit = True
        await serving
