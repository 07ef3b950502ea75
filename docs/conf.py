"""Sphinx configuration of the sklearn-smlm documentation.

Build (from the repository root)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

Environment variables
---------------------
SKLEARN_SMLM_INTERSPHINX
    ``1`` links to the numpy, scipy, scikit-learn, pandas, matplotlib and
    torch documentation (needs network access to fetch their inventories);
    ``0`` turns the links off; unset (the default) probes the hosts once with
    a short timeout and turns the links on only when all of them answer. So a
    build without network (a laptop on a train, a sandboxed CI runner) still
    passes with ``-W``: the cross-references then render as plain code
    instead of links, and no warning is emitted for them.
SKLEARN_SMLM_GALLERY
    ``0`` skips running the gallery examples (fast builds while editing
    prose); anything else runs them, which is what CI does.
SKLEARN_SMLM_GALLERY_FILTER
    A regular expression: run only the matching examples (sphinx-gallery's
    ``filename_pattern``).
"""

import os
import re
import socket
from pathlib import Path
from urllib.parse import urlparse

import sklearn_smlm

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent

# Examples and doctests must not try to open windows, nor fight the build for
# the CPU with many BLAS/torch threads.
os.environ.setdefault("MPLBACKEND", "Agg")

# -- project -----------------------------------------------------------------
project = "sklearn-smlm"
author = "sklearn-smlm developers"
copyright = "sklearn-smlm developers, BSD-3-Clause"
release = sklearn_smlm.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx.ext.intersphinx",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = [
    "_build",
    "Thumbs.db",
    ".DS_Store",
    "**/README.rst",  # gallery section headers, read by sphinx-gallery only
    "sg_execution_times.rst",
    "_generated",  # snippets pulled in with .. include::
]
default_role = "code"
root_doc = "index"
today_fmt = "%Y-%m-%d"

# -- autodoc / autosummary / numpydoc ------------------------------------------
autosummary_generate = True
autosummary_imported_members = True
# No inherited members: torch's and skorch's base-class docstrings are not
# ours (and do not all parse as reST); scikit-learn's get_params/set_params are
# documented by scikit-learn.
autodoc_default_options = {}
autodoc_typehints = "none"
# The estimators' docstrings list their parameters already; numpydoc would
# otherwise add an autosummary table of every method next to the methods
# autodoc already lists.
numpydoc_show_class_members = False
numpydoc_show_inherited_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False

# -- HTML --------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"sklearn-smlm {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_theme_options = {
    "navbar_end": ["navbar-icon-links"],
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "secondary_sidebar_items": ["page-toc", "sg_download_links", "sg_launcher_links"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_sidebars = {"index": [], "getting_started": [], "benchmarks": []}
html_show_sourcelink = False

# -- sphinx-gallery ------------------------------------------------------------
# The "localize a stack" example uses the pretrained model shipped in the
# package. While that file does not exist (a fresh checkout before
# scripts/train_pretrained.py was run), the example is shown but not run.
_PRETRAINED = ROOT / "sklearn_smlm" / "models" / "default.pt"
_RUN_PATTERN = r"/plot_" if _PRETRAINED.is_file() else r"/plot_(?!localize_stack)"
if not _PRETRAINED.is_file():
    print(f"[conf.py] {_PRETRAINED} missing: plot_localize_stack.py is not run")
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": os.environ.get("SKLEARN_SMLM_GALLERY_FILTER", _RUN_PATTERN),
    "plot_gallery": os.environ.get("SKLEARN_SMLM_GALLERY", "1") != "0",
    "within_subsection_order": "FileNameSortKey",
    "subsection_order": [
        f"../examples/{name}"
        for name in (
            "simulation",
            "localization",
            "model_selection",
            "evaluation",
            "rendering",
            "postprocessing",
            "threed",
        )
    ],
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    "min_reported_time": 1,
    # Each example is a story a reader runs top to bottom; a failing one
    # breaks the build (with -W) instead of shipping a broken page.
    "abort_on_example_error": False,
    "only_warn_on_example_error": False,
    "doc_module": ("sklearn_smlm",),
    "backreferences_dir": "gen_modules/backreferences",
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
}

# -- intersphinx (offline-safe, see the module docstring) -----------------------
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable", None),
    "scipy": ("https://docs.scipy.org/doc/scipy", None),
    "sklearn": ("https://scikit-learn.org/stable", None),
    "pandas": ("https://pandas.pydata.org/docs", None),
    "matplotlib": ("https://matplotlib.org/stable", None),
    "torch": ("https://docs.pytorch.org/docs/stable", None),
}
intersphinx_timeout = 10


def _hosts_reachable(urls, timeout=3.0):
    for url in urls:
        host = urlparse(url).hostname
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
        except OSError:
            return False
    return True


_intersphinx = os.environ.get("SKLEARN_SMLM_INTERSPHINX", "auto")
if _intersphinx == "auto":
    _use_intersphinx = _hosts_reachable(u for u, _ in intersphinx_mapping.values())
