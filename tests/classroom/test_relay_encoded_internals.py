"""The encoded path stands on private aiortc internals. These tests fail loudly when an aiortc
upgrade renames or removes any of them — read ``classroom/encoded.py`` before upgrading."""

from __future__ import annotations

import asyncio

import aiortc
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

from classroom import encoded
from classroom.media_source import EncodedSource, SubscriberTrack


def test_pinned_aiortc_has_every_private_name_we_use() -> None:
    assert aiortc.__version__ == encoded.AIORTC_VERSION, "re-validate classroom/encoded.py before upgrading"
    encoded.check_internals()


async def test_fresh_receiver_and_sender_expose_the_private_attributes() -> None:
    pc = RTCPeerConnection()
    try:
        t = pc.addTransceiver("video", "sendrecv")
        receiver: RTCRtpReceiver = t.receiver
        sender: RTCRtpSender = t.sender
        encoded.check_receiver_internals(receiver)
        assert receiver._RTCRtpReceiver__decoder_thread is None  # type: ignore[attr-defined]
        assert callable(receiver._send_rtcp_pli)
        calls: list[int] = []
        encoded.hook_sender_keyframe(sender, lambda: calls.append(1))
        sender._send_keyframe()
        assert calls == [1]
        encoded.tap_receiver(receiver, lambda codec, frame: None)
        assert encoded.is_tapped(receiver)
    finally:
        await pc.close()


def test_vp8_keyframe_header_parsing() -> None:
    import fractions

    import av
    import numpy as np

    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = 320, 240, "yuv420p"
    codec.time_base = fractions.Fraction(1, 30)
    codec.gop_size = 30
    codec.options = {"deadline": "realtime", "cpu-used": "8"}
    packets = []
    for i in range(4):
        img = np.full((240, 320, 3), 40 * i, np.uint8)
        frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        packets += [bytes(p) for p in codec.encode(frame)]
    assert encoded.vp8_is_keyframe(packets[0])
    assert encoded.vp8_dimensions(packets[0]) == (320, 240)
    assert not encoded.vp8_is_keyframe(packets[-1])
    assert encoded.vp8_dimensions(packets[-1]) is None


async def _connect(offerer: RTCPeerConnection, answerer: RTCPeerConnection) -> None:
    await offerer.setLocalDescription(await offerer.createOffer())
    await answerer.setRemoteDescription(offerer.localDescription)
    await answerer.setLocalDescription(await answerer.createAnswer())
    await offerer.setRemoteDescription(answerer.localDescription)


async def test_loopback_forwards_encoded_packets_without_decoding() -> None:
    """publisher → relay receiver (tapped) → SubscriberTrack → relay sender (packs) → subscriber."""
    publisher, relay_in, relay_out, subscriber = (RTCPeerConnection() for _ in range(4))
    try:
        publisher.addTransceiver(VideoStreamTrack(), "sendonly")
        publisher.addTransceiver(AudioStreamTrack(), "sendonly")
        t_video = relay_in.addTransceiver("video", "recvonly")
        t_audio = relay_in.addTransceiver("audio", "recvonly")
        sources = [EncodedSource("video", t_video.receiver), EncodedSource("audio", t_audio.receiver)]
        for s in sources:
            s.open = True
        await _connect(publisher, relay_in)
        proxies = [SubscriberTrack("video"), SubscriberTrack("audio")]
        keyframe_requests: list[int] = []
        for proxy, source in zip(proxies, sources, strict=True):
            proxy.attach(source)
            t = relay_out.addTransceiver(proxy, "sendonly")
            encoded.hook_sender_keyframe(t.sender, lambda: keyframe_requests.append(1))
        got: dict[str, int] = {"video": 0, "audio": 0}
        pulls: list[asyncio.Future[None]] = []

        @subscriber.on("track")
        def on_track(track: aiortc.MediaStreamTrack) -> None:
            async def pull() -> None:
                while True:
                    await track.recv()  # the subscriber decodes: proof the packets are intact
                    got[track.kind] += 1
            pulls.append(asyncio.ensure_future(pull()))

        await _connect(relay_out, subscriber)
        for _ in range(100):
            if got["video"] >= 10 and got["audio"] >= 20:
                break
            await asyncio.sleep(0.1)
        assert got["video"] >= 10 and got["audio"] >= 20, got
        # the relay's own decoder threads never ran: frames went to our sinks instead
        assert all(encoded.is_tapped(t.receiver) for t in (t_video, t_audio))
        assert sources[0].packets_in >= 10 and proxies[0].packets_out >= 10
        for task in pulls:
            task.cancel()
    finally:
        for pc in (publisher, relay_in, relay_out, subscriber):
            await pc.close()
