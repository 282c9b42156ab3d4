"""Admin → Connection check: is the RunPod account usable with this console.toml? (read-only)"""
import streamlit as st

from lib.doctor import rows
from lib.doctor.run import report_for_services
from lib.ui import deps

services = deps.services()

st.title("Connection check")
st.write(f"Checks, against **{services.backend_label}**, that the API key works, each endpoint in "
         "console.toml exists with its image, volume mount, GPU pools and CUDA limit, the network volume is "
         "in the declared datacenter, the S3 key can list it and the required models are on it. "
         "It only reads. The same check runs on the command line: `python -m lib.doctor`.")

if st.button("Run the check", type="primary", icon=":material/stethoscope:", key="doctor.run"):
    with st.spinner("Asking RunPod…"):
        st.session_state["doctor.report"] = report_for_services(services)

report = st.session_state.get("doctor.report")
if report is None:
    st.caption("Not run yet in this session.")
    st.stop()
if report.ok:
    st.success(f"All {len(report.findings)} checks passed: the account is usable.", icon=":material/check_circle:")
else:
    st.error(f"{len(report.problems)} problem(s) — each says what to do.", icon=":material/error:")
st.dataframe(rows(report), hide_index=True, width="stretch",
             column_config={"found": st.column_config.TextColumn(width="large"),
                            "what to do": st.column_config.TextColumn(width="large")})
