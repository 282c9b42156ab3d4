"""AppTest: the Models and Endpoints pages on the in-process simulator (tests/app/conftest.py `console`)."""
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from streamlit.testing.v1 import AppTest

from lib.auth import LOCAL_OPERATOR, User
from lib.inference import templates_dir
from lib.lora_base import known
from lib.ops import actions
from lib.ops.warmup import restore_due
from lib.workflows import load_template, save_custom_template, suggest_param_map
from tests.app.steps import button, table
from tests.unit.test_lora_base import safetensors

ROOT = Path(__file__).resolve().parents[2]
VIEWER = User("viewer@example.com", "viewer")


def page(name: str, user=LOCAL_OPERATOR, **state) -> AppTest:
    # The pages are run directly (not through app.py's navigation) so these tests do not depend on
    # the router listing them; deps.services() is the session console thanks to conftest.
    at = AppTest.from_file(str(ROOT / "pages" / name), default_timeout=30)
    at.session_state["auth.user"] = user
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    assert not at.exception, at.exception
    return at


def test_models_page_shows_totals_and_flags_the_diffusion_models_trap(console):
    actions.model_files(console).refresh()
    at = page("models.py", **{"models.tab": "Flags"})
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["Files"].replace(",", "")) >= 20 and int(metrics["Flagged files"]) >= 2
    # Only the open tab is drawn: the flags table is the page's one table.
    (flags_table,) = at.dataframe
    flags = flags_table.value
    trap = flags[flags["file"] == "models/diffusion_models/flux1-schnell.safetensors"]
    assert trap["move to"].iloc[0] == "models/unet/flux1-schnell.safetensors"
    assert "does not scan models/diffusion_models/" in trap["problem"].iloc[0]


def test_models_draws_its_folder_chart_only_in_its_own_tab(console):
    assert not page("models.py").get("plotly_chart")   # Browse, the tab a visit opens
    (chart,) = page("models.py", **{"models.tab": "Folder sizes"}).get("plotly_chart")
    assert json.loads(chart.proto.spec)["data"][0]["type"] == "bar"


def test_find_a_lora_by_name_and_see_what_uses_it(console):
    workflow = {"4": {"class_type": "LoraLoaderModelOnly",
                      "inputs": {"model": ["1", 0], "lora_name": "ava_v1.safetensors", "strength_model": 0.8}}}
    job = console.store.create(role="image", endpoint_id="image-sim01", kind="flux", user="ana@example.com",
                               input={"workflow": workflow}, idempotency_key=f"ops-usedby-{time.time()}")
    at = page("models.py")
    at.text_input(key="models.query").set_value("ava_v").run()
    names = set(at.dataframe[0].value["name"])
    assert {"ava_v1.safetensors", "ava_v2.safetensors"} <= names and all("ava_v" in n for n in names)
    at.selectbox(key="models.file").set_value("models/loras/ava_v1.safetensors").run()
    used = at.dataframe[1].value
    assert f"image job {job.local_id} (flux)" in set(used["used by"])
    assert not at.exception


def test_operator_moves_a_misplaced_file_through_the_dialog(console):
    console.volume.write("models/text_encoders/apptest_te.safetensors", b"te" * 50)
    actions.model_files(console).refresh()
    at = page("models.py", **{"models.tab": "Flags"})
    at.selectbox(key="models.fix").set_value("models/text_encoders/apptest_te.safetensors").run()
    button(at, "Move it where the worker looks…").click().run()
    assert at.text_input(key="models.move_to").value == "models/clip/apptest_te.safetensors"
    button(at, "Move").click().run()
    assert not at.exception
    assert console.volume.exists("models/clip/apptest_te.safetensors")
    assert not console.volume.exists("models/text_encoders/apptest_te.safetensors")
    entry = console.store.audit_entries(action="volume.move", limit=1)[0]
    assert entry.target == "models/text_encoders/apptest_te.safetensors" and entry.user == LOCAL_OPERATOR.email
    console.volume.delete("models/clip/apptest_te.safetensors")
    actions.model_files(console).refresh()


