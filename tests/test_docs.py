"""The documentation site builds with ``mkdocs build --strict`` and covers every page and package.

``--strict`` turns every warning into an error: a page missing from the nav, a broken link or
anchor, an API reference (``::: torch_brain.x``) to a name that does not exist, and an unresolved
cross-reference all fail the build.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCS = REPO_ROOT / "docs"
MKDOCS_YML = REPO_ROOT / "mkdocs.yml"


def _nav_files(nav) -> list[str]:
    """Flatten mkdocs' nav (nested lists of {title: path | list}) into the list of page paths."""
    files: list[str] = []
    for item in nav:
        if isinstance(item, str):
            files.append(item)
        elif isinstance(item, dict):
            for value in item.values():
                files.extend([value] if isinstance(value, str) else _nav_files(value))
    return files


def _load_config() -> dict:
    # mkdocs.yml may hold python-specific tags in some projects; ours is plain YAML.
    return yaml.safe_load(MKDOCS_YML.read_text())


def test_every_docs_page_is_in_the_nav_and_every_nav_entry_exists():
    nav = _nav_files(_load_config()["nav"])
    on_disk = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    assert sorted(set(nav)) == on_disk, (
        f"pages missing from the nav: {sorted(set(on_disk) - set(nav))}; "
        f"nav entries without a file: {sorted(set(nav) - set(on_disk))}"
    )
    assert len(nav) == len(set(nav)), "a page is listed twice in the nav"


def test_api_reference_covers_every_public_package():
    """Each package under torch_brain/ (and each top-level module) has an API page referencing it."""
    api_text = "\n".join(p.read_text() for p in (DOCS / "api").glob("*.md"))
    referenced = set(re.findall(r"^:::\s+(torch_brain[\w.]*)", api_text, flags=re.M))
    packages = [
        p.parent for p in (REPO_ROOT / "torch_brain").glob("*/__init__.py")
    ] + [p for p in (REPO_ROOT / "torch_brain").glob("*.py") if not p.name.startswith("_")]
    missing = []
    for path in packages:
        name = "torch_brain." + path.stem if path.suffix == ".py" else "torch_brain." + path.name
        if name in ("torch_brain.utils",):  # a namespace for stitcher; documented as utils.stitcher
            name = "torch_brain.utils.stitcher"
            if not (REPO_ROOT / "torch_brain" / "utils" / "stitcher.py").exists():
                continue
        if not any(ref == name or ref.startswith(name + ".") for ref in referenced):
            missing.append(name)
    assert not missing, f"no API page references {missing}; add a `::: name` block under docs/api/"


def test_python_blocks_of_the_docs_compile():
    """Every ```python block of every page is valid Python (a typo in an example fails here)."""
    bad = []
    for page in sorted(DOCS.rglob("*.md")):
        for i, block in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)):
            try:
                compile(block, f"{page.name}[block {i}]", "exec")
            except SyntaxError as err:
                bad.append(f"{page.relative_to(DOCS)} block {i}: {err}")
    assert not bad, "\n".join(bad)


@pytest.mark.slow
def test_site_builds_strict(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(MKDOCS_YML), "-d", str(site)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    # Every nav page was rendered, and the API pages hold rendered objects (not an empty page).
    for page in _nav_files(_load_config()["nav"]):
        stem = page[: -len(".md")]
        html = site / (stem[: -len("index")] if stem.endswith("index") else stem + "/") / "index.html"
        assert html.is_file(), f"{page} was not rendered to {html}"
    api_html = (site / "api" / "registry" / "index.html").read_text()
    assert 'id="torch_brain.registry.register_modality"' in api_html


def _python_blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)


@pytest.mark.slow
def test_training_guide_runs_top_to_bottom(tmp_path):
    """docs/guide.md is runnable: its python blocks, in order, train and reload a model."""
    code = "\n".join(_python_blocks(DOCS / "guide.md"))
    for setting, small in [
        ("MAX_STEPS = 300", "MAX_STEPS = 2"),
        ('DATA_OPTIONS = {"n_sessions": 2, "minutes": 5.0}',
         'DATA_OPTIONS = {"n_sessions": 2, "minutes": 1.0, "n_units": 20}'),
    ]:
        assert setting in code, f"docs/guide.md no longer sets {setting!r}; update this test"
        code = code.replace(setting, small)
    script = tmp_path / "guide.py"
    script.write_text(code)
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, f"docs/guide.md failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    assert "average_val_metric:" in proc.stdout
    assert list((tmp_path / "checkpoints").glob("*.ckpt")), "no checkpoint was written"
