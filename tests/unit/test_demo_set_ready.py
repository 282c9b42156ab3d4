"""The bundled "ava" demo set passes its own readiness checks (issue 19 §6): the simulator draws 1024 px
portraits with a face OpenCV finds, sharp and varied, so the demo flow trains without acknowledging
warnings."""
from lib.localpod.seed import DATASET_DIR, DATASET_SIZE, TRIGGER, seed_volume
from lib.training.images import load_image
from lib.training.readiness import check_set


def test_the_demo_set_has_no_findings(tmp_path):
    seed_volume(tmp_path)
    folder = tmp_path / DATASET_DIR
    images = {p.name: load_image(p.read_bytes(), p.name).info for p in sorted(folder.glob("*.png"))}
    captions = {p.name: p.with_suffix(".txt").read_text() for p in sorted(folder.glob("*.png"))}
    assert len(images) == DATASET_SIZE
    report = check_set(images, captions, TRIGGER)
    assert report.findings == (), [f.message for f in report.findings]
    assert all(info.faces == 1 and info.short_side >= 1024 for info in images.values())
