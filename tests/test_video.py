import pytest

from engine.errors import VideoError
from engine.io.video import probe, sample_frames, sample_indices


def test_sample_indices_are_even_and_bounded():
    assert sample_indices(400, 10) == [20, 60, 100, 140, 180, 220, 260, 300, 340, 380]
    assert sample_indices(3, 10) == [0, 1, 2]
    assert sample_indices(0, 10) == []


def test_samples_requested_frames_by_seeking(clip_path):
    path = clip_path(n_frames=30)
    info = probe(path)
    assert info.frame_count == 30 and info.width == 64 and info.height == 96
    frames = sample_frames(path, 5)
    assert [f.index for f in frames] == [3, 9, 15, 21, 27]
    assert frames[0].image.shape == (96, 64, 3)


def test_one_frame_clip(clip_path):
    assert len(sample_frames(clip_path(n_frames=1), 10)) == 1


def _png_bytes() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (255, 0, 0)).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("content", [b"", b"hello, this is text", bytes(range(256)) * 40, _png_bytes()],
                         ids=["empty", "text", "random-bytes", "png-renamed-mp4"])
def test_not_a_video_is_a_clear_error(tmp_path, content):
    p = tmp_path / "fake.mp4"
    p.write_bytes(content)
    with pytest.raises(VideoError):
        sample_frames(p, 5)


def test_truncated_video_is_a_clear_error_or_partial(clip_path, tmp_path):
    data = clip_path(n_frames=30).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 3])
    try:
        frames = sample_frames(cut, 5)
    except VideoError as e:
        assert "cut.mp4" in str(e)
    else:
        assert 0 < len(frames) <= 5


def test_missing_file(tmp_path):
    with pytest.raises(VideoError, match="not found"):
        sample_frames(tmp_path / "nope.mp4")


def test_a_clip_served_over_http_is_sampled_and_a_dead_url_is_a_clear_error(clip_path, serve):
    """A URL is read by OpenCV's FFmpeg backend: a clip on a local HTTP server is sampled like a file."""
    import socket

    from engine.errors import VideoError
    from engine.io.video import is_url, sample_frames

    path = clip_path(n_frames=20)
    url = f"{serve(path.parent)}/{path.name}"
    assert is_url(url) and not is_url(path)
    frames = sample_frames(url, 4)
    assert len(frames) == 4 and frames[0].image.shape == sample_frames(path, 4)[0].image.shape
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/clip.mp4"
    with pytest.raises(VideoError, match="cannot open the stream"):
        sample_frames(dead, 4)
