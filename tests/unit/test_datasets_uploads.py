"""Uploads: multi-file and zip imports, and every kind of hostile zip refused as a whole."""
from __future__ import annotations

import io
import stat
import zipfile

import pytest
from PIL import Image

from lib.training import uploads
from lib.training.uploads import UploadRejected, read_files, read_zip


def jpeg(seed: int = 0, size=(640, 640)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (seed * 40 % 255, 90, 160)).save(out, "JPEG")
    return out.getvalue()


def make_zip(entries, compression=zipfile.ZIP_DEFLATED) -> bytes:
    """entries: (name or ZipInfo, bytes)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return out.getvalue()


def offenders(exc: UploadRejected) -> dict[str, str]:
    return {o.name: o.reason for o in exc.offenders}


def test_a_clean_zip_pairs_captions_by_stem():
    data = make_zip([
        ("ava/img1.jpg", jpeg(1)), ("ava/img1.txt", b"ava_tok smiling\n"),
        ("ava/img2.jpg", jpeg(2)),
        ("ava/orphan.txt", b"no image for me"),
        ("__MACOSX/ava/._img1.jpg", b"\x00\x05\x16\x07junk"),
        (".DS_Store", b"junk"),
    ])
    result = read_zip(data)
    by_stem = {i.stem: i for i in result.images}
    assert set(by_stem) == {"ava/img1", "ava/img2"}
    assert by_stem["ava/img1"].caption == "ava_tok smiling"
    assert by_stem["ava/img2"].caption is None
    assert result.notes == ["ava/orphan.txt has no matching image and was skipped"]


def test_multi_file_upload_with_captions_and_a_zip():
    files = [("a.jpg", jpeg(1)), ("a.txt", b"ava_tok at the beach"),
             ("more.zip", make_zip([("b.jpg", jpeg(2))]))]
    result = read_files(files)
    assert sorted((i.stem, i.caption) for i in result.images) == [("a", "ava_tok at the beach"), ("b", None)]


def test_path_traversal_and_absolute_paths_are_refused():
    data = make_zip([("ok.jpg", jpeg()), ("../../etc/evil.jpg", jpeg()),
                     ("/abs/evil.jpg", jpeg()), ("C:/win/evil.jpg", jpeg()), ("a\\..\\..\\x.jpg", jpeg())])
    with pytest.raises(UploadRejected) as err:
        read_zip(data)
    found = offenders(err.value)
    assert found["../../etc/evil.jpg"] == "path traversal (..)"
    assert found["/abs/evil.jpg"] == "absolute path"
    assert found["C:/win/evil.jpg"] == "absolute path"
    assert found["a\\..\\..\\x.jpg"] == "path traversal (..)"
    assert "ok.jpg" not in found


def test_symlinks_are_refused():
    link = zipfile.ZipInfo("link.jpg")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    with pytest.raises(UploadRejected) as err:
        read_zip(make_zip([("ok.jpg", jpeg()), (link, b"/etc/passwd")]))
    assert offenders(err.value) == {"link.jpg": "symbolic link"}


def test_nested_archives_are_refused_by_name_before_anything_is_read():
    inner = make_zip([("x.jpg", jpeg())])
    with pytest.raises(UploadRejected) as err:
        read_zip(make_zip([("ok.jpg", jpeg()), ("inner.zip", inner), ("data.tar.gz", b"\x1f\x8b\x08rest")]))
    found = offenders(err.value)
    assert set(found) == {"inner.zip", "data.tar.gz"}
    assert all(r.startswith("nested archive") for r in found.values())


def test_an_archive_disguised_as_an_image_is_refused_by_content():
    inner = make_zip([("x.jpg", jpeg())])
    with pytest.raises(UploadRejected) as err:
        read_zip(make_zip([("ok.jpg", jpeg()), ("inner.jpg", inner)]))
    assert offenders(err.value) == {"inner.jpg": "an archive disguised as an image"}


def test_zip_bomb_ratio_is_refused_before_decompressing():
    bomb = b"\0" * (5 * 1024 * 1024)   # deflates ~1000:1
    with pytest.raises(UploadRejected) as err:
        read_zip(make_zip([("ok.jpg", jpeg()), ("bomb.jpg", bomb)]))
    assert "zip bomb" in offenders(err.value)["bomb.jpg"]


def test_total_uncompressed_size_is_capped(monkeypatch):
    monkeypatch.setattr(uploads, "MAX_TOTAL_UNCOMPRESSED", 100_000)
    entries = [(f"img{i}.jpg", jpeg(i, size=(900, 900))) for i in range(12)]
    assert sum(len(d) for _, d in entries) > 100_000
    with pytest.raises(UploadRejected) as err:
        read_zip(make_zip(entries, zipfile.ZIP_STORED))
    assert list(offenders(err.value)) == ["(whole zip)"]


def test_per_file_size_is_capped(monkeypatch):
    monkeypatch.setattr(uploads, "MAX_ENTRY_BYTES", 1000)
    with pytest.raises(UploadRejected) as err:
        read_zip(make_zip([("big.jpg", jpeg())], zipfile.ZIP_STORED))
    assert "per-file limit" in offenders(err.value)["big.jpg"]


def test_too_many_files(monkeypatch):
    monkeypatch.setattr(uploads, "MAX_FILES", 5)
    with pytest.raises(UploadRejected, match="at most 5"):
        read_zip(make_zip([(f"{i}.jpg", jpeg(i)) for i in range(7)]))


def test_non_image_files_are_listed_by_name():
    with pytest.raises(UploadRejected) as err:
        read_zip(make_zip([("ok.jpg", jpeg()), ("notes.pdf", b"%PDF-1.4"), ("run.sh", b"#!/bin/sh")]))
    found = offenders(err.value)
    assert set(found) == {"notes.pdf", "run.sh"}
    assert all(r.startswith("not an image") for r in found.values())


def test_files_whose_content_is_not_what_their_name_says_are_listed():
    with pytest.raises(UploadRejected) as err:
        read_zip(make_zip([("ok.jpg", jpeg()), ("fake.png", b"<html>not a png</html>"),
                           ("bin.txt", b"\xff\xfe\x00\x00")]))
    assert offenders(err.value) == {"fake.png": "not a JPEG, PNG or WebP image",
                                    "bin.txt": "caption is not UTF-8 text"}


def test_encrypted_entries_are_refused():
    data = bytearray(make_zip([("secret.jpg", jpeg())]))
    # zipfile cannot write encrypted entries: set the "encrypted" bit in the local and central headers.
    for signature, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.index(signature) + flag_offset
        data[at] |= 0x1
    with pytest.raises(UploadRejected) as err:
        read_zip(bytes(data))
    assert offenders(err.value) == {"secret.jpg": "encrypted entry"}


def test_not_a_zip():
    with pytest.raises(UploadRejected, match="not a readable zip"):
        read_zip(b"definitely not a zip")


def test_rejection_lists_every_offender_in_its_message():
    with pytest.raises(UploadRejected) as err:
        read_zip(make_zip([("../a.jpg", jpeg()), ("b.exe", b"MZ"), ("c.jpg", jpeg())]))
    assert "../a.jpg: path traversal" in str(err.value)
    assert "b.exe: not an image" in str(err.value)
    assert "c.jpg" not in str(err.value)
