"""The only place in lib/ that imports streamlit: cached resources, session keys, shared widgets."""