def test_moving_a_file_offers_to_update_the_saved_workflows_that_use_it(console):
    graph = dict(load_template("sdxl_lora").workflow)
    graph["1"]["inputs"]["ckpt_name"] = "apptest_moved.safetensors"
    title = f"Moved ckpt {uuid.uuid4().hex[:4]}"
    saved = save_custom_template(templates_dir(console.data_dir), title, graph, suggest_param_map(graph))
    console.volume.write("models/checkpoints/apptest_moved.safetensors", b"m" * 64)
    actions.model_files(console).refresh()
    at = page("models.py", **{"models.query": "apptest_moved"})
    at.selectbox(key="models.file").set_value("models/checkpoints/apptest_moved.safetensors").run()
    button(at, "Move / rename…").click().run()
    assert any("Used by 1 saved workflow" in w.value for w in at.warning)
    assert at.checkbox(key="models.move_update").value   # offered, and on by default
    at.text_input(key="models.move_to").set_value("models/checkpoints/sdxl/apptest_moved.safetensors").run()
    button(at, "Move").click().run()
    assert not at.exception
    assert [t.value for t in at.toast] == [f"Moved to models/checkpoints/sdxl/apptest_moved.safetensors; "
                                           f"1 saved workflow(s) now use it: {title}"]
    after = load_template(saved.name, templates_dir(console.data_dir))
    assert after.workflow["1"]["inputs"]["ckpt_name"] == "sdxl/apptest_moved.safetensors"
    assert console.store.audit_entries(action="workflow.repoint", limit=1)[0].target.endswith("sdxl/apptest_moved.safetensors")
    console.volume.delete("models/checkpoints/sdxl/apptest_moved.safetensors")
    actions.model_files(console).refresh()


def test_operator_deletes_after_confirming(console):
    console.volume.write("models/vae/apptest_delete.safetensors", b"x" * 10)
    actions.model_files(console).refresh()
    at = page("models.py", **{"models.query": "apptest_delete"})
    at.selectbox(key="models.file").set_value("models/vae/apptest_delete.safetensors").run()
    button(at, "Delete…").click().run()
    assert console.volume.exists("models/vae/apptest_delete.safetensors")  # nothing happens before confirming
    button(at, "Delete").click().run()
    assert not console.volume.exists("models/vae/apptest_delete.safetensors")
    assert actions.model_files(console).index().get("models/vae/apptest_delete.safetensors") is None


def test_operator_uploads_a_model_from_the_console_machine_with_progress(console, tmp_path):
    blob = safetensors({"w": {"dtype": "BF16", "shape": [2048], "data_offsets": [0, 4096]}}, data=4096)
    model = tmp_path / "apptest_up.safetensors"
    model.write_bytes(b"u" * 4096)
    at = page("models.py", **{"models.tab": "Upload"})
    assert not at.get("file_uploader")  # model files never go through the in-memory browser upload
    at.selectbox(key="models.up_folder").set_value("loras")
    at.text_input(key="models.up_path").input(str(model)).run()
    button(at, "Upload").click().run()   # named like a model, but is not one: refused with the reason
    assert any("Not uploaded: apptest_up.safetensors is not a readable safetensors file" in e.value
               for e in at.error)
    assert not console.volume.exists("models/loras/apptest_up.safetensors")
    model.write_bytes(blob)
    at.selectbox(key="models.up_base").set_value("z-image")
    button(at, "Upload").click().run()
    assert not at.exception
    size = len(blob)
    assert ("Uploaded models/loras/apptest_up.safetensors (4.2 kB): safetensors · 4.2 kB · 1 tensors · BF16 ×1"
            in [s.value for s in at.success])
    assert console.volume.head("models/loras/apptest_up.safetensors").size == size
    assert console.store.audit_entries(action="volume.upload", limit=1)[0].detail == {"size": size}
    assert known(console.store, console.data_dir)["apptest_up.safetensors"].family == "z-image"
    button(at, "Upload").click().run()
    assert any("already exists" in e.value for e in at.error)
    at.session_state["models.tab"] = "Browse"
    at.run()
    at.text_input(key="models.query").set_value("apptest_up").run()
    assert list(at.dataframe[0].value["name"]) == ["apptest_up.safetensors"]  # visible without re-listing
    at.selectbox(key="models.file").set_value("models/loras/apptest_up.safetensors").run()
    assert "safetensors · 4.2 kB · 1 tensors · BF16 ×1" in [c.value for c in at.caption]
    actions.delete_model(console, LOCAL_OPERATOR.email, "models/loras/apptest_up.safetensors")


