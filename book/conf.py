"""Sphinx configuration of the course website (staged and run by book/build.py; see `make book`).

Everything the pages load ships inside the site: MathJax 3 from the django-static-mathjax wheel (copied to
_static/mathjax by build.py), the theme's fonts and scripts, no widget or require.js CDN script, no launch
buttons, no analytics. Notebooks are rendered with their stored outputs and never executed.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

project = "bigtut"
author = "the bigtut authors"
html_show_copyright = False
language = "en"

extensions = ["myst_nb"]
root_doc = "index"
exclude_patterns = ["**.ipynb_checkpoints"]

# MyST: $...$ and $$...$$ math as in JupyterLab, anchors for headings so "#section" links can be checked.
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
myst_dmath_double_inline = True  # "$$...$$" inside a paragraph is display math, as JupyterLab shows it

# MyST-NB: show what the notebooks hold, exactly as stored.
nb_execution_mode = "off"
nb_ipywidgets_js = {}  # the default loads require.js and the widget manager from a CDN
nb_merge_streams = True
nb_output_stderr = "show"

# Math is typeset by the local MathJax copy; Sphinx reads mathjax_path relative to _static/.
mathjax_path = "mathjax/tex-chtml.js"
html_static_path = [str(ROOT / "_build" / "static")]
html_extra_path = [str(ROOT / "_build" / "extra")]

html_theme = "sphinx_book_theme"
html_title = "bigtut — language models from scratch, then opened up"
html_favicon = "favicon.svg"  # without one the browser asks for /favicon.ico, a 404
html_copy_source = True  # the notebooks' .ipynb files, offered by each page's download button
html_show_sourcelink = False
html_last_updated_fmt = None
html_theme_options = {
    "use_download_button": True,
    "use_fullscreen_button": False,
    "use_repository_button": False,
    "use_issues_button": False,
    "use_edit_page_button": False,
    "launch_buttons": {},
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "show_navbar_depth": 1,
    "analytics": {},
    "footer_start": [],
    "footer_end": [],
    "footer_content_items": [],
}
html_context = {"default_mode": "light"}  # without it, pages opened from disk log "invalid theme mode"
html_sidebars = {"**": ["navbar-logo", "search-field", "sbt-sidebar-nav"]}

# Any Sphinx warning fails the build (-W), except this one: a checker's failure message (notebooks 00 and 02 show
# one on purpose) is not a Python traceback, so Pygments' traceback lexer stops at its "…" and Sphinx retries
# in relaxed mode, which renders it correctly.
suppress_warnings = ["misc.highlighting_failure"]
