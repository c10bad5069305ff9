"""The course's HTML pages, readable offline: math typeset as MathML at render time, a styled index.

Why MathML, converted when the page is written: nbconvert's pages load MathJax from a CDN, so without a
network the reader sees raw ``$$ ... $$``. Shipping MathJax or KaTeX next to every page would copy
megabytes of scripts and fonts from a package that bundles them. Instead every ``$...$`` and ``$$...$$``
of a markdown cell is converted to MathML by ``latex2mathml`` (pure Python, one small package) when the
page is rendered; browsers draw MathML natively (Chromium since 109, Firefox, Safari), with no script at
all. The converted page holds no ``<script>`` that loads MathJax, and no TeX is left to typeset.

The conversion goes around the markdown renderer: each formula is replaced by a placeholder word before
nbconvert renders the markdown (so that no ``_`` or ``*`` inside a formula is read as emphasis), and the
placeholder by its MathML afterwards. ``tests/test_course_html.py`` opens a page in headless Chromium with
the network off and checks that the math was laid out and every figure decoded.
"""
import html
import re

# `code`, $$display$$ or $inline$ (a code span is kept as it is: a $ in code is no math).
MATH = re.compile(r"(`[^`]*`)|\$\$(.+?)\$\$|\$([^$\n]+?)\$", re.DOTALL)
PLACEHOLDER = "MINIDEBERTAMATH{}X"
# TeX that latex2mathml reads differently from MathJax, written as it understands it.
TEX_SPELLINGS = {r"\arg\max": r"\operatorname{argmax}"}
STYLE = """
body { font-family: system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem;
       line-height: 1.5; color: #222; }
h1 { font-size: 1.8rem; border-bottom: 2px solid #3465a4; padding-bottom: .3rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; color: #3465a4; }
ol.chapters { list-style: none; padding: 0; }
ol.chapters li { margin: .8rem 0; padding: .6rem .9rem; border-left: 4px solid #3465a4; background: #f4f6fa; }
ol.chapters a { font-weight: 600; text-decoration: none; color: #204a87; }
ol.chapters .number { display: inline-block; min-width: 2.2rem; color: #555; }
ol.chapters .summary { display: block; margin-top: .2rem; font-size: .92rem; color: #444; }
footer { margin-top: 2rem; font-size: .85rem; color: #666; }
"""


def _require_latex2mathml():
    try:
        import latex2mathml.converter
    except ImportError as error:
        raise ModuleNotFoundError("the course's pages typeset their math with latex2mathml: "
                                  "pip install -e .[notebooks]") from error
    return latex2mathml.converter


def to_mathml(tex, display):
    """One formula as a ``<math>`` element (``display``: its own centred line, else inline)."""
    converter = _require_latex2mathml()
    for tex_name, spelling in TEX_SPELLINGS.items():
        tex = tex.replace(tex_name, spelling)
    return converter.convert(tex.strip(), display="block" if display else "inline")


def take_out_math(nb):
    """Replace every formula of ``nb``'s markdown cells by a placeholder word, in place; returns the list of
    their MathML, placeholder k standing for element k."""
    formulas = []

    def swap(match):
        if match.group(1):
            return match.group(1)
        display = match.group(2) is not None
        formulas.append(to_mathml(match.group(2) if display else match.group(3), display))
        return PLACEHOLDER.format(len(formulas) - 1)

    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = MATH.sub(swap, cell.source)
    return formulas


def put_back_math(body, formulas):
    """The rendered page with its placeholders replaced by their MathML."""
    def back(match):
        return formulas[int(match.group(1))]

    body = re.sub(PLACEHOLDER.format(r"(\d+)"), back, body)
    missing = re.findall(PLACEHOLDER.format(r"\d+"), body)
    if missing:
        raise ValueError(f"formulas {missing} were lost between markdown and HTML")
    return body


def chapter_number(stem):
    """'03_gradient_checking' -> '3', 'A1_ngie' -> 'A1' (the appendices keep their letter)."""
    number = stem.split("_", 1)[0]
    return number if number.startswith("A") else str(int(number))


def bare_title(title):
    """A notebook's heading without its own number: '3. Embeddings' -> 'Embeddings',
    'Appendix A1. nGiE' -> 'nGiE' (the index numbers the chapters once)."""
    return re.sub(r"^(Appendix\s+)?[A-Z]?\d+\.\s*", "", title)


def summaries(readme_text):
    """``{file name: its one-line summary}`` from notebooks/README.md's list (``- `NN_topic.py`: text``)."""
    found, name = {}, None
    for line in readme_text.splitlines():
        start = re.match(r"- `(\w+\.py)`: (.*)", line)
        if start:
            name = start.group(1)
            found[name] = start.group(2).strip()
        elif name and line.startswith("  ") and line.strip():
            found[name] += " " + line.strip()
        else:
            name = None
    return found


def index_page(chapters):
    """The index: ``chapters`` is a list of ``(page file, file stem, title, summary)`` in reading order."""
    items = []
    for page, stem, title, summary in chapters:
        number = chapter_number(stem)
        label = f"Appendix {number}" if number.startswith("A") else f"{number}."
        items.append(f'<li><span class="number">{html.escape(label)}</span> <a href="{html.escape(page)}">'
                     f'{html.escape(bare_title(title))}</a><span class="summary">{inline_code(summary)}</span></li>')
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
            "<title>minideberta: the read-along course</title>\n<style>" + STYLE + "</style></head>\n<body>\n"
            "<h1>minideberta: the read-along course</h1>\n"
            "<p>One chapter per component of DeBERTa-v3, in reading order: the paper's equation, the library's "
            "function that computes it, a picture, and an assertion that the two agree.</p>\n"
            '<ol class="chapters">\n' + "\n".join(items) + "\n</ol>\n"
            "<footer>Rendered by <code>python -m minideberta course render</code>; "
            "the pages need no network (math as MathML, figures embedded).</footer>\n</body></html>\n")


def inline_code(text):
    """Escape ``text`` and set its `backquoted` parts as <code>."""
    return re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(text))
