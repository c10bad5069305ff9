"""How the task commands print their results: a table per command (``--json`` prints the result as it is).

Each ``show_*`` takes the plain-data result of its pipeline (``pipelines.py``) and the parsed arguments.
"""
import os
import sys

from . import pipelines


def table(rows, header):
    """Rows of strings as aligned columns (numbers right-aligned), under ``header``."""
    rows = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    numeric = [all(_is_number(row[i]) for row in rows[1:]) for i in range(len(header))]
    return "\n".join("  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric)).rstrip()
                     for row in rows)


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def score(p):
    """A probability for people: 4 decimals, or 2 significant digits when that would show 0.0000."""
    return f"{p:.4f}" if p >= 1e-4 else f"{p:.1e}"


def show_fill_mask(result, args):
    decoder = "Enhanced Mask Decoder" if result["emd"] else "last layer"
    for mask in result["masks"]:
        print(f"[MASK] at characters {mask['start']}-{mask['end']} (decoded with the {decoder}):")
        print(table([[score(p["score"]), p["token_str"], p["sequence"]] for p in mask["predictions"]],
                    ["score", "token", "sequence"]))


def _colour(p):
    """ANSI background by probability of replacement: none, yellow, red."""
    return "" if p < 0.25 else "\033[43;30m" if p < 0.5 else "\033[41;97m"


def show_rtd(result, args):
    colour = args.color == "always" or (args.color == "auto" and sys.stdout.isatty() and "NO_COLOR" not in os.environ)
    if colour:
        text, line, at = args.text, [], 0
        for token in result:
            start, end = pipelines.trim_span(text, token["start"], token["end"])
            code = _colour(token["probability"])
            line += [text[at:start], f"{code}{text[start:end]}\033[0m" if code else text[start:end]]
            at = max(at, end)
        print("".join(line + [text[at:]]))
        print(f"({_colour(0.3)}p >= 0.25\033[0m, {_colour(0.9)}p >= 0.5\033[0m: probably replaced)\n")
    print(table([[t["token"], f"{t['start']}-{t['end']}", score(t["probability"]), mark(t["probability"])]
                 for t in result], ["token", "chars", "p(replaced)", "replaced?"]))
    print(f"({MARKS[0]}: p >= 0.25, {MARKS[1]}: p >= 0.5, probably replaced)")


MARKS = ("*", "**")


def mark(p):
    """The plain-text mark of a token's probability of replacement: none, * (>= 0.25), ** (>= 0.5)."""
    return "" if p < 0.25 else MARKS[0] if p < 0.5 else MARKS[1]


def show_classify(result, args):
    if result["problem_type"] == "regression":
        print(f"{result['label']}: {result['value']:.4f}")
    else:
        print(table([[entry["label"], score(entry["score"])] for entry in result["labels"]], ["label", "score"]))


def show_tokens(result, args):
    print(table([[w["text"], w["label"], score(w["score"])] for w in result["words"]], ["word", "label", "score"]))
    if result["entities"] is not None:
        rows = [[e["entity"], e["text"], f"{e['start']}-{e['end']}", score(e["score"])] for e in result["entities"]]
        print("\nentities:\n" + (table(rows, ["entity", "text", "chars", "score"]) if rows else "(none)"))


def show_qa(result, args):
    print(f"answer: {result['answer']}")
    print(f"characters {result['start']}-{result['end']} of the context, score {score(result['score'])}, "
          f"window {result['window'] + 1} of {result['windows']}")


def show_choose(result, args):
    print(table([["*" if k == 0 else "", score(c["score"]), c["index"], c["choice"]] for k, c in enumerate(result)],
                ["", "score", "#", "choice"]))


SHOW = {"fill-mask": show_fill_mask, "rtd": show_rtd, "classify": show_classify, "tokens": show_tokens,
        "qa": show_qa, "choose": show_choose}
