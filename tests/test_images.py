import numpy as np
import pytest
from PIL import Image

from engine.errors import ImageError
from engine.io.images import crop, read_rgb


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "CMYK", "P", "I;16"])
def test_any_mode_reads_as_rgb(tmp_path, mode):
    im = Image.new("RGB", (20, 10), (200, 30, 40)).convert(mode) if mode != "I;16" else Image.new("I;16", (20, 10), 40000)
    path = tmp_path / ("x.png" if mode != "CMYK" else "x.jpg")
    im.save(path)
    arr = read_rgb(path)
    assert arr.shape == (10, 20, 3) and arr.dtype == np.uint8


def test_exif_rotation_is_applied(tmp_path):
    im = Image.new("RGB", (30, 10), (0, 0, 0))
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    im.save(tmp_path / "r.jpg", exif=exif)
    assert read_rgb(tmp_path / "r.jpg").shape[:2] == (30, 10)


def test_corrupt_and_tiny_images_are_refused(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    with pytest.raises(ImageError):
        read_rgb(tmp_path / "bad.jpg")
    Image.new("RGB", (1, 1)).save(tmp_path / "one.png")
    with pytest.raises(ImageError, match="too small"):
        read_rgb(tmp_path / "one.png")


@pytest.mark.slow
def test_decompression_bomb_is_refused_without_decoding(tmp_path):
    Image.new("1", (30000, 30000)).save(tmp_path / "bomb.png")  # tiny file, 900 megapixels
    with pytest.raises(ImageError, match="too large|not a readable"):
        read_rgb(tmp_path / "bomb.png")


def test_crop_clips_to_the_image_and_falls_back_on_degenerate_boxes():
    img = np.zeros((100, 50, 3), np.uint8)
    assert crop(img, (-10, -10, 20, 30)).shape == (30, 20, 3)
    assert crop(img, (10, 10, 11, 11)).shape == (100, 50, 3)
