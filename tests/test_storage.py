import pytest

from sparkyfruit import storage
from sparkyfruit.errors import ConfigError


@pytest.mark.parametrize(
    "text, expected",
    [
        ("s3://bucket/Training/", storage.Location("s3", "bucket", "Training")),
        ("s3a://bucket/a/b", storage.Location("s3", "bucket", "a/b")),
        ("S3://bucket", storage.Location("s3", "bucket", "")),
        ("file:///data/images", storage.Location("file", path="/data/images")),
        ("/data/images/", storage.Location("file", path="/data/images")),
    ],
)
def test_parse_location(text, expected):
    assert storage.parse_location(text) == expected


def test_relative_path_becomes_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert storage.parse_location("images").path == str(tmp_path / "images")


@pytest.mark.parametrize("text", ["gs://bucket/x", "http://host/x", "s3://", "s3://Bad_Bucket/x", "file://host/x", " "])
def test_bad_locations_are_config_errors(text):
    with pytest.raises(ConfigError):
        storage.parse_location(text, "--input")


def test_canonical_uris_and_labels():
    assert storage.canonical_image_uri("s3a://b/Apple Braeburn/1.jpg") == "s3://b/Apple Braeburn/1.jpg"
    assert storage.canonical_image_uri("file:/data/Kiwi/1.jpg") == "file:///data/Kiwi/1.jpg"
    assert storage.label_of("s3://b/Training/Apple Braeburn/1.jpg") == "Apple Braeburn"
    assert storage.label_of("file:///data/Kiwi/1.jpg") == "Kiwi"
    assert storage.label_of("s3://b/1.jpg") is None


def test_default_pattern_is_case_insensitive_jpg_jpeg_png():
    regex = storage.compile_pattern(storage.default_pattern())
    for name in ["a.jpg", "b.JPG", "c.Jpeg", "d.png", "e.PNG"]:
        assert regex.fullmatch(name), name
    for name in ["f.gif", "g.jpg.txt", "jpg", "h.pngx"]:
        assert not regex.fullmatch(name), name


def test_pattern_braces_classes_and_negation():
    regex = storage.compile_pattern("r_*_{100,200}.[jp][pn]g")
    assert regex.fullmatch("r_5_100.jpg") and regex.fullmatch("r_9_200.png")
    assert not regex.fullmatch("5_100.jpg") and not regex.fullmatch("r_5_300.jpg")
    assert storage.compile_pattern("[^a]*.jpg").fullmatch("b.jpg")
    assert not storage.compile_pattern("[^a]*.jpg").fullmatch("a.jpg")


@pytest.mark.parametrize("pattern", ["dir/*.jpg", "*.{jpg"])
def test_bad_patterns(pattern):
    with pytest.raises(ConfigError):
        storage.compile_pattern(pattern)


def test_local_listing_skips_hidden_and_non_matching(tmp_path):
    for name in ["Kiwi/1.jpg", "Kiwi/2.PNG", "Kiwi/notes.txt", "Kiwi/.hidden.jpg", "_tmp/3.jpg", "Lemon/4.jpeg"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    location = storage.parse_location(str(tmp_path))
    found = storage.list_images(location, storage.default_pattern(), s3=None)
    assert found == [f"file://{tmp_path}/Kiwi/1.jpg", f"file://{tmp_path}/Kiwi/2.PNG", f"file://{tmp_path}/Lemon/4.jpeg"]
    assert storage.list_images(location, storage.default_pattern(), s3=None, limit=2) == found[:2]