else:
    _use_intersphinx = _intersphinx == "1"
if not _use_intersphinx:
    # Keep the extension loaded (so :external: roles still parse) but with no
    # inventory to fetch: nothing is downloaded and nothing warns.
    intersphinx_mapping = {}
print(f"[conf.py] intersphinx {'on' if _use_intersphinx else 'off (no network)'}")

# -- pages made at build time ------------------------------------------------------
# docs/_generated/ (git-ignored) holds snippets included by benchmarks.rst and
# user_guide/model_card.rst, so those pages show what exists at build time.
try:
    import myst_parser  # noqa: F401

    extensions.append("myst_parser")
    _HAVE_MYST = True
except ImportError:
    _HAVE_MYST = False

_GENERATED = DOCS / "_generated"
_GENERATED.mkdir(exist_ok=True)


#: Result files of the other benchmark scripts shown after SUMMARY.md.
_EXTRA_RESULTS = (
    "fitting.md",
    "fitting_cnn.md",
    "fitting_file.md",
    "stack.md",
    "scale.md",
    "fuzz.md",
    "postprocessing.md",
    "postprocessing_picasso.md",
    "3d.md",
)


def _write_benchmark_summary():
    summary = ROOT / "benchmarks" / "results" / "SUMMARY.md"
    out = _GENERATED / "benchmarks_summary.rst"
    if not summary.is_file():
        out.write_text(
            ".. note::\n\n"
            "   ``benchmarks/results/SUMMARY.md`` did not exist when these pages were\n"
            "   built. Run the benchmark scripts (see below), then rebuild the\n"
            "   documentation to show their summary here.\n"
        )
        return
    # the other scripts' results follow the paper benchmarks' summary, one
    # heading level down
    parts = [summary.read_text(encoding="utf-8")]
    for name in _EXTRA_RESULTS:
        extra = ROOT / "benchmarks" / "results" / name
        if extra.is_file():
            text = extra.read_text(encoding="utf-8")
            parts.append(re.sub(r"(?m)^(#+ )", r"#\1", text))
    copy = _GENERATED / "SUMMARY.md"
    copy.write_text("\n\n".join(parts), encoding="utf-8")
    if _HAVE_MYST:
        out.write_text(
            ".. include:: /_generated/SUMMARY.md\n   :parser: myst_parser.sphinx_\n"
        )
    else:  # still readable: Markdown tables are plain text
        out.write_text(
            ".. literalinclude:: /_generated/SUMMARY.md\n   :language: markdown\n"
        )


def _rst_table(header, rows):
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for row in [header, *rows]:
        lines.append(f"   * - {row[0]}")
        lines += [f"     - {cell}" for cell in row[1:]]
    return "\n".join(lines) + "\n"


def _write_model_card_snippet():
    """Describe the shipped model from the metadata saved in its own file."""
    out = _GENERATED / "model_card_metadata.rst"
    if not _PRETRAINED.is_file():
        out.write_text(
            ".. note::\n\n"
            "   The model file ``sklearn_smlm/models/default.pt`` was not present\n"
            "   when these pages were built, so its recorded training metadata\n"
            "   cannot be shown here. Run ``scripts/train_pretrained.py`` and\n"
            "   rebuild.\n"
        )
        return
    from sklearn_smlm import load_model

    model = load_model(_PRETRAINED, device="cpu")
    meta = model.model_metadata_
    info = meta.get("training") or {}
    params = meta["params"]
    parts = [
        "Read from the model file when these pages were built.\n",
        _rst_table(
            ["property", "value"],
            [
                ["sklearn-smlm version that saved it", meta.get("library_version")],
                ["torch version", meta.get("torch_version")],
                ["training frames", info.get("n_frames", "?")],
                ["frame shape", " x ".join(map(str, meta["frame_shape"]))],
                ["epochs run", meta.get("n_epochs")],
                ["training time (min)", info.get("training_minutes", "?")],
                [
                    "network",
                    f"{params['n_layers']} layers x "
                    f"{params['n_channels']} channels, {params['upsampling']} head, "
                    f"r = {params['upscaling']}",
                ],
                ["target", f"alpha = {params['alpha']}, d_max = {params['d_max']}"],
                ["dropout", params["dropout"]],
                ["threshold", params["threshold"]],
            ],
        ),
    ]
    sweep = info.get("threshold_sweep")
    if sweep:
        parts += [
            "\nMean Jaccard index (250 nm) over the validation conditions, by "
            "threshold:\n",
            _rst_table(
                ["threshold", "mean Jaccard"], [[t, v] for t, v in sweep.items()]
            ),
        ]
    validation = info.get("validation_at_threshold")
    if validation:
        parts += [
            "\nPer condition at the chosen threshold (fresh simulated frames):\n",
            _rst_table(
                ["condition", "Jaccard (250 nm)", "RMSE (nm)"],
                [[k, v["jaccard"], v["rmse_nm"]] for k, v in validation.items()],
            ),
        ]
    out.write_text("\n".join(parts))


_write_benchmark_summary()
_write_model_card_snippet()
