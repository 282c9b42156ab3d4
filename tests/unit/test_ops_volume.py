"""Volume index, flags, "used by" and the Models page operations — on the local folder and on moto S3."""
import threading
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import boto3
import pytest
from moto import mock_aws

from lib.auth import Forbidden, User
from lib.config import Secret
from lib.ops import actions
from lib.ops.flags import duplicate_flags, large_unused_flags, placement_flag
from lib.ops.model_files import ModelFiles
from lib.ops.usage import UsageIndex, names_in
from lib.ops.volume_index import IndexedFile, VolumeIndex, VolumeIndexCache
from lib.volume import LocalVolume, S3Volume, VolumeError, VolumeNotFound, VolumeObject

BUCKET = "vol-test"
LORA = b"L" * 300
TREE = {
    "models/unet/flux1-dev.safetensors": b"U" * 900,
    "models/clip/clip_l.safetensors": b"C" * 500,
    "models/vae/ae.safetensors": b"A" * 400,
    "models/vae/sdxl_vae.safetensors": b"B" * 400,          # same size as ae, other content
    "models/loras/ava_v1.safetensors": LORA,
    "models/loras/old/ava_copy.safetensors": LORA,          # a duplicate of ava_v1
    "models/diffusion_models/flux1-schnell.safetensors": b"S" * 800,
    "models/text_encoders/t5xxl_fp16.safetensors": b"T" * 700,
    "loras/ava/run-0001/ava_000000500.safetensors": b"R" * 250,
    "loras/ava/run-0001/samples/s1.png": b"png",
    "datasets/ava/v1/img01.png": b"p" * 100,
    "datasets/ava/v1/img01.txt": b"ava_tok smiling",
    "checkpoints/sd_xl_base_1.0.safetensors": b"X" * 600,
    "ava_lora_final.safetensors": b"F" * 310,
}
OPERATOR = User("op@example.com", "operator")
STAFF = User("staff@example.com", "staff")


@pytest.fixture(params=["local", "s3"])
def volume(request, tmp_path):
    if request.param == "local":
        vol = LocalVolume(tmp_path / "runpod-volume")
        for key, data in TREE.items():
            vol.write(key, data)
        yield vol
    else:
        with mock_aws():
            client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="AKIDTEST",
                                  aws_secret_access_key="rps_secret")
            client.create_bucket(Bucket=BUCKET)
            for key, data in TREE.items():
                client.put_object(Bucket=BUCKET, Key=key, Body=data)
            client.put_object(Bucket=BUCKET, Key="models/empty_dir/", Body=b"")  # RunPod lists empty dirs
            yield S3Volume(bucket=BUCKET, region="us-east-1", endpoint_url="https://s3api-eu-ro-1.runpod.io",
                           access_key=Secret("AKIDTEST"), secret_key=Secret("rps_secret"), client=client)


def test_index_totals_per_top_folder(volume):
    index = VolumeIndex.build(volume)
    assert len(index) == len(TREE)
    totals = {t.folder: (t.files, t.bytes) for t in index.totals()}
    assert totals["models/loras"] == (2, 600)
    assert totals["models/vae"] == (2, 800)
    assert totals["datasets"] == (2, 100 + len(b"ava_tok smiling"))
    assert totals["loras"] == (2, 253)
    assert totals["(root)"] == (1, 310) and totals["checkpoints"] == (1, 600)
    assert index.total_bytes == sum(len(v) for v in TREE.values())


def test_search_substring_prefix_folder_sort_and_pages(volume):
    index = VolumeIndex.build(volume)
    found = index.search("AVA_")
    assert {f.key for f in found.items} == {"models/loras/ava_v1.safetensors", "models/loras/old/ava_copy.safetensors",
                                            "loras/ava/run-0001/ava_000000500.safetensors",
                                            "ava_lora_final.safetensors"}
    assert [f.key for f in index.search(prefix="models/loras/").items] == [
        "models/loras/old/ava_copy.safetensors", "models/loras/ava_v1.safetensors"]  # by name: ava_c < ava_v
    assert [f.name for f in index.search(folder="models/vae", sort="name", descending=True).items] == [
        "sdxl_vae.safetensors", "ae.safetensors"]
    by_size = index.search(sort="size", descending=True, page_size=3)
    assert [f.size for f in by_size.items] == [900, 800, 700] and by_size.pages == 5
    last = index.search(sort="size", page=99, page_size=3)
    assert last.page == 4 and len(last.items) == 2  # a page past the end shows the last page
    pages = [index.search(sort="size", page=p, page_size=4).items for p in range(4)]
    assert len({f.key for page in pages for f in page}) == len(TREE)  # stable: no repeats, none lost
    assert index.search("nothing-like-this").total == 0
    with pytest.raises(ValueError, match="cannot sort by 'colour'"):
        index.search(sort="colour")


