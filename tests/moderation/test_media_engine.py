"""Media preparation: probing, 16 kHz audio, sampled frames, and plain reasons for bad files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from moderation.media_prep import (
    MediaError,
    decode_audio_16k,
    ffmpeg_exe,
    load_audio_16k,
    probe,
    sample_frames,
)
from tests.moderation import fixtures as fx

SPEECH = "Open your book to page forty two."


@pytest.fixture(scope="module")
def wav() -> Path:
    return fx.speech(SPEECH)


def test_ffmpeg_comes_from_the_pip_package() -> None:
    exe = ffmpeg_exe()
    assert "imageio_ffmpeg" in exe and os.access(exe, os.X_OK)


@pytest.mark.parametrize("suffix", [".wav", ".webm", ".mp3", ".m4a"])
def test_audio_formats_decode_to_16k_mono_float(wav: Path, suffix: str) -> None:
    path = wav if suffix == ".wav" else fx.transcode(wav, suffix)
    info = probe(path)
    assert info.kind == "audio" and info.has_audio and not info.has_video
    assert info.duration is not None and 1.0 < info.duration < 5.0
    audio = load_audio_16k(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) / 16_000 - info.duration) < 0.2
    assert 0.01 < float(np.abs(audio).max()) <= 1.0


def test_image_is_one_frame() -> None:
    path = fx.text_image(["Lesson 3: fractions"])
    info = probe(path)
    assert (info.kind, info.width, info.height) == ("image", 1280, 720)
    (frame,) = sample_frames(path)
    assert frame.t == 0.0 and frame.image.shape == (720, 1280, 3)


def test_video_frames_are_kept_on_scene_changes_only() -> None:
    scenes = [(2.0, ["Lesson 3: fractions"]), (2.0, ["1/2 + 1/4 = 3/4"]), (2.0, ["1/2 + 1/4 = 3/4", "homework: p. 12"])]
    path = fx.screen_video(scenes)
    info = probe(path)
    assert info.kind == "video" and info.has_video and not info.has_audio
    frames = sample_frames(path, info=info)
    # Three scenes, sampled at 2 fps over 6 s: three kept frames, one per scene.
    assert [round(f.t) for f in frames] == [0, 2, 4]


def test_frames_are_bounded_and_the_first_is_always_kept() -> None:
    scenes = [(1.0, [f"slide {i}"]) for i in range(6)]
    path = fx.screen_video(scenes)
    frames = sample_frames(path, max_frames=3)
    assert len(frames) == 3 and frames[0].t == 0.0
    assert [f.t for f in frames] == sorted(f.t for f in frames)


def test_video_with_sound_has_both(wav: Path) -> None:
    path = fx.screen_video([(3.0, ["hello"])], audio=wav)
    info = probe(path)
    assert info.has_audio and info.has_video
    assert len(load_audio_16k(path)) > 16_000


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: fx.junk(".wav", b""), "empty (0 bytes)"),
        (lambda: fx.junk(".mp4", bytes(range(256)) * 40), "not a readable audio or video file"),
        (lambda: fx.junk(".png", b"hello, I am a text file"), "not a readable image"),
        (lambda: fx.junk(".jpg", b"\xff\xd8\xff" + b"\x00" * 50), "not a readable image"),
        (lambda: fx.truncated(fx.transcode(fx.speech(SPEECH), ".webm"), 100), "ends too early or is damaged"),
        (lambda: fx.junk(".webm", b"\x1aE\xdf\xa3" + os.urandom(0) + b"\x00" * 300), "not a readable audio or video"),
    ],
)
def test_bad_files_raise_a_plain_reason(make, reason: str) -> None:  # type: ignore[no-untyped-def]
    path = make()
    with pytest.raises(MediaError) as err:
        probe(path)
    assert reason in err.value.detail
    assert err.value.detail.startswith(path.name)
    assert err.value.status == 422


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="not found"):
        probe(tmp_path / "nope.wav")


def test_limits_on_size_and_length(wav: Path) -> None:
    with pytest.raises(MediaError, match="too large"):
        probe(wav, max_bytes=1000)
    with pytest.raises(MediaError, match="too long"):
        probe(wav, max_duration=1.0)
    # Decoding stops at the limit even when the container hides its length.
    assert len(load_audio_16k(wav, max_duration=1.0)) == 16_000


def test_a_webm_cut_in_the_middle_gives_what_decodes_and_says_so(wav: Path) -> None:
    whole = fx.transcode(wav, ".webm")
    cut = fx.truncated(whole, 0.5)
    audio, warnings = decode_audio_16k(cut)
    full = load_audio_16k(whole)
    assert 0.2 * len(full) < len(audio) < 0.8 * len(full)
    assert warnings == ["the file ends early (cut short); analysed the part that decodes"]
    assert decode_audio_16k(whole)[1] == []


def test_silence_decodes_to_zeros() -> None:
    audio = load_audio_16k(fx.silence(2.0))
    assert len(audio) == 32_000 and not np.any(audio)


def test_single_frame_video_yields_its_frame(tmp_path: Path) -> None:
    """A camera snapshot is a one-frame WebM; the fps filter alone would return nothing."""
    import av

    from moderation.media_prep import sample_frames

    path = tmp_path / "snapshot.webm"
    with av.open(str(path), "w", format="webm") as container:
        stream = container.add_stream("libvpx", rate=30)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        frame = av.VideoFrame.from_ndarray(np.full((240, 320, 3), 200, np.uint8), format="bgr24")
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    frames = sample_frames(path)
    assert len(frames) == 1
    assert frames[0].image.shape == (240, 320, 3)
    assert abs(float(frames[0].image.mean()) - 200) < 10
