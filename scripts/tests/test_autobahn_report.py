"""Tests for scripts/autobahn-report, run as a subprocess on hand-made indexes.

    python3 -m unittest discover -s scripts/tests -v
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

REPORT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "autobahn-report")


def case(behavior="OK", close="OK"):
    return {"behavior": behavior, "behaviorClose": close, "duration": 1,
            "remoteCloseCode": 1000, "reportfile": "wschat_case.json"}


class AutobahnReportTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def write(self, content, name="index.json"):
        path = os.path.join(self.tmp.name, name)
        with open(path, "w") as f:
            f.write(content if isinstance(content, str) else json.dumps(content))
        return path

    def run_report(self, index, *flags):
        path = index if isinstance(index, str) else self.write(index)
        return subprocess.run([sys.executable, REPORT, *flags, path],
                              capture_output=True, text=True, timeout=60)

    def assertResult(self, proc, code, last_line):
        self.assertEqual(proc.returncode, code, proc.stdout + proc.stderr)
        self.assertEqual(proc.stdout.strip().splitlines()[-1], last_line, proc.stdout)

    def test_all_ok_passes(self):
        proc = self.run_report({"wschat": {"1.1.1": case(), "1.1.2": case(), "7.1.1": case()}})
        self.assertResult(proc, 0, "RESULT: PASS")
        self.assertRegex(proc.stdout, r"agent wschat: 3 cases")
        self.assertRegex(proc.stdout, r"\n  OK +3\n")
        self.assertRegex(proc.stdout, r"\n  FAILED +0\n")

    def test_informational_passes(self):
        proc = self.run_report({"wschat": {"1.1.1": case(), "7.1.6": case("INFORMATIONAL")}})
        self.assertResult(proc, 0, "RESULT: PASS")
        self.assertRegex(proc.stdout, r"\n  INFORMATIONAL +1\n")

    def test_failed_behavior_close_fails(self):
        proc = self.run_report({"wschat": {"1.1.1": case(), "7.1.1": case("OK", "FAILED")}})
        self.assertResult(proc, 1, "RESULT: FAIL (1 failing case)")
        self.assertRegex(proc.stdout, r"7\.1\.1 +behavior=OK behaviorClose=FAILED")

    def test_non_strict_fails(self):
        proc = self.run_report({"wschat": {"6.4.1": case("NON-STRICT"), "6.4.2": case("NON-STRICT")}})
        self.assertResult(proc, 1, "RESULT: FAIL (2 failing cases)")
        self.assertRegex(proc.stdout, r"\n  NON-STRICT +2\n")

    def test_other_behavior_is_counted_and_fails(self):
        proc = self.run_report({"wschat": {"7.9.1": case("WRONG CODE")}})
        self.assertResult(proc, 1, "RESULT: FAIL (1 failing case)")
        self.assertRegex(proc.stdout, r"\n  WRONG CODE +1\n")

    def test_unimplemented_fails_unless_its_section_is_allowed(self):
        index = {"wschat": {"1.1.1": case(), "12.1.1": case("UNIMPLEMENTED", "UNIMPLEMENTED"),
                            "13.1.1": case("UNIMPLEMENTED", "UNIMPLEMENTED")}}
        self.assertResult(self.run_report(index), 1, "RESULT: FAIL (2 failing cases)")
        self.assertResult(self.run_report(index, "--allow-unimplemented", "12"), 1,
                          "RESULT: FAIL (1 failing case)")
        proc = self.run_report(index, "--allow-unimplemented", "12,13")
        self.assertResult(proc, 0, "RESULT: PASS")
        self.assertIn("UNIMPLEMENTED accepted in: 12.* (1), 13.* (1)", proc.stdout)

    def test_unimplemented_in_section_9_fails_even_with_12_13_allowed(self):
        index = {"wschat": {"9.1.1": case("UNIMPLEMENTED", "UNIMPLEMENTED"),
                            "12.1.1": case("UNIMPLEMENTED", "UNIMPLEMENTED")}}
        proc = self.run_report(index, "--allow-unimplemented", "12,13")
        self.assertResult(proc, 1, "RESULT: FAIL (1 failing case)")
        self.assertRegex(proc.stdout, r"9\.1\.1 +behavior=UNIMPLEMENTED")
        self.assertNotRegex(proc.stdout, r"12\.1\.1 +behavior=")

    def test_failing_cases_are_sorted_numerically(self):
        ids = ["1.1.10", "1.1.9", "10.1.1", "2.1.1", "1.1.1"]
        proc = self.run_report({"wschat": {i: case("FAILED") for i in ids}})
        self.assertResult(proc, 1, "RESULT: FAIL (5 failing cases)")
        listed = [line.split()[0] for line in proc.stdout.splitlines() if "behavior=" in line]
        self.assertEqual(listed, ["1.1.1", "1.1.9", "1.1.10", "2.1.1", "10.1.1"])

    def test_every_agent_counts(self):
        proc = self.run_report({"a": {"1.1.1": case()}, "b": {"1.1.1": case("FAILED")}})
        self.assertResult(proc, 1, "RESULT: FAIL (1 failing case)")
        self.assertIn("agent a: 1 cases", proc.stdout)
        self.assertIn("agent b: 1 cases", proc.stdout)

    def test_bad_json_exits_2(self):
        proc = self.run_report(self.write('{"wschat": {'))
        self.assertEqual(proc.returncode, 2)
        self.assertIn("not valid JSON", proc.stderr)
        self.assertEqual(len(proc.stderr.strip().splitlines()), 1, proc.stderr)

    def test_missing_file_exits_2(self):
        proc = self.run_report(os.path.join(self.tmp.name, "nope.json"))
        self.assertEqual(proc.returncode, 2)
        self.assertIn("cannot read", proc.stderr)
        self.assertEqual(len(proc.stderr.strip().splitlines()), 1, proc.stderr)

    def test_no_agents_exits_2(self):
        for empty in ({}, [], {"wschat": {}}):
            proc = self.run_report(empty)
            self.assertEqual(proc.returncode, 2, (empty, proc.stdout, proc.stderr))
            self.assertRegex(proc.stderr, r"^autobahn-report: .*has no (agents|cases)\n$")

    def test_bad_sections_flag_exits_2(self):
        proc = self.run_report({"wschat": {"1.1.1": case()}}, "--allow-unimplemented", "twelve")
        self.assertEqual(proc.returncode, 2)

    def test_markdown_row(self):
        index = {"wschat": {"1.1.1": case(), "1.1.2": case(), "6.4.1": case("NON-STRICT"),
                            "7.1.6": case("INFORMATIONAL"),
                            "12.1.1": case("UNIMPLEMENTED", "UNIMPLEMENTED"),
                            "7.9.1": case("FAILED"), "7.9.2": case("WRONG CODE")}}
        proc = self.run_report(index, "--markdown", "--allow-unimplemented", "12,13",
                               "--role", "server (`wschat echo`)")
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertEqual(proc.stdout, "| server (`wschat echo`) | 2 | 1 | 1 | 1 | 2 |\n")

    def test_markdown_row_per_agent_defaults_to_agent_name(self):
        proc = self.run_report({"a": {"1.1.1": case()}, "b": {"1.1.1": case("INFORMATIONAL")}},
                               "--markdown")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(proc.stdout, "| a | 1 | 0 | 0 | 0 | 0 |\n| b | 0 | 0 | 1 | 0 | 0 |\n")


if __name__ == "__main__":
    unittest.main()
