"""Signaling: bad SDP and bad messages get a clear BadRequest and leave the connection usable."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiortc import RTCPeerConnection, RTCRtpSender
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

from classroom.relay import Relay
from classroom.signaling import (
    SignalingError,
    channel_pair,
    decode_message,
    parse_client_message,
    validate_offer,
)
from storage.errors import AppError


async def _offer(kind_codecs: dict[str, list[str]]) -> str:
    """An aiortc offer whose m-lines offer only the given codecs (mime types)."""
    pc = RTCPeerConnection()
    try:
        for kind, mimes in kind_codecs.items():
            track = AudioStreamTrack() if kind == "audio" else VideoStreamTrack()
            t = pc.addTransceiver(track, "sendonly")
            caps = RTCRtpSender.getCapabilities(kind).codecs
            t.setCodecPreferences([c for c in caps if c.mimeType in mimes])
        await pc.setLocalDescription(await pc.createOffer())
        return pc.localDescription.sdp
    finally:
        await pc.close()


async def test_validate_offer_accepts_opus_and_vp8() -> None:
    validate_offer(await _offer({"audio": ["audio/opus"], "video": ["video/VP8", "video/rtx"]}))


@pytest.mark.parametrize("sdp", [
    "", "hello", "v=0\r\nm=audio x\r\n", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n",
])
def test_malformed_sdp_is_a_bad_request(sdp: str) -> None:
    with pytest.raises(SignalingError) as err:
        validate_offer(sdp)
    assert isinstance(err.value, AppError)
    assert err.value.status == 400 and err.value.error == "BadRequest"


async def test_h264_only_video_names_the_accepted_codecs() -> None:
    sdp = await _offer({"video": ["video/H264"]})
    with pytest.raises(SignalingError, match="VP8") as err:
        validate_offer(sdp)
    assert "Opus" in err.value.detail and "H264" in err.value.detail


async def test_pcmu_only_audio_names_the_accepted_codecs() -> None:
    sdp = await _offer({"audio": ["audio/PCMU"]})
    with pytest.raises(SignalingError, match="Opus"):
        validate_offer(sdp)


async def test_missing_ice_credentials_is_malformed() -> None:
    sdp = await _offer({"audio": ["audio/opus"]})
    broken = "\r\n".join(line for line in sdp.split("\r\n") if not line.startswith("a=ice-pwd"))
    with pytest.raises(SignalingError, match="ICE"):
        validate_offer(broken)


@pytest.mark.parametrize(("raw", "fragment"), [
    ({"type": "dance"}, "unknown message type"),
    ({}, "unknown message type"),
    ({"type": "offer"}, "sdp"),
    ({"type": "source", "source": "mic", "enabled": True}, "mid"),
    ({"type": "source", "source": "tv", "enabled": False}, "source"),
    (decode_message("not json"), "not JSON"),
    (decode_message("[1, 2]"), "JSON object"),
])
def test_bad_client_messages(raw: dict[str, Any], fragment: str) -> None:
    with pytest.raises(SignalingError, match=fragment):
        parse_client_message(raw)


async def _next(channel: Any, kind: str) -> dict[str, Any]:
    while True:
        msg = await asyncio.wait_for(channel.receive(), 10)
        if msg["type"] == kind:
            return msg


async def test_bad_offers_over_the_channel_get_error_messages_and_the_session_survives(relay: Relay) -> None:
    room, pid = uuid.uuid4(), uuid.uuid4()
    server, client = channel_pair()
    task = asyncio.ensure_future(relay.connect(room, pid, "Ann", "student", server))
    await _next(client, "welcome")
    await client.send({"type": "offer", "sdp": "v=0\r\ngarbage"})
    err = await _next(client, "error")
    assert err["error"] == "BadRequest" and "SDP" in err["detail"]
    await client.send({"type": "offer", "sdp": await _offer({"video": ["video/H264"]})})
    err = await _next(client, "error")
    assert err["error"] == "BadRequest" and "VP8" in err["detail"]
    await client.send({"type": "answer", "sdp": await _offer({"audio": ["audio/opus"]})})
    err = await _next(client, "error")
    assert "no subscribe offer" in err["detail"]
    await client.send({"type": "source", "source": "mic", "enabled": True, "mid": "0"})
    # nothing was negotiated: a mid the publish connection does not have is an error, nothing is declared
    err = await _next(client, "error")
    assert err["error"] == "BadRequest" and "unknown mid" in err["detail"]
    assert relay.participants(room)[0]["sources"]["mic"] == {"enabled": False, "muted": False, "active": False,
                                                            "recording": False, "snapshots": False}
    # a good offer still works after the bad ones
    await client.send({"type": "offer", "sdp": await _offer({"audio": ["audio/opus"]})})
    answer = await _next(client, "answer")
    assert answer["pc"] == "publish" and "opus" in answer["sdp"]
    await client.send({"type": "leave"})
    await asyncio.wait_for(task, 10)
    assert relay.participants(room) == []