def test_index_skips_directory_markers_and_unfinished_uploads():
    now = datetime(2026, 9, 1, tzinfo=UTC)
    index = VolumeIndex([VolumeObject("models/loras/", 0, now), VolumeObject(".s3compat_uploads/abc/1", 5, now),
                         VolumeObject("models/loras/a.safetensors", 5, now, "e")])
    assert [f.key for f in index.files()] == ["models/loras/a.safetensors"]
    assert index.get("models/loras/a.safetensors").etag == "e" and index.get("nope") is None


def test_cache_keeps_the_index_until_ttl_or_invalidate(tmp_path):
    volume = LocalVolume(tmp_path / "v")
    volume.write("models/vae/a.safetensors", b"1")
    now = [0.0]
    cache = VolumeIndexCache(volume, ttl_s=60, clock=lambda: now[0])
    first = cache.get()
    volume.write("models/vae/b.safetensors", b"2")
    assert cache.get() is first and len(first) == 1
    cache.invalidate()
    assert len(cache.get()) == 2
    volume.write("models/vae/c.safetensors", b"3")
    now[0] = 61.0
    stale = cache.get()  # served at once while a fresh listing runs in the background
    assert cache.wait_listing(10)
    assert len(stale) == 2 and len(cache.get()) == 3 and cache.age_s == 0.0


def test_cache_patches_for_own_changes_and_ignores_a_listing_that_predates_them(tmp_path):
    volume = LocalVolume(tmp_path / "v")
    volume.write("models/vae/a.safetensors", b"1")
    now = [0.0]
    cache = VolumeIndexCache(volume, ttl_s=60, clock=lambda: now[0])
    index = cache.get()
    obj = volume.write("models/vae/b.safetensors", b"22")
    cache.apply(upserts=[obj], removes=["models/vae/a.safetensors"])
    assert [f.key for f in index.files()] == ["models/vae/b.safetensors"]
    assert [(t.folder, t.files, t.bytes) for t in index.totals()] == [("models/vae", 1, 2)]
    assert cache.get() is index

    # A background listing that started before the next change must not undo it when it lands.
    release = threading.Event()

    class SlowVolume:
        def list(self, prefix="", page_size=1000):
            release.wait(10)
            return volume.list(prefix, page_size=page_size)

    cache.volume = SlowVolume()
    now[0] = 61.0
    cache.get()
    assert cache.listing
    volume.delete("models/vae/b.safetensors")
    cache.apply(removes=["models/vae/b.safetensors"])
    release.set()
    assert cache.wait_listing(10)
    assert cache.get() is index and len(index) == 0


@pytest.mark.parametrize("key, kind, move_to", [
    ("models/unet/flux1-dev.safetensors", None, None),
    ("models/loras/sub/x.safetensors", None, None),
    ("models/diffusion_models/flux1-schnell.safetensors", "unscanned_folder", "models/unet/flux1-schnell.safetensors"),
    ("models/text_encoders/t5xxl_fp16.safetensors", "unscanned_folder", "models/clip/t5xxl_fp16.safetensors"),
    ("checkpoints/sd_xl_base_1.0.safetensors", "wrong_root", "models/checkpoints/sd_xl_base_1.0.safetensors"),
    ("diffusion_models/z.safetensors", "wrong_root", "models/unet/z.safetensors"),
    ("comfyui/models/text_encoders/q.safetensors", "wrong_root", "models/clip/q.safetensors"),
    ("ComfyUI/models/vae/ae.safetensors", "wrong_root", "models/vae/ae.safetensors"),
    ("models/model_patches/p.safetensors", "unmapped_folder", None),
    ("models/x.safetensors", "unscanned_folder", None),
    ("ava_lora_final.safetensors", "lora_outside", "models/loras/ava_lora_final.safetensors"),
    ("models/checkpoints/ava_lora.safetensors", "lora_outside", "models/loras/ava_lora.safetensors"),
    ("loras/ava/ava_v1.safetensors", "lora_outside", "models/loras/ava_v1.safetensors"),
    ("loras/ava/run-0001/ava_000000500.safetensors", "lora_not_promoted", None),
    ("loras/ava/run-0001/samples/s1.png", None, None),
    ("datasets/ava/v1/img01.png", None, None),
    ("configs/train.yaml", None, None),
])
def test_placement_flags(key, kind, move_to):
    flag = placement_flag(key)
    assert (flag.kind if flag else None) == kind
    assert (flag.move_to if flag else None) == move_to
    if flag:
        assert flag.message and (flag.move_to is None or flag.move_to in flag.message)


