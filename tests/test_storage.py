import pytest

from sparkyfruit import locations, storage
from sparkyfruit.errors import ConfigError


@pytest.mark.parametrize(
    "text, expected",
    [
        ("s3://bucket/Training/", locations.Location("s3", "bucket", "Training")),
        ("s3a://bucket/a/b", locations.Location("s3", "bucket", "a/b")),
        ("S3://bucket", locations.Location("s3", "bucket", "")),
        ("file:///data/images", locations.Location("file", path="/data/images")),
        ("/data/images/", locations.Location("file", path="/data/images")),
    ],
)
def test_parse_location(text, expected):
    assert locations.parse_location(text) == expected


def test_relative_path_becomes_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert locations.parse_location("images").path == str(tmp_path / "images")


@pytest.mark.parametrize("text", ["gs://bucket/x", "http://host/x", "s3://", "s3://Bad_Bucket/x", "file://host/x", " "])
def test_bad_locations_are_config_errors(text):
    with pytest.raises(ConfigError):
        locations.parse_location(text, "--input")


def test_canonical_uris_and_labels():
    assert locations.canonical_image_uri("s3a://b/Apple Braeburn/1.jpg") == "s3://b/Apple Braeburn/1.jpg"
    assert locations.canonical_image_uri("file:/data/Kiwi/1.jpg") == "file:///data/Kiwi/1.jpg"
    assert locations.label_of("s3://b/Training/Apple Braeburn/1.jpg") == "Apple Braeburn"
    assert locations.label_of("file:///data/Kiwi/1.jpg") == "Kiwi"
    assert locations.label_of("s3://b/1.jpg") is None


def test_default_pattern_is_case_insensitive_jpg_jpeg_png():
    regex = locations.compile_pattern(locations.default_pattern())
    for name in ["a.jpg", "b.JPG", "c.Jpeg", "d.png", "e.PNG"]:
        assert regex.fullmatch(name), name
    for name in ["f.gif", "g.jpg.txt", "jpg", "h.pngx"]:
        assert not regex.fullmatch(name), name


def test_pattern_braces_classes_and_negation():
    regex = locations.compile_pattern("r_*_{100,200}.[jp][pn]g")
    assert regex.fullmatch("r_5_100.jpg") and regex.fullmatch("r_9_200.png")
    assert not regex.fullmatch("5_100.jpg") and not regex.fullmatch("r_5_300.jpg")
    assert locations.compile_pattern("[^a]*.jpg").fullmatch("b.jpg")
    assert not locations.compile_pattern("[^a]*.jpg").fullmatch("a.jpg")


@pytest.mark.parametrize("pattern", ["dir/*.jpg", "*.{jpg"])
def test_bad_patterns(pattern):
    with pytest.raises(ConfigError):
        locations.compile_pattern(pattern)


