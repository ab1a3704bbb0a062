"""The relay's signaling protocol: JSON messages over any duplex channel, and SDP validation.

Two peer connections per participant avoid offer glare:

* **publish** PC — the client offers (its mic / camera / screen, ``sendonly`` or ``inactive``
  transceivers), the server answers. Every renegotiation of what the client sends is a new
  client offer.
* **subscribe** PC — the server offers (one ``sendonly`` transceiver per forwarded source of
  every other participant), the client answers. The server re-offers whenever the set of
  forwarded sources changes; ``tracks`` in the offer says which mid carries whose source.

Client → server::

    {"type": "offer",  "sdp": "<publish PC offer>"}
    {"type": "answer", "sdp": "<subscribe PC answer>"}
    {"type": "source", "source": "mic"|"camera"|"screen", "enabled": true|false, "mid": "<mid>"}
        # declares a source on/off and which publish-PC transceiver (mid) carries it;
        # "mid" is required when enabled, optional when disabling. mic is audio, camera and
        # screen are video. The server records/forwards only what is declared on.
    {"type": "leave"}

Server → client::

    {"type": "welcome", "room_id", "participant_id", "ice_servers": [...],
     "accepted_codecs": {"audio": "opus", "video": "VP8"}}
    {"type": "answer", "pc": "publish", "sdp": ...}
    {"type": "offer", "pc": "subscribe", "sdp": ..., "tracks": {"<mid>": {"participant_id", "source"}}}
    {"type": "participants", "participants": [participant_state, ...]}   # on every change
    {"type": "source_state", "participant_id", "source", "enabled", "muted", "active", "recording",
     "snapshots"}
    {"type": "muted", "source", "muted": bool}           # a moderator (un)muted you (also sent
                                                          # after "welcome" for a mute still holding)
    {"type": "removed", "reason": "removed"|"replaced"|"ice-timeout"|"connection-failed"|"unavailable"
                                  |"signed-out"|"account-restricted"|"consent-withdrawn"}
        # the last three come through ``classroom.live_control`` (logout; suspension, ban or
        # cancellation; consent withdrawn): the socket closes right after
    {"type": "ended"}                                     # the class was ended
    {"type": "notice", "kind", "texts": {"en": ..., "zh": ...}, "at", "details"}   # a policy notice
                                                          # for you (shown in the page's language)
    {"type": "notice_shown", "kind", "participant_id", "display_name", "at", "details"}  # teachers:
                                                          # a participant was shown a notice
    {"type": "error", "error": "BadRequest", "detail": "..."}

``participant_state`` = ``{"participant_id", "display_name", "role", "recording": bool,
"sources": {"mic"|"camera"|"screen": {"enabled", "muted", "active", "recording", "snapshots"}}}``
where ``recording`` is the recording indicator (mic/screen written to disk right now) and
``snapshots`` says camera keyframes are being kept. An error never closes the channel: not JSON,
a binary frame, an unknown type or an unknown ``mid`` each get an ``error`` message.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Protocol

from aiortc import sdp as aiortc_sdp
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from storage.errors import BadRequest

Source = Literal["mic", "camera", "screen"]
SOURCES: tuple[Source, ...] = ("mic", "camera", "screen")
SOURCE_KIND: dict[str, str] = {"mic": "audio", "camera": "video", "screen": "video"}
ACCEPTED_CODECS_TEXT = "Opus (audio) and VP8 (video)"
MAX_SDP_BYTES = 64 * 1024
MAX_MESSAGE_BYTES = 128 * 1024


class SignalingError(BadRequest):
    """A bad signaling message or SDP; HTTP status 400, error name "BadRequest"."""

    status, error = 400, "BadRequest"


class ChannelClosed(Exception):
    """The other side of a signaling channel went away."""


class Channel(Protocol):
    """A duplex JSON message channel (a WebSocket, an in-memory queue pair...)."""

    async def send(self, message: dict[str, Any]) -> None: ...

    async def receive(self) -> dict[str, Any]:
        """The next message; raises ``ChannelClosed`` when the channel is gone."""
        ...

    async def close(self) -> None: ...


class QueueChannel:
    """One end of an in-memory channel pair (tests, bots in the same process)."""

    def __init__(self, inbox: asyncio.Queue[dict[str, Any] | None],
                 outbox: asyncio.Queue[dict[str, Any] | None]) -> None:
        self._inbox = inbox
        self._outbox = outbox
        self.closed = False

    async def send(self, message: dict[str, Any]) -> None:
        if self.closed:
            raise ChannelClosed("channel closed")
        # a round trip through JSON keeps tests honest about what a WebSocket could carry
        await self._outbox.put(json.loads(json.dumps(message)))

    async def receive(self) -> dict[str, Any]:
        if self.closed:
            raise ChannelClosed("channel closed")
        msg = await self._inbox.get()
        if msg is None:
            self.closed = True
            raise ChannelClosed("peer closed")
        return msg

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            await self._outbox.put(None)
            await self._inbox.put(None)


def channel_pair() -> tuple[QueueChannel, QueueChannel]:
    """(server end, client end) of an in-memory channel."""
    a: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
    b: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
    return QueueChannel(a, b), QueueChannel(b, a)


class StarletteChannel:
    """Binds the protocol to an accepted FastAPI/Starlette ``WebSocket`` (server side)."""

    def __init__(self, websocket: Any) -> None:
        self.websocket = websocket

    async def send(self, message: dict[str, Any]) -> None:
        try:
            await self.websocket.send_json(message)
        except Exception as exc:  # disconnects surface as various starlette/uvicorn errors
            raise ChannelClosed(str(exc)) from exc

    async def receive(self) -> dict[str, Any]:
        try:
            frame = await self.websocket.receive()
        except Exception as exc:
            raise ChannelClosed(str(exc)) from exc
        if frame.get("type") == "websocket.disconnect":
            raise ChannelClosed(f"client closed ({frame.get('code')})")
        if frame.get("text") is not None:
            return decode_message(frame["text"])
        # a binary frame is a client mistake, answered like any bad message (the socket stays open)
        return {"type": None, "_error": "binary frames are not accepted: send JSON text messages"}

    async def close(self) -> None:
        try:
            await self.websocket.close()
        except Exception:  # already closed by the client
            return


def decode_message(text: str | bytes) -> dict[str, Any]:
    """JSON text → message dict; a non-object or oversized message becomes ``{"type": None}``
    carrying the problem, so the loop answers with an error instead of dying."""
    if len(text) > MAX_MESSAGE_BYTES:
        return {"type": None, "_error": "message too large"}
    try:
        value = json.loads(text)
    except ValueError:
        return {"type": None, "_error": "message is not JSON"}
    if not isinstance(value, dict):
        return {"type": None, "_error": "message must be a JSON object"}
    return value


# --- client messages ------------------------------------------------------------------------

class _Msg(BaseModel):
    model_config = ConfigDict(extra="ignore")


class OfferMsg(_Msg):
    type: Literal["offer"]
    sdp: str = Field(min_length=1, max_length=MAX_SDP_BYTES)


class AnswerMsg(_Msg):
    type: Literal["answer"]
    sdp: str = Field(min_length=1, max_length=MAX_SDP_BYTES)


class SourceMsg(_Msg):
    type: Literal["source"]
    source: Source
    enabled: bool
    mid: str | None = Field(default=None, min_length=1, max_length=32)


class LeaveMsg(_Msg):
    type: Literal["leave"]


ClientMessage = OfferMsg | AnswerMsg | SourceMsg | LeaveMsg
_client_adapter: TypeAdapter[ClientMessage] = TypeAdapter(
    Annotated[ClientMessage, Field(discriminator="type")]
)


def parse_client_message(raw: dict[str, Any]) -> ClientMessage:
    """Validate one client message; raises ``SignalingError`` naming what is wrong."""
    if raw.get("_error"):
        raise SignalingError(str(raw["_error"]))
    kind = raw.get("type")
    if kind not in ("offer", "answer", "source", "leave"):
        raise SignalingError(f"unknown message type {kind!r}; expected offer, answer, source or leave")
    if kind == "source" and raw.get("enabled") is True and not raw.get("mid"):
        raise SignalingError("a source switched on must name the transceiver mid that carries it")
    try:
        return _client_adapter.validate_python(raw)
    except ValidationError as exc:
        parts = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ())[1:])
            parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
        raise SignalingError(f"invalid {kind} message: " + "; ".join(parts)) from exc


# --- SDP ---------------------------------------------------------------------------------------

@dataclass
class OfferedMedia:
    """One m-line of an offer as the relay sees it."""

    mid: str
    kind: str  # "audio" | "video" | "application"
    direction: str  # the offerer's direction; "inactive" for a rejected (port 0) m-line
    codecs: list[str] = field(default_factory=list)


def parse_offer(sdp_text: str) -> list[OfferedMedia]:
    """Parse and check an offer; raises ``SignalingError`` for malformed SDP or no usable codec.

    The relay forwards and records without transcoding, so every live audio m-line must offer
    Opus and every live video m-line VP8.
    """
    if not isinstance(sdp_text, str) or not sdp_text.strip():
        raise SignalingError("SDP is empty")
    if len(sdp_text) > MAX_SDP_BYTES:
        raise SignalingError("SDP is too large")
    if not sdp_text.lstrip().startswith("v=0"):
        raise SignalingError("malformed SDP: must start with v=0")
    try:
        desc = aiortc_sdp.SessionDescription.parse(sdp_text)
    except Exception as exc:  # the parser raises assorted errors on garbage; their names stay inside
        raise SignalingError("malformed SDP: the session description could not be parsed") from exc
    media = [m for m in desc.media if m.kind in ("audio", "video", "application")]
    if not any(m.kind in ("audio", "video") for m in media):
        raise SignalingError("SDP offers no audio or video m-line")
    out: list[OfferedMedia] = []
    seen: set[str] = set()
    for m in desc.media:
        mid = m.rtp.muxId
        if not mid:
            raise SignalingError(f"malformed SDP: m={m.kind} has no a=mid")
        if mid in seen:
            raise SignalingError(f"malformed SDP: duplicate mid {mid!r}")
        seen.add(mid)
        if m.kind not in ("audio", "video"):
            continue
        live = m.port != 0
        if live:
            if m.ice is None or not m.ice.usernameFragment or not m.ice.password:
                raise SignalingError(f"malformed SDP: m={m.kind} (mid {mid}) lacks ICE credentials")
            if not m.dtls or not m.dtls.fingerprints:
                raise SignalingError(f"malformed SDP: m={m.kind} (mid {mid}) lacks a DTLS fingerprint")
            if not m.rtcp_mux:
                raise SignalingError(f"malformed SDP: m={m.kind} (mid {mid}) lacks rtcp-mux")
        codecs = [c.mimeType.split("/", 1)[-1] for c in m.rtp.codecs]
        wanted = "opus" if m.kind == "audio" else "vp8"
        if live and not any(c.lower() == wanted for c in codecs):
            raise SignalingError(
                f"no usable codec in m={m.kind} (mid {mid}, offered {', '.join(codecs) or 'none'}): "
                f"the relay accepts {ACCEPTED_CODECS_TEXT}"
            )
        out.append(OfferedMedia(mid=mid, kind=m.kind, direction=(m.direction or "sendrecv") if live else "inactive",
                                codecs=codecs))
    return out


def validate_offer(sdp: str) -> None:
    """Raise ``SignalingError`` (HTTP 400) if ``sdp`` is not an offer the relay can take."""
    parse_offer(sdp)


def validate_answer(sdp_text: str) -> None:
    """Cheap structural check of a subscribe-PC answer before aiortc sees it."""
    if not isinstance(sdp_text, str) or not sdp_text.lstrip().startswith("v=0"):
        raise SignalingError("malformed SDP: must start with v=0")
    try:
        desc = aiortc_sdp.SessionDescription.parse(sdp_text)
    except Exception as exc:
        raise SignalingError("malformed SDP: the answer could not be parsed") from exc
    if not desc.media:
        raise SignalingError("malformed SDP: answer has no m-lines")


# --- server messages -----------------------------------------------------------------------

def error_message(exc: BadRequest | str, error: str = "BadRequest") -> dict[str, Any]:
    if isinstance(exc, BadRequest):
        return {"type": "error", "error": exc.error, "detail": exc.detail}
    return {"type": "error", "error": error, "detail": exc}
