"""Text from users, workers and identity providers, made safe for Streamlit's Markdown elements.

st.error / st.caption / st.write render Markdown: a prompt holding `![](http://host/beacon.png)` would
make every viewer's browser fetch that URL, and `:red[…]` or links would restyle the page. Where such
text must sit inside a Markdown element, it goes through `escaped`; elsewhere pages use st.text / st.code.
"""
from __future__ import annotations

import re

# What turns text into something else: links and images ([ ] — and with them Streamlit's :color[…]
# directives), HTML and autolinks (< >), code (`), emphasis (* ~), LaTeX ($), headings (#), tables (|),
# and the backslash itself. Underscores stay: inside words (file_names) they never emphasise.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*\[\]<>$~|#])")


def escaped(text: object) -> str:
    """`text` as literal characters inside Markdown: no image, link, HTML, emphasis or directive."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text)).replace("\n", "  \n")