def test_local_listing_skips_hidden_and_non_matching(tmp_path):
    for name in ["Kiwi/1.jpg", "Kiwi/2.PNG", "Kiwi/notes.txt", "Kiwi/.hidden.jpg", "_tmp/3.jpg", "Lemon/4.jpeg"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    location = locations.parse_location(str(tmp_path))
    found = storage.list_images(location, locations.default_pattern(), s3=None)
    assert found == [
        f"file://{tmp_path}/Kiwi/1.jpg",
        f"file://{tmp_path}/Kiwi/2.PNG",
        f"file://{tmp_path}/Lemon/4.jpeg",
    ]
    assert storage.list_images(location, locations.default_pattern(), s3=None, limit=2) == found[:2]


@pytest.mark.s3
def test_a_named_profile_is_used_for_s3_listing(s3, tmp_path, monkeypatch):
    """--profile goes through boto3's own credential files, not through env keys."""
    from devtools import local_s3
    from sparkyfruit.config import S3Settings

    local_s3.client(s3.endpoint).create_bucket(Bucket="profiled")
    local_s3.client(s3.endpoint).put_object(Bucket="profiled", Key="in/Kiwi/1.jpg", Body=b"x")
    credentials = tmp_path / "credentials"
    credentials.write_text("[fruit]\naws_access_key_id = profile-key\naws_secret_access_key = profile-secret\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    settings = S3Settings(s3_endpoint=s3.endpoint, profile="fruit")
    found = storage.list_images(locations.parse_location("s3://profiled/in"), locations.default_pattern(), settings)
    assert found == ["s3://profiled/in/Kiwi/1.jpg"]
    client = storage.s3_client(settings)
    assert client._request_signer._credentials.access_key == "profile-key"
    with pytest.raises(ConfigError, match="--profile 'missing' is not in the AWS config"):
        storage.s3_client(S3Settings(s3_endpoint=s3.endpoint, profile="missing"))


def test_profile_reaches_s3a_through_the_sdk_provider_not_keys(tmp_path, monkeypatch):
    from sparkyfruit.config import RunConfig
    from sparkyfruit.spark.options import s3a_options, spark_options

    credentials = tmp_path / "credentials"
    credentials.write_text(
        "[fruit]\naws_access_key_id = AKIAPROFILEKEY000001\naws_secret_access_key = profile/secret+1\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    config = RunConfig(input="s3://bucket/in", output=str(tmp_path / "o"), profile="fruit")
    options = spark_options(config)
    assert s3a_options(config)["fs.s3a.aws.credentials.provider"].endswith("ProfileCredentialsProvider")
    assert options["spark.executorEnv.AWS_PROFILE"] == "fruit"
    assert not any("secret" in key or "access.key" in key for key in options)
    # the profile's name travels, and neither of its keys does, in any value
    values = " ".join(options.values()) + " ".join(s3a_options(config).values())
    assert "profile/secret+1" not in values and "AKIAPROFILEKEY000001" not in values


def test_keys_and_paths_are_taken_as_written():
    """An image may be named like a URL's query or fragment; nothing of it is lost."""
    assert locations.parse_location("s3://bucket/Kiwi/what?1#2.jpg").key == "Kiwi/what?1#2.jpg"
    assert locations.parse_location("file:///data/Kiwi/#1.jpg").path == "/data/Kiwi/#1.jpg"


@pytest.mark.s3
def test_a_delete_that_s3_refuses_for_some_keys_is_an_error_naming_them(s3):
    """DeleteObjects answers 200 with a list of keys it kept: each one is reported, never passed over."""
    from devtools import local_s3
    from devtools.fault_proxy import FaultProxy
    from sparkyfruit.errors import StorageError
    from sparkyfruit.s3_settings import S3Settings

    client = local_s3.client(s3.endpoint)
    client.create_bucket(Bucket="out")
    names = ["part-0.parquet", "part-1.parquet", "_shards/000001.json"]
    for name in names:
        client.put_object(Bucket="out", Key=f"vectors/{name}", Body=b"x")
    proxy = FaultProxy(int(s3.endpoint.rsplit(":", 1)[1]), fraction=0.0, keep_on_delete=("part-1",)).start()
    try:
        location = locations.parse_location("s3://out/vectors")
        with pytest.raises(StorageError, match=r"Could not delete 1 of 3 files .*part-1.parquet \(AccessDenied\)"):
            storage.delete_files(location, names, S3Settings(s3_endpoint=proxy.endpoint))
    finally:
        proxy.stop()
    assert proxy.counts["kept_on_delete"] == 1
    left = [item["Key"] for item in client.list_objects_v2(Bucket="out").get("Contents", [])]
    assert left == ["vectors/part-1.parquet"]  # the others went


def test_a_local_file_that_cannot_be_deleted_is_an_error_naming_it(tmp_path):
    from sparkyfruit.errors import StorageError
    from sparkyfruit.s3_settings import S3Settings

    (tmp_path / "part-0.parquet").mkdir()  # a folder where a file was: unlink refuses it, even for root
    (tmp_path / "part-0.parquet" / "inside").write_bytes(b"x")
    (tmp_path / "part-1.parquet").write_bytes(b"x")
    with pytest.raises(StorageError, match=r"Could not delete 1 of 2 files .*part-0.parquet \("):
        storage.delete_files(
            locations.parse_location(str(tmp_path)), ["part-0.parquet", "part-1.parquet"], S3Settings()
        )
    assert (tmp_path / "part-0.parquet" / "inside").exists() and not (tmp_path / "part-1.parquet").exists()


@pytest.mark.s3
def test_listing_the_files_that_start_with_a_name_looks_only_there(s3, tmp_path):
    """What a shard's leftovers are found by: its files' name start, directly in the output, on S3 with one
    listing of that prefix."""
    from devtools import local_s3
    from sparkyfruit.s3_settings import S3Settings

    names = ["part-a-00001-0.parquet", "part-a-00001-1.parquet", "part-a-00002-0.parquet", "part-a-00001-x/y"]
    client = local_s3.client(s3.endpoint)
    client.create_bucket(Bucket="listing")
    for name in [*names, "_delta_log/part-a-00001-z.json"]:
        client.put_object(Bucket="listing", Key=f"out/{name}", Body=b"x")
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    expected = ["part-a-00001-0.parquet", "part-a-00001-1.parquet"]
    for where, settings in ((str(tmp_path), S3Settings()), ("s3://listing/out", S3Settings(s3_endpoint=s3.endpoint))):
        location = locations.parse_location(where)
        assert storage.list_files(location, settings, starting_with="part-a-00001-") == expected, where
        assert len(storage.list_files(location, settings)) == 5, where