def test_duplicates_need_same_content_not_just_same_size(volume):
    index = VolumeIndex.build(volume)
    flags = duplicate_flags(index.same_size_groups(), volume=volume)
    assert {(f.kind, f.key, f.related) for f in flags} == {
        ("duplicate", "models/loras/ava_v1.safetensors", ("models/loras/old/ava_copy.safetensors",)),
        ("duplicate", "models/loras/old/ava_copy.safetensors", ("models/loras/ava_v1.safetensors",)),
    }


def test_duplicates_only_read_files_without_a_plain_md5_etag():
    t = datetime(2026, 9, 1, tzinfo=UTC)
    md5 = "0123456789abcdef0123456789abcdef"
    group = [IndexedFile("a", 10, t, md5), IndexedFile("b", 10, t, None), IndexedFile("c", 10, t, "ffff-3"),
             IndexedFile("d", 10, t, "ffff-3"), IndexedFile("e", 10_000, t, None), IndexedFile("f", 10_000, t, None)]
    read = []

    def hasher(key):
        read.append(key)
        return md5
    flags = duplicate_flags([group[:4], group[4:]], hasher=hasher, max_hash_bytes=1000)
    assert read == ["b"]  # a has an MD5 ETag, c/d share a multipart ETag, e/f are too big to read
    kinds = {f.key: f.kind for f in flags}
    assert kinds == {"a": "duplicate", "b": "duplicate", "c": "duplicate", "d": "duplicate",
                     "e": "possible_duplicate", "f": "possible_duplicate"}


def test_large_files_unused_for_30_days():
    now = datetime(2026, 9, 1, tzinfo=UTC)
    old, new = now - timedelta(days=40), now - timedelta(days=3)
    files = [IndexedFile("models/unet/big_used.safetensors", 5_000_000_000, old),
             IndexedFile("models/unet/big_unused.safetensors", 5_000_000_000, old),
             IndexedFile("models/unet/big_new.safetensors", 5_000_000_000, new),
             IndexedFile("models/loras/small.safetensors", 200_000_000, old),
             IndexedFile("models/checkpoints/sub/big_sub.safetensors", 2_000_000_000, old)]
    flags = large_unused_flags(files, {"big_used.safetensors", "sub/big_sub.safetensors"}, now=now)
    assert [f.key for f in flags] == ["models/unet/big_unused.safetensors"]
    assert "5.0 GB" in flags[0].message


def workflow(lora="ava_v1.safetensors"):
    return {"1": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux1-dev.safetensors", "weight_dtype": "fp8"}},
            "4": {"class_type": "LoraLoaderModelOnly", "inputs": {"model": ["1", 0], "lora_name": lora,
                                                                  "strength_model": 1.0}},
            "9": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "x"}}}


def test_used_by_templates_and_recent_jobs():
    job = SimpleNamespace(local_id="j1", role="image", kind="flux", input={"workflow": workflow(), "images": []})
    training = {"local_id": "t1", "role": "training", "kind": "lora",
                "input": {"config": {"model": {"name_or_path": "/runpod-volume/models/unet/flux1-dev.safetensors"}}}}
    usage = UsageIndex(templates=[{"name": "FLUX portrait", "workflow": workflow()},
                                  {"name": "Other LoRA", "workflow": workflow("milo_v1.safetensors")}],
                       jobs=[job, training])
    refs = usage.used_by("models/loras/ava_v1.safetensors")
    assert [(r.kind, r.label, r.where) for r in refs] == [
        ("template", "FLUX portrait", "node 4 · lora_name"),
        ("job", "image job j1 (flux)", "workflow node 4 · lora_name")]
    unet = usage.used_by("models/unet/flux1-dev.safetensors")
    assert {r.id for r in unet} == {"FLUX portrait", "Other LoRA", "j1", "t1"}
    assert usage.used_by("models/loras/other/ava_v1.safetensors")[0].id == "FLUX portrait"  # bare name: any folder
    assert not usage.is_used("models/unet/flux1-schnell.safetensors")
    # A path reference only matches the file at that path.
    assert [r.id for r in UsageIndex(jobs=[training]).used_by("models/checkpoints/flux1-dev.safetensors")] == []
    assert "models/unet/flux1-dev.safetensors" in usage.referenced_names()
    assert list(names_in({"x": ["a.txt", "b.gguf"]})) == [("x[1]", "b.gguf")]


