"""Training sets on a LocalVolume: create, versions, manifests, caption editing."""
from __future__ import annotations

import io
import json
import zipfile

import pytest
from PIL import Image, ImageDraw

from lib.training.datasets import DatasetError, TrainingSets, validate_name, validate_trigger
from lib.training.uploads import UploadRejected, read_files, read_zip
from lib.volume import LocalVolume, VolumeError


def photo(seed: int) -> bytes:
    image = Image.new("RGB", (700, 600), (seed * 37 % 255, seed * 91 % 255, 120))
    ImageDraw.Draw(image).ellipse((50 + seed * 10, 40, 400, 380), fill=(240, 200, 180))
    out = io.BytesIO()
    image.save(out, "JPEG")
    return out.getvalue()


@pytest.fixture
def volume(tmp_path):
    return LocalVolume(tmp_path / "volume")


@pytest.fixture
def sets(volume):
    return TrainingSets(volume)


def files(volume) -> list[str]:
    return [o.key for o in volume.list("")]


def test_names_and_trigger_words_are_validated():
    assert validate_name(" ava ") == "ava"
    for bad in ("", "A", "Ava", "../x", "a b", "a/b", "-ava", "x" * 49):
        with pytest.raises(DatasetError):
            validate_name(bad)
    assert validate_trigger("ava_tok") == "ava_tok"
    for bad in ("", "a", "ava tok", "[trigger]", "ava,tok"):
        with pytest.raises(DatasetError):
            validate_trigger(bad)


def test_create_then_first_and_second_version(sets, volume):
    created = sets.create("ava", "ava_tok", user="kim@example.com")
    assert created.versions == ()
    with pytest.raises(DatasetError, match="already exists"):
        sets.create("ava", "other_tok", user="x")

    draft = sets.draft("ava")
    assert draft.images == [] and draft.parent is None
    with pytest.raises(DatasetError, match="Add images"):
        sets.save(draft, user="kim@example.com")
    draft.add(read_files([("IMG 0001.jpg", photo(1)), ("IMG 0001.txt", b"ava_tok smiling"),
                          ("b.jpg", photo(2))]))
    assert [i.name for i in draft.images] == ["IMG_0001.jpg", "b.jpg"]
    m1 = sets.save(draft, user="kim@example.com", note="first upload")
    assert m1.version == "v1" and m1.parent is None and m1.created_by == "kim@example.com"
    assert sorted(files(volume)) == ["datasets/ava/set.json", "datasets/ava/v1/IMG_0001.jpg",
                                     "datasets/ava/v1/IMG_0001.txt", "datasets/ava/v1/b.jpg",
                                     "datasets/ava/v1/manifest.json"]
    assert volume.read("datasets/ava/v1/IMG_0001.txt") == b"ava_tok smiling"

    manifest = json.loads(volume.read("datasets/ava/v1/manifest.json"))
    assert manifest["trigger_word"] == "ava_tok" and manifest["image_count"] == 2
    first = manifest["files"][0]
    assert first["image"] == "IMG_0001.jpg" and first["caption_file"] == "IMG_0001.txt"
    assert first["size"] == len(volume.read("datasets/ava/v1/IMG_0001.jpg"))
    assert len(first["sha256"]) == 64 and len(first["phash"]) == 16

    # Edit: caption the second image, insert the trigger word, drop nothing -> v2 with parent v1.
    draft = sets.draft("ava")
    assert draft.parent == "v1" and all(i.data is None for i in draft.images)
    draft.set_captions({"b.jpg": "a portrait"})
    assert draft.insert_trigger() == 1
    assert draft.captions() == {"IMG_0001.jpg": "ava_tok smiling", "b.jpg": "ava_tok, a portrait"}
    m2 = sets.save(draft, user="lee@example.com")
    assert (m2.version, m2.parent, m2.created_by) == ("v2", "v1", "lee@example.com")
    assert sets.versions("ava") == ["v1", "v2"]
    assert volume.read("datasets/ava/v2/b.txt") == b"ava_tok, a portrait"
    # Unchanged images are copied with identical bytes; v1 is untouched.
    assert volume.read("datasets/ava/v2/b.jpg") == volume.read("datasets/ava/v1/b.jpg")
    assert not volume.exists("datasets/ava/v1/b.txt")
    assert sets.get("ava").latest == "v2"
    assert [s.name for s in sets.list()] == ["ava"]


def test_saving_an_unchanged_draft_is_refused(sets):
    sets.create("ava", "ava_tok", user="kim")
    draft = sets.draft("ava")
    draft.add(read_files([("a.jpg", photo(1))]))
    sets.save(draft, user="kim")
    with pytest.raises(DatasetError, match="Nothing changed since v1"):
        sets.save(sets.draft("ava"), user="kim")
    # Acknowledging a warning is a change worth recording.
    draft = sets.draft("ava")
    draft.acknowledged.add("few_images:")
    assert sets.save(draft, user="kim").acknowledged == ("few_images:",)


