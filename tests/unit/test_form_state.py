"""Form values kept per user in CONSOLE_DATA (lib/form_state.py)."""
from lib.form_state import FormState, storable


def test_values_survive_a_new_store_on_the_same_folder(tmp_path):
    FormState(tmp_path).save("ann@x", {"gen.model": "Z-Image Turbo + LoRA", "gen.count": 2,
                                       "gen.strength.flux": 0.8, "gen.batch": ["a1", "b2"]})
    again = FormState(tmp_path)
    assert again.load("ann@x", "gen.") == {"gen.model": "Z-Image Turbo + LoRA", "gen.count": 2,
                                           "gen.strength.flux": 0.8, "gen.batch": ["a1", "b2"]}


def test_each_user_has_their_own_values_and_prefixes_do_not_leak(tmp_path):
    forms = FormState(tmp_path)
    forms.save("ann@x", {"gen.prompt": "ann's", "gal.model": "all"})
    forms.save("bob@x", {"gen.prompt": "bob's"})
    assert forms.load("ann@x", "gen.") == {"gen.prompt": "ann's"}
    assert forms.load("bob@x", "gen.") == {"gen.prompt": "bob's"}
    forms.save("ann@x", {"gen.prompt": "changed"})
    assert forms.load("ann@x", "gen.prompt") == {"gen.prompt": "changed"}


def test_clicks_uploads_and_selections_are_never_stored(tmp_path):
    forms = FormState(tmp_path)
    written = forms.save("ann@x", {"gen.go": True, "ds.ack": False, "own.file": object(),
                                   "jobs.table": {"selection": {"rows": [1]}}, "gen.count": 3})
    assert written == 1
    assert forms.load("ann@x", "") == {"gen.count": 3}
    assert not storable([True]) and storable(("a", 1)) and storable("")


def test_forget_removes_a_kept_value(tmp_path):
    forms = FormState(tmp_path)
    forms.save("ann@x", {"ds.set": "ava", "ds.version": "v2"})
    forms.forget("ann@x", ["ds.version"])
    assert forms.load("ann@x", "ds.") == {"ds.set": "ava"}