def test_model_files_operations_are_for_operators_audited_and_visible_at_once(volume):
    audit = []
    files = ModelFiles(volume, audit=lambda *a: audit.append(a))
    assert files.browse("flux1-schnell").total == 1
    with pytest.raises(Forbidden, match="needs the operator role"):
        files.delete("models/unet/flux1-dev.safetensors", user=STAFF)

    moved = files.move("models/diffusion_models/flux1-schnell.safetensors",
                       "models/unet/flux1-schnell.safetensors", user=OPERATOR)
    assert moved.size == 800
    assert [f.key for f in files.browse("flux1-schnell").items] == ["models/unet/flux1-schnell.safetensors"]

    progress = []
    files.upload("models/loras/noor_v1.safetensors", b"N" * 1234, user=OPERATOR,
                 progress=lambda done, total: progress.append((done, total)))
    assert progress[-1] == (1234, 1234) and files.index().get("models/loras/noor_v1.safetensors").size == 1234
    with pytest.raises(VolumeError, match="already exists"):
        files.upload("models/loras/noor_v1.safetensors", b"again", user=OPERATOR)
    with pytest.raises(VolumeError, match="does not read models/diffusion_models"):
        files.upload("models/diffusion_models/new.safetensors", b"x", user=OPERATOR)
    with pytest.raises(VolumeError, match="folder under models/"):
        files.move("models/loras/noor_v1.safetensors", "elsewhere/noor.safetensors", user=OPERATOR)

    files.delete("models/loras/noor_v1.safetensors", user=OPERATOR)
    assert files.index().get("models/loras/noor_v1.safetensors") is None
    with pytest.raises(VolumeNotFound):
        files.delete("models/loras/noor_v1.safetensors", user=OPERATOR)
    assert [(a[0], a[1], a[2]) for a in audit] == [
        ("op@example.com", "volume.move", "models/diffusion_models/flux1-schnell.safetensors"),
        ("op@example.com", "volume.upload", "models/loras/noor_v1.safetensors"),
        ("op@example.com", "volume.delete", "models/loras/noor_v1.safetensors")]


def test_model_files_flags_cover_every_kind_on_the_seeded_tree(volume):
    files = ModelFiles(volume)
    kinds = {(f.kind, f.key) for f in files.flags(UsageIndex())}
    assert ("unscanned_folder", "models/diffusion_models/flux1-schnell.safetensors") in kinds
    assert ("unscanned_folder", "models/text_encoders/t5xxl_fp16.safetensors") in kinds
    assert ("wrong_root", "checkpoints/sd_xl_base_1.0.safetensors") in kinds
    assert ("lora_outside", "ava_lora_final.safetensors") in kinds
    assert ("lora_not_promoted", "loras/ava/run-0001/ava_000000500.safetensors") in kinds
    assert ("duplicate", "models/loras/ava_v1.safetensors") in kinds
    flags = files.flags(UsageIndex())
    assert [f.severity for f in flags] == sorted((f.severity for f in flags), key=["error", "warning", "info"].index)
    assert files.flags(UsageIndex()) is flags  # memoised per index


def test_fifty_thousand_objects_stay_responsive():
    t = datetime(2026, 9, 1, tzinfo=UTC)
    objects = [VolumeObject(f"models/{('loras', 'unet', 'clip', 'vae')[i % 4]}/file_{i:05d}.safetensors",
                            1000 + i, t + timedelta(seconds=i), f"{i:032x}") for i in range(50_000)]
    started = time.perf_counter()
    index = VolumeIndex(objects)
    built = time.perf_counter() - started
    started = time.perf_counter()
    page = index.search("file_4", sort="size", descending=True, page_size=50)
    prefix = index.search(prefix="models/loras/file_0", page=3)
    searched = time.perf_counter() - started
    assert page.total == 10_000 and page.items[0].key == "models/vae/file_49999.safetensors"
    assert prefix.total == 2500 and prefix.page == 3
    # Generous bounds (the benchmark measures the real figures): a regression to per-query listing
    # or Python-side sorting of every row would blow through them.
    assert built < 3.0 and searched < 0.5


def test_first_render_shows_a_first_page_while_a_slow_listing_runs(tmp_path):
    volume = LocalVolume(tmp_path / "v")
    for i in range(30):
        volume.write(f"models/loras/l{i:02d}.safetensors", b"x")
    release = threading.Event()

    class SlowFullListing:
        """Like S3 at 50,000 objects: one small page comes back fast, the whole listing does not."""

        version = 0   # no change made through the console while the listing runs

        def list(self, prefix="", page_size=1000):
            if page_size >= 1000:
                release.wait(10)
            return volume.list(prefix, page_size=page_size)

    slow = SlowFullListing()
    services = SimpleNamespace(volume=slow, model_files=ModelFiles(slow))
    state = actions.volume_state(services, folder="models/loras", wait_s=0.05, limit=10)
    assert state.index is None and state.listing
    assert [f.name for f in state.first] == [f"l{i:02d}.safetensors" for i in range(10)]
    release.set()
    assert services.model_files.cache.wait_listing(10)
    state = actions.volume_state(services)
    assert state.index is not None and len(state.index) == 30 and not state.listing