def test_removing_images_and_find_replace(sets):
    sets.create("ava", "ava_tok", user="kim")
    draft = sets.draft("ava")
    draft.add(read_files([("a.jpg", photo(1)), ("a.txt", b"ava_tok Woman in red"),
                          ("b.jpg", photo(2)), ("b.txt", b"ava_tok woman, womanly"),
                          ("c.jpg", photo(3))]))
    assert draft.find_replace("woman", "person", whole_word=True) == 2
    assert draft.captions()["a.jpg"] == "ava_tok person in red"
    assert draft.captions()["b.jpg"] == "ava_tok person, womanly"
    assert draft.find_replace("RED", "blue", case_sensitive=True) == 0
    with pytest.raises(DatasetError):
        draft.find_replace("", "x")
    draft.remove(["c.jpg"])
    with pytest.raises(DatasetError, match="not in this training set"):
        draft.remove(["zzz.jpg"])
    rows = draft.caption_rows()
    assert [(r["image"], r["has_trigger"]) for r in rows] == [("a.jpg", True), ("b.jpg", True)]
    manifest = sets.save(draft, user="kim")
    assert [f.image for f in manifest.files] == ["a.jpg", "b.jpg"]


def test_duplicate_upload_names_get_unique_file_names(sets):
    sets.create("ava", "ava_tok", user="kim")
    draft = sets.draft("ava")
    draft.add(read_files([("x.jpg", photo(1))]))
    added = draft.add(read_zip(_zip([("one/x.jpg", photo(2)), ("two/x.jpg", photo(3))])))
    assert added == ["x_2.jpg", "x_3.jpg"]


def test_a_rejected_zip_writes_nothing(sets, volume):
    sets.create("ava", "ava_tok", user="kim")
    before = files(volume)
    draft = sets.draft("ava")
    with pytest.raises(UploadRejected):
        draft.add(read_zip(_zip([("a.jpg", photo(1)), ("../evil.jpg", photo(2))])))
    assert draft.images == []
    assert files(volume) == before


def test_a_failed_save_leaves_no_listed_version(sets, volume, monkeypatch):
    sets.create("ava", "ava_tok", user="kim")
    draft = sets.draft("ava")
    draft.add(read_files([("a.jpg", photo(1)), ("b.jpg", photo(2))]))
    real_write = volume.write

    def failing_write(key, data, **kw):
        if key.endswith("manifest.json"):
            raise VolumeError("disk full")
        return real_write(key, data, **kw)

    monkeypatch.setattr(volume, "write", failing_write)
    with pytest.raises(VolumeError):
        sets.save(draft, user="kim")
    monkeypatch.undo()
    assert sets.versions("ava") == []
    assert files(volume) == ["datasets/ava/set.json"]
    # The next save still works (a folder left empty by the failed one is skipped, not reused).
    saved = sets.save(draft, user="kim")
    assert sets.versions("ava") == [saved.version]
    assert [f.image for f in saved.files] == ["a.jpg", "b.jpg"]


def test_readiness_of_a_loaded_version_uses_the_manifest(sets):
    sets.create("ava", "ava_tok", user="kim")
    draft = sets.draft("ava")
    draft.add(read_files([("a.jpg", photo(1)), ("a.txt", b"a woman")]))
    sets.save(draft, user="kim")
    report = sets.draft("ava").readiness()
    codes = {f.code for f in report.findings}
    assert {"few_images", "low_resolution", "caption_without_trigger"} <= codes


def test_unknown_sets_and_versions(sets):
    with pytest.raises(DatasetError, match="no training set named"):
        sets.draft("nobody")
    sets.create("ava", "ava_tok", user="kim")
    with pytest.raises(DatasetError, match="no version 'v9'"):
        sets.manifest("ava", "v9")


def _zip(entries) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return out.getvalue()


def test_a_saved_versions_thumbnails_are_made_once_for_every_later_session(sets, volume, tmp_path, monkeypatch):
    # Each new session opens a new draft: its thumbnails used to be read from the volume and shrunk again
    # (0.5 s for a set of 20 on the simulator; one S3 download per photo on a real volume).
    sets.create("ava", "ava_tok", user="kim")
    draft = sets.draft("ava")
    draft.add(read_files([("a.jpg", photo(1)), ("b.jpg", photo(2))]))
    sets.save(draft, user="kim")
    cache = tmp_path / "previews"
    first = [i.thumbnail(volume, cache) for i in sets.draft("ava").images]
    assert all(Image.open(io.BytesIO(t)).format == "JPEG" for t in first)

    reads = []
    real_read = LocalVolume.read
    monkeypatch.setattr(LocalVolume, "read", lambda self, key: reads.append(key) or real_read(self, key))
    later = sets.draft("ava")   # another session
    reads.clear()
    assert [i.thumbnail(volume, cache) for i in later.images] == first
    assert reads == []
