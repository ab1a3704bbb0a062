"""Every touch of aiortc's private internals, in one place, for the encoded (no-transcode) path.

aiortc (pinned to 1.16.0) has no public API for encoded frames. What we rely on:

* ``RTCRtpReceiver._RTCRtpReceiver__decoder_queue`` — after the jitter buffer the receiver puts
  ``(codec, JitterFrame)`` on this ``queue.Queue``; its decoder thread (started by
  ``receive()``) takes them off. We swap in a queue-like *tap* before ``receive()`` runs, so
  complete encoded frames go to our sink on the event loop and the decoder thread idles.
* ``RTCRtpReceiver._RTCRtpReceiver__decoder_thread`` — ``None`` until ``receive()``; used to
  prove the tap went in early enough.
* ``RTCRtpReceiver._RTCRtpReceiver__rtx_ssrc`` — RTX SSRCs, so a PLI names the media SSRC.
* ``RTCRtpReceiver._send_rtcp_pli(media_ssrc)`` — ask the publisher for a keyframe.
* ``RTCRtpSender._send_keyframe()`` — called when a subscriber sends PLI/FIR; we replace it on
  the instance to pass the request up to the publisher.
* ``RTCRtpSender`` packs (``encoder.pack``) instead of encoding when its track's ``recv()``
  returns an ``av.Packet`` (public-ish behaviour, but undocumented).

``tests/classroom/test_relay_encoded_internals.py`` fails loudly if an upgrade moves any of it.
"""

from __future__ import annotations

import asyncio
import logging
import queue
from collections.abc import Callable
from typing import Any

import aiortc
from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.codecs.opus import OpusEncoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

log = logging.getLogger("classguard.relay")

AIORTC_VERSION = "1.16.0"
_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
_DECODER_THREAD = "_RTCRtpReceiver__decoder_thread"
_RTX_SSRC = "_RTCRtpReceiver__rtx_ssrc"
_ACTIVE_SSRC = "_RTCRtpReceiver__active_ssrc"

FrameSink = Callable[[RTCRtpCodecParameters, JitterFrame], None]


class AiortcInternalsChanged(RuntimeError):
    """The aiortc private attributes the encoded path needs are missing (an upgrade moved them)."""


class _TapQueue:
    """Stands in for the receiver's decoder queue: frames go to ``sink``, ``None`` (stop) goes
    through to the idle decoder thread so ``RTCRtpReceiver.stop()`` can still join it."""

    def __init__(self, sink: FrameSink) -> None:
        self._sink = sink
        self._control: queue.Queue[Any] = queue.Queue()

    def put(self, item: Any) -> None:
        if item is None:
            self._control.put(None)
            return
        codec, frame = item
        try:
            self._sink(codec, frame)
        except Exception:  # a sink bug must not kill the receiver's RTP handling
            log.exception("encoded frame sink failed")

    def get(self, *args: Any, **kwargs: Any) -> Any:
        return self._control.get(*args, **kwargs)


def tap_receiver(receiver: RTCRtpReceiver, sink: FrameSink) -> None:
    """Route the receiver's complete encoded frames to ``sink`` (called on the event loop).

    Must run before ``receiver.receive()`` starts the decoder thread (i.e. before the answer is
    applied / inside ``pc.on("track")``); raises ``AiortcInternalsChanged`` otherwise.
    """
    if not hasattr(receiver, _DECODER_QUEUE) or not hasattr(receiver, _DECODER_THREAD):
        raise AiortcInternalsChanged("RTCRtpReceiver has no private decoder queue/thread")
    if getattr(receiver, _DECODER_THREAD) is not None:
        raise AiortcInternalsChanged("receiver already started its decoder thread; tap it earlier")
    setattr(receiver, _DECODER_QUEUE, _TapQueue(sink))


def is_tapped(receiver: RTCRtpReceiver) -> bool:
    return isinstance(getattr(receiver, _DECODER_QUEUE, None), _TapQueue)


def media_ssrcs(receiver: RTCRtpReceiver) -> list[int]:
    """SSRCs the receiver has heard from, minus retransmission (RTX) ones."""
    rtx = set(getattr(receiver, _RTX_SSRC, {}) or {})
    return [s.source for s in receiver.getSynchronizationSources() if s.source not in rtx]


async def request_keyframe(receiver: RTCRtpReceiver) -> bool:
    """Send a PLI to the publisher of ``receiver``; False if no media SSRC is known yet."""
    ssrcs = media_ssrcs(receiver)
    for ssrc in ssrcs:
        await receiver._send_rtcp_pli(ssrc)
    return bool(ssrcs)


def hook_sender_keyframe(sender: RTCRtpSender, on_keyframe_request: Callable[[], None]) -> None:
    """Replace the sender's ``_send_keyframe`` (PLI/FIR from the subscriber) with our callback;
    the sender never encodes on the encoded path, so its own keyframe flag is useless."""
    if not callable(getattr(sender, "_send_keyframe", None)):
        raise AiortcInternalsChanged("RTCRtpSender._send_keyframe is gone")
    sender._send_keyframe = on_keyframe_request  # type: ignore[method-assign]


def check_internals() -> None:
    """Assert that every private name used here exists in the installed aiortc (startup check)."""
    problems: list[str] = []
    if aiortc.__version__ != AIORTC_VERSION:
        problems.append(f"aiortc {aiortc.__version__} installed, the encoded path is tested on {AIORTC_VERSION}")
    for name in ("_send_rtcp_pli", "_handle_rtp_packet"):
        if not callable(getattr(RTCRtpReceiver, name, None)):
            problems.append(f"RTCRtpReceiver.{name} missing")
    if not callable(getattr(RTCRtpSender, "_send_keyframe", None)):
        problems.append("RTCRtpSender._send_keyframe missing")
    for enc in (Vp8Encoder, OpusEncoder):
        if not callable(getattr(enc, "pack", None)):
            problems.append(f"{enc.__name__}.pack missing")
    if problems:
        raise AiortcInternalsChanged("; ".join(problems))


def check_receiver_internals(receiver: RTCRtpReceiver) -> None:
    """Assert the per-instance private attributes exist on a real receiver."""
    for name in (_DECODER_QUEUE, _DECODER_THREAD, _RTX_SSRC, _ACTIVE_SSRC):
        if not hasattr(receiver, name):
            raise AiortcInternalsChanged(f"RTCRtpReceiver instance has no {name}")
    if not isinstance(getattr(receiver, _DECODER_QUEUE), queue.Queue | _TapQueue):
        raise AiortcInternalsChanged("RTCRtpReceiver decoder queue is not a queue.Queue")


def schedule(coro: Any) -> asyncio.Future[Any]:
    """Fire-and-forget a coroutine, logging (not losing) its exception."""
    fut = asyncio.ensure_future(coro)

    def _done(f: asyncio.Future[Any]) -> None:
        if not f.cancelled() and f.exception() is not None:
            log.warning("background relay task failed: %r", f.exception())

    fut.add_done_callback(_done)
    return fut


def vp8_is_keyframe(data: bytes) -> bool:
    """VP8 payload header (RFC 6386 §9.1): bit 0 of the first byte is 0 for a keyframe."""
    return len(data) >= 10 and (data[0] & 0x01) == 0 and data[3:6] == b"\x9d\x01\x2a"


def vp8_dimensions(data: bytes) -> tuple[int, int] | None:
    """Width and height from a VP8 keyframe header, or None for an inter frame."""
    if not vp8_is_keyframe(data):
        return None
    width = int.from_bytes(data[6:8], "little") & 0x3FFF
    height = int.from_bytes(data[8:10], "little") & 0x3FFF
    return width, height