def test_copies_the_console_made_itself_are_not_flagged_as_duplicates():
    t = datetime(2026, 9, 1, tzinfo=UTC)
    md5 = "0123456789abcdef0123456789abcdef"
    checkpoint = [IndexedFile(key, 10, t, md5) for key in (
        "loras/ava/run-0002/ava_000000750.safetensors",                     # the training output
        "models/loras/_candidates/ava/run-0002/ava_000000750.safetensors",  # staged for a grid
        "models/loras/ava_v2.safetensors")]                                 # promoted
    photos = [IndexedFile(key, 20, t, md5) for key in ("demo/photos/ava/ava_01.png",
                                                         "datasets/ava/v1/images/ava_01.png")]
    assert duplicate_flags([checkpoint, photos]) == []
    uploaded_twice = checkpoint + [IndexedFile("models/loras/ava_copy.safetensors", 10, t, md5)]
    assert {f.key for f in duplicate_flags([uploaded_twice])} == {"models/loras/ava_v2.safetensors",
                                                                 "models/loras/ava_copy.safetensors"}


def test_flags_tab_lists_problems_and_counts_unpromoted_checkpoints_in_one_line():
    """Issue 18 goal 2: 39,000 notes made the Models page send 9 MB; they are counted, not listed."""
    from lib.ops.actions import flags_view
    from lib.ops.flags import placement_flag
    keys = [f"loras/ava/run-{r:04d}/ava_{s:09d}.safetensors" for r in range(300) for s in range(250, 3001, 250)]
    keys += ["models/diffusion_models/flux1-schnell.safetensors", "checkpoints/sdxl.safetensors",
             "models/other/x.safetensors"]
    view = flags_view([placement_flag(k) for k in keys], limit=2)
    assert [f.severity for f in view.problems] == ["error", "error"]
    assert view.problem_count == 3 and view.problem_files == 3
    assert view.notes == ["3,600 training checkpoint(s) under loras/ not promoted yet: promote the one you want "
                          "to models/loras/ on the Training page to use it in image jobs."]


def test_a_file_moved_where_the_worker_reads_it_is_no_longer_flagged(volume):
    files = ModelFiles(volume)
    misplaced = "models/diffusion_models/flux1-schnell.safetensors"
    assert misplaced in {f.key for f in files.flags(UsageIndex())}
    files.move(misplaced, "models/unet/flux1-schnell.safetensors", user=OPERATOR)
    assert misplaced not in {f.key for f in files.flags(UsageIndex())}


def test_a_value_derived_from_every_file_is_kept_until_the_console_changes_one():
    t = datetime(2026, 9, 1, tzinfo=UTC)
    index = VolumeIndex([VolumeObject("models/unet/a.safetensors", 10, t, "e1")])
    computed = []

    def count() -> int:
        computed.append(1)
        return len(list(index.files()))

    assert index.derived("count", "x", count) == 1
    assert index.derived("count", "x", count) == 1 and len(computed) == 1
    index.upsert(VolumeObject("models/unet/b.safetensors", 20, t, "e2"))
    assert index.derived("count", "x", count) == 2 and len(computed) == 2
    assert index.derived("count", "y", count) == 2 and len(computed) == 3   # other arguments
    assert [x.files for x in index.totals()] == [2]

    def raced() -> int:   # a file changes while the value is being computed from the files
        value = count()
        index.remove("models/unet/b.safetensors")
        return value

    assert index.derived("raced", None, raced) == 2
    assert index.derived("raced", None, count) == 1   # the raced value was not kept


def test_the_models_pages_flag_groups_are_kept_until_a_file_changes(volume):
    services = SimpleNamespace(model_files=ModelFiles(volume))
    misplaced = "models/diffusion_models/flux1-schnell.safetensors"
    grouped = actions.volume_flags(services, UsageIndex())
    assert actions.volume_flags(services, UsageIndex()) is grouped
    assert misplaced in grouped.by_key and grouped.view.problem_files >= 1
    services.model_files.move(misplaced, "models/unet/flux1-schnell.safetensors", user=OPERATOR)
    assert misplaced not in actions.volume_flags(services, UsageIndex()).by_key