def test_viewer_browses_but_cannot_change_files(console):
    at = page("models.py", user=VIEWER)
    at.text_input(key="models.query").input("ava_v1").run()
    at.selectbox(key="models.file").set_value("models/loras/ava_v1.safetensors").run()
    labels = {b.label for b in at.button}
    assert not {"Move / rename…", "Delete…"} & labels
    at.session_state["models.tab"] = "Upload"
    at.run()
    assert "Upload" not in {b.label for b in at.button}
    assert "Only operators can upload model files." in [i.value for i in at.info]


def test_endpoints_page_shows_cold_start_percentiles_and_settings(console):
    at = page("endpoints.py")
    metrics = {m.label: m.value for m in at.metric}
    assert {"In queue", "Throttled", "Hit a cold start", "Failure rate", "Queue p90"} <= set(metrics)
    assert metrics["Hit a cold start"].endswith("%")  # from the seeded 30 days of simulated traffic
    percentiles = at.dataframe[0].value
    assert list(percentiles.columns) == ["", "p50 s", "p90 s", "p98 s", "jobs"]
    assert percentiles["p90 s"].iloc[0] >= percentiles["p50 s"].iloc[0] > 0
    settings = table(at, "drift")
    assert list(settings["setting"])[:2] == ["Min (active) workers", "Max workers"]


def test_endpoints_opens_on_its_percentiles_and_draws_one_chart_at_a_time(console):
    def charts(at: AppTest) -> list[str]:
        return [json.loads(chart.proto.spec)["layout"]["title"]["text"] for chart in at.get("plotly_chart")]

    # A Plotly chart is the dearest element of a visit (0.09 s of Endpoints' 0.29 s repeat, bench_pages):
    # the page opens on the percentiles table and draws a chart when its tab is chosen.
    at = page("endpoints.py")
    assert charts(at) == []
    assert list(at.dataframe[0].value.columns) == ["", "p50 s", "p90 s", "p98 s", "jobs"]
    for tab, title in (("Cold starts", "Cold starts per day"), ("Queue delay", "Queue delay (delayTime) percentiles"),
                       ("Workers (24 h)", "Workers by state (last 24 h)")):
        at = page("endpoints.py", **{"endpoints.history": tab})
        assert charts(at) == [title]


def test_change_max_workers_through_apply_and_the_simulator_follows(console):
    spec = console.config.endpoint("image")
    at = page("endpoints.py")
    at.number_input(key="endpoints.max.image").set_value(5)
    button(at, "Apply…").click().run()
    changes = table(at, "after")
    assert list(changes["setting"]) == ["Max workers"] and list(changes["after"]) == ["5"]
    assert console.client.rest.endpoint(spec.id).workers_max == 3  # not before confirming
    button(at, "Apply").click().run()
    assert not at.exception
    assert console.client.rest.endpoint(spec.id).workers_max == 5
    assert "Max workers" in set(table(at, "drift").query("drift != ''")["setting"])  # now differs from toml
    entry = console.store.audit_entries(action="endpoint.apply", limit=1)[0]
    assert entry.detail["changes"] == {"workers_max": {"from": 3, "to": 5}}
    actions.apply_settings(console, "image", LOCAL_OPERATOR.email)  # back to console.toml
    assert console.client.rest.endpoint(spec.id).workers_max == 3


def test_drift_is_highlighted_for_the_selected_endpoint(console):
    spec = console.config.endpoint("special")
    console.client.rest.update_endpoint(spec.id, idle_timeout_s=60)
    try:
        at = page("endpoints.py", **{"endpoints.role": "special"})
        drifted = table(at, "drift").query("drift != ''")
        assert list(drifted["setting"]) == ["Idle timeout (s)"] and list(drifted["live"]) == ["60"]
        assert "1 setting(s) differ from console.toml." in [w.value for w in at.warning]
    finally:
        actions.apply_settings(console, "special", LOCAL_OPERATOR.email)


