"""The rendered course reads offline: math typeset as MathML, figures decoded, a styled index.

The browser test renders a chapter with ``python -m minideberta course render`` and opens it in headless
Chromium (Debian's ``chromium``; .ci/run installs it) with every host name unresolvable and a dead proxy,
so nothing can come from a network. A probe script appended to a copy of the page runs on the load event
(when every image has loaded or failed) and writes what it measured into the DOM, which ``--dump-dom``
prints. A screenshot of the
page is kept in pytest's tmp dir (its path is printed: ``pytest -s`` shows it).
"""
import json
import re
import shutil
import subprocess
from pathlib import Path

import jupytext
import nbformat

from minideberta.apps.cli import main as cli
from minideberta.apps.course import html as course_html
from minideberta.apps.course import render as course_render

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"  # the clone's course

CHAPTER = "05"  # relative positions: fast, dense with formulas (fractions, sums, subscripts) and three figures
OFFLINE = ["--headless", "--no-sandbox", "--disable-gpu", "--proxy-server=127.0.0.1:9",
           "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=10000"]
PROBE = """<script>
window.addEventListener("load", () => {  // after every image has loaded (or failed to), synchronously
  const images = [...document.images];
  const maths = [...document.querySelectorAll("math")];
  const laidOut = maths.filter(m => { const box = m.getBoundingClientRect(); return box.width > 0 && box.height > 0; });
  const fractions = [...document.querySelectorAll("mfrac")].map(f => {
    const top = f.children[0].getBoundingClientRect(), bottom = f.children[1].getBoundingClientRect();
    return top.bottom <= bottom.top + 1 && Math.abs((top.left + top.right) - (bottom.left + bottom.right)) < 4;
  });
  const result = {maths: maths.length, laid_out: laidOut.length,
    displays: [...new Set(maths.map(m => getComputedStyle(m).display))],
    fractions: fractions.length, stacked: fractions.filter(Boolean).length,
    images: images.length, decoded: images.filter(i => i.complete && i.naturalWidth > 0).length,
    tex_left: (document.body.innerText.match(/\\$\\$|\\\\frac|\\\\sum/g) || []).length};
  const out = document.createElement("pre");
  out.id = "course-probe";
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
});
</script>
"""


def chromium():
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "the offline-reading test needs headless Chromium: apt-get install -y chromium (see .ci/run)"
    return found


def notebook(markdown):
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(markdown)])


def test_formulas_become_mathml_and_code_stays_code():
    text = "Cost `$HOME` and $a_{i}$ and\n$$\\frac{1}{\\sqrt{3d}} \\sum_j x_j$$\nend"
    nb = notebook(text)
    formulas = course_html.take_out_math(nb)
    assert len(formulas) == 2 and "$" not in nb.cells[0].source.replace("`$HOME`", "")
    assert 'display="inline"' in formulas[0] and 'display="block"' in formulas[1]
    assert "<mfrac>" in formulas[1] and "<msqrt>" in formulas[1] and "<msub>" in formulas[0]
    page = course_render.to_html(notebook(text))
    assert "<code>$HOME</code>" in page and page.count("<math") == 2 and "MINIDEBERTAMATH" not in page
    assert not re.search(r"<script[^>]*src=|from \"https?:", page), "the page must load no script"


def test_every_formula_of_the_course_converts():
    """latex2mathml reads every formula of every chapter (a formula it cannot read fails here, not in a reader's page)."""
    count = 0
    for path in course_render.sources(NOTEBOOK_DIR):
        count += len(course_html.take_out_math(jupytext.read(path)))
    assert count > 300


def test_index_numbers_each_chapter_once_with_its_summary():
    paths = course_render.sources(NOTEBOOK_DIR)
    summaries = course_html.summaries((NOTEBOOK_DIR / "README.md").read_text(encoding="utf-8"))
    assert sorted(summaries) == sorted(p.name for p in paths)
    assert all(len(s) > 20 for s in summaries.values())
    chapters = [(p.stem + ".html", p.stem, course_render.title(jupytext.read(p), p.stem), summaries[p.name])
                for p in paths]
    page = course_html.index_page(chapters)
    for (_, stem, title, _), item in zip(chapters, re.findall(r"<li>.*?</li>", page)):
        number = course_html.chapter_number(stem)
        label = re.search(r'<span class="number">(.*?)</span>', item).group(1)
        assert label in (f"{number}.", f"Appendix {number}"), item
        name = re.search(r"<a [^>]*>(.*?)</a>", item).group(1)
        assert not re.match(r"(Appendix )?[A-Z]?\d+\.", name) and name in title, (name, title)
    assert "<style>" in page and 'class="summary"' in page
    assert course_html.bare_title("Appendix A1. nGiE: a convolution") == "nGiE: a convolution"


def test_rendered_chapter_reads_offline_in_chromium(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    browser = chromium()
    out = tmp_path / "html"
    assert cli.main(["course", "--notebooks", str(NOTEBOOK_DIR), "render", str(out), "--only", CHAPTER]) == 0
    err = capsys.readouterr().err
    assert "WARNING" not in err and "Warning" not in err, f"rendering printed warnings:\n{err}"
    page = next(out.glob(f"{CHAPTER}_*.html"))
    text = page.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]*src=|<link[^>]*href=\"https?:", text), "the page loads something"

    probe = page.with_name("probe.html")
    probe.write_text(text + PROBE, encoding="utf-8")
    for _ in range(3):  # a browser starved of CPU by a busy machine may dump the page before the probe ran
        dom = subprocess.run([browser, *OFFLINE, "--dump-dom", probe.as_uri()], capture_output=True, text=True,
                             timeout=120).stdout
        found = re.search(r'<pre id="course-probe">(.*?)</pre>', dom)
        if found:
            break
    assert found, f"the probe did not run; chromium printed:\n{dom[-2000:]}"
    result = json.loads(found.group(1).replace("&quot;", '"'))
    print("chromium measured:", result)
    assert result["maths"] > 20 and result["laid_out"] == result["maths"]      # every formula has a box
    assert set(result["displays"]) == {"math", "block math"}                    # drawn as MathML, inline and display
    assert result["fractions"] > 0 and result["stacked"] == result["fractions"]  # numerators above denominators
    assert result["tex_left"] == 0                                              # no raw TeX left to read
    assert result["images"] >= 3 and result["decoded"] == result["images"]      # every figure decoded

    for name, shown in (("page", page), ("index", out / "index.html")):
        shot = tmp_path / f"course-{name}.png"
        subprocess.run([browser, *OFFLINE, "--window-size=1100,1600", f"--screenshot={shot}", shown.as_uri()],
                       capture_output=True, timeout=120)
        assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"no screenshot of the {name}"
        print(f"screenshot of the {name}: {shot}")
    index = (out / "index.html").read_text(encoding="utf-8")
    assert f'href="{page.name}"' in index and 'class="summary"' in index


def test_only_reads_numbers_and_appendices_in_any_case(tmp_path, capsys):
    assert cli.main(["course", "--notebooks", str(NOTEBOOK_DIR), "render", str(tmp_path), "--only", "7", "a9"]) == 2
    assert capsys.readouterr().err.startswith("error: no notebook numbered A9 ")