def test_purge_and_warm_hold_are_confirmed_and_recorded(console):
    at = page("endpoints.py")
    button(at, "Purge queue…").click().run()
    button(at, "Purge").click().run()
    assert not at.exception
    assert console.store.audit_entries(action="endpoint.purge_queue", limit=1)[0].detail["role"] == "image"

    button(at, "Warm up: send a minimal job").click().run()
    (sent,) = [s.value for s in at.success if s.value.startswith("Warm-up job")]
    warmup = console.store.get(sent.split()[2])
    assert warmup.kind == "warmup" and warmup.role == "image"
    assert console.tracker.wait_for([warmup.local_id], timeout_s=30)[0].status == "COMPLETED"

    at.number_input(key="endpoints.hold_n").set_value(2)
    at.number_input(key="endpoints.hold_m").set_value(5)
    button(at, "Raise min workers…").click().run()
    # The confirmation says what the hold costs before anything changes.
    assert any("billed even if no job arrives" in t.value for t in at.text)
    assert console.client.rest.endpoint(console.config.endpoint("image").id).workers_min == 0
    at.button(key="endpoints.hold_ok").click().run()
    assert any("Min workers 2 until" in t.value for t in at.toast)
    spec = console.config.endpoint("image")
    assert console.client.rest.endpoint(spec.id).workers_min == 2
    restored = restore_due(console.client.rest, console.monitor.schedule, datetime.now(UTC) + timedelta(minutes=6))
    assert [h.role for h in restored] == ["image"]
    assert console.client.rest.endpoint(spec.id).workers_min == 0


def test_viewer_sees_no_endpoint_actions(console):
    at = page("endpoints.py", user=VIEWER)
    assert "Purge and warm-up are for operators." in [i.value for i in at.info]
    assert not {"Apply…", "Purge queue…", "Raise min workers…"} & {b.label for b in at.button}


def test_a_missing_cuda_constraint_on_the_training_endpoint_shows_as_drift(console):
    spec = console.config.endpoint("training")
    console.client.rest.update_endpoint(spec.id, min_cuda_version="12.8")
    try:
        at = page("endpoints.py", **{"endpoints.role": "training"})
        drifted = table(at, "drift").query("drift != ''")
        assert list(drifted["setting"]) == ["Min CUDA version (host driver)"]
        assert (list(drifted["console.toml"]), list(drifted["live"])) == (["13.0"], ["12.8"])
    finally:
        actions.apply_settings(console, "training", LOCAL_OPERATOR.email)
    assert console.client.rest.endpoint(spec.id).min_cuda_version == "13.0"


def test_counts_follow_a_change_made_elsewhere_in_the_console(console):
    def files(at):
        return int(next(m.value for m in at.metric if m.label == "Files").replace(",", ""))
    at = page("models.py")
    before = files(at)
    console.volume.write("models/loras/apptest_promoted.safetensors", b"p" * 10)   # as a promote does
    try:
        assert files(at.run()) == before + 1   # no "Re-list the volume" click
        at.selectbox(key="models.file").set_value("models/loras/apptest_promoted.safetensors").run()
        assert not at.exception
    finally:
        console.volume.delete("models/loras/apptest_promoted.safetensors")
        actions.model_files(console).refresh()


def test_file_details_offers_the_files_listed_not_every_match(console):
    # Every match (up to 5,000 paths) was sent with each run: 0.2 s of every Models visit on a big volume.
    keys = [f"models/loras/apptest_many_{i:02d}.safetensors" for i in range(60)]
    for key in keys:
        console.volume.write(key, b"l" * 16)
    actions.model_files(console).refresh()
    try:
        at = page("models.py", **{"models.query": "apptest_many"})
        offered = at.selectbox(key="models.file").options
        assert len(offered) == 50 and offered == list(at.dataframe[0].value["path"])
        at.number_input(key="models.page").set_value(2).run()
        offered = at.selectbox(key="models.file").options
        assert len(offered) == 10
        at.selectbox(key="models.file").set_value(offered[0]).run()
        assert not at.exception
    finally:
        for key in keys:
            console.volume.delete(key)
        actions.model_files(console).refresh()
