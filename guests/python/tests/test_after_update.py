"""``emmaa-after-update`` in Python, and the S3 events and configurations it reads."""

import json
import unittest

from after_update.handler import handle
from emmaa_guest import HandlerError, Refusal, run
from emmaa_guest.batch_job import PER_MODEL, check_job_names
from emmaa_guest.config import ModelConfig
from emmaa_guest.names import ModelName
from emmaa_guest.s3_event import KeyRefused, decode_key, model_manager_key, model_state_key, parse_records, results_key

from .fake_host import FakeHost

KEY = "results/aml/model_manager_2020-02-04-12-00-00.pkl"


def s3_event(*keys: str) -> str:
    return json.dumps({"Records": [{"s3": {"object": {"key": key}}} for key in keys]})


class AfterUpdate(unittest.TestCase):
    def test_invokes_the_three_functions_then_test_update_when_the_model_makes_tests(self) -> None:
        host = FakeHost(objects={"models/aml/config.json": b'{"make_tests": true}'})
        answer = json.loads(run(s3_event(KEY), "r1", handle, host))
        self.assertEqual(answer, {"statusCode": 200, "result": "SUCCESS"})
        self.assertEqual(
            [(i.function_name, i.payload, i.work) for i in host.invoked],
            [
                ("emmaa-model-stats", '{"model":"aml"}', f"request:r1:{KEY}|model-stats"),
                ("emmaa-test-pipeline", '{"model":"aml"}', f"request:r1:{KEY}|test-pipeline"),
                ("emmaa-queries", '{"model":"aml"}', f"request:r1:{KEY}|queries"),
                ("emmaa-test-update", '{"model":"aml"}', f"request:r1:{KEY}|test-update"),
            ],
        )

    def test_the_three_invocations_go_out_when_the_config_cannot_be_read(self) -> None:
        host = FakeHost()
        answer = json.loads(run(s3_event(KEY), "r1", handle, host))
        self.assertEqual(answer["statusCode"], 207)
        self.assertEqual(
            answer["refused"],
            [
                {
                    "item": "aml",
                    "reason": "reading s3://emmaa/models/aml/config.json failed: NoSuchKey: The specified key does not exist.",
                }
            ],
        )
        self.assertEqual(len(host.invoked), 3)

    def test_a_record_with_a_sequencer_claims_each_invocation_as_part_of_it(self) -> None:
        event = json.dumps({"Records": [{"s3": {"object": {"key": KEY, "sequencer": "0A1B"}}}]})
        host = FakeHost(objects={"models/aml/config.json": b"{}"})
        run(event, "r1", handle, host)
        self.assertEqual(host.invoked[0].work, f"s3:{KEY}@0A1B|model-stats")

    def test_a_deletion_is_ignored_and_a_bad_key_refused(self) -> None:
        event = {
            "Records": [
                {"eventName": "ObjectRemoved:Delete", "s3": {"object": {"key": KEY}}},
                {"s3": {"object": {"key": "results/aml/model_manager_latest.pkl"}}},
            ]
        }
        with self.assertRaises(HandlerError) as failed:
            run(json.dumps(event), "r1", handle, FakeHost())
        self.assertEqual(
            str(failed.exception),
            'Records[1].s3.object.key "results/aml/model_manager_latest.pkl" does not have the layout '
            "results/{model}/model_manager_{date}.pkl",
        )


class S3Events(unittest.TestCase):
    def test_decodes_plus_and_percent_escapes(self) -> None:
        self.assertEqual(decode_key("a+b%2Fc%3B"), "a b/c;")
        self.assertEqual(decode_key("%41%6a"), "Aj")
        for bad in ["a%2", "a%zz", "%FF", "%+A", "%-1", "% A"]:
            with self.assertRaises(KeyRefused):
                decode_key(bad)

    def test_reads_the_model_and_corpus_of_each_layout(self) -> None:
        self.assertEqual(model_state_key("k", "models/aml/model_2020-01-01-00-00-00.pkl").value, "aml")
        self.assertEqual(model_manager_key("k", KEY).value, "aml")
        model, corpus = results_key("k", "results/aml/results_simple_tests_2020-02-04-12-00-00.json")
        self.assertEqual((model.value, corpus.value), ("aml", "simple_tests"))
        _, corpus = results_key("k", "results/aml/results_2020-02-04-12-00-00.json")
        self.assertEqual(corpus.value, "large_corpus_tests")
        for bad in ["results/aml/results_.json", "results/aml/results__2020-02-04-12-00-00.json"]:
            with self.assertRaises(KeyRefused):
                results_key("k", bad)
        with self.assertRaises(KeyRefused) as refused:
            model_state_key("k", "models/aml/extra/model.pkl")
        self.assertEqual(
            str(refused.exception), 'k "models/aml/extra/model.pkl" does not have the layout models/{model}/{file}.pkl'
        )

    def test_eventbridge_and_test_events(self) -> None:
        created = {"source": "aws.s3", "detail-type": "Object Created", "detail": {"object": {"key": KEY}}}
        [(model, _)] = parse_records(created, "emmaa", model_manager_key).objects
        self.assertEqual(model.value, "aml")
        deleted = dict(created, **{"detail-type": "Object Deleted"})
        self.assertEqual(parse_records(deleted, "emmaa", model_manager_key).ignored[0].item, KEY)
        test = parse_records({"Event": "s3:TestEvent"}, "emmaa", model_manager_key)
        self.assertEqual((test.objects, test.ignored[0].item), ([], "s3:TestEvent"))
        both = parse_records(dict(created, Records=[]), "emmaa", model_manager_key)
        self.assertIn("cannot be told", both.objects[0].reason)

    def test_an_object_in_another_bucket_is_refused(self) -> None:
        event = {"Records": [{"s3": {"bucket": {"name": "elsewhere"}, "object": {"key": KEY}}}]}
        [refusal] = parse_records(event, "emmaa", model_manager_key).objects
        self.assertEqual(
            refusal.reason, 'Records[0].s3.bucket.name "elsewhere" is not the pipeline\'s bucket "emmaa" (EMMAA_BUCKET)'
        )


class Configs(unittest.TestCase):
    def config(self, text: str) -> ModelConfig:
        return ModelConfig.parse(ModelName("aml"), text.encode())

    def test_only_json_true_counts_as_true(self) -> None:
        self.assertTrue(self.config('{"run_model_update": true}').run_daily_update)
        self.assertFalse(self.config('{"run_daily_update": "true"}').run_daily_update)
        self.assertFalse(self.config('{"run_daily_tests": 1}').run_daily_tests)

    def test_corpora(self) -> None:
        def corpora(text: str) -> list[str]:
            return [c.reason if isinstance(c, Refusal) else c.value for c in self.config(text).test_corpora()]

        self.assertEqual(corpora("{}"), ["large_corpus_tests"])
        self.assertEqual(corpora('{"test": {"test_corpus": ["a", 5]}}'), ["a", "models/aml/config.json test.test_corpus[1] must be a string, got 5"])
        with self.assertRaises(Refusal) as refused:
            self.config('{"test": {"test_corpus": 5}}').test_corpora()
        self.assertEqual(
            refused.exception.reason, "models/aml/config.json test.test_corpus must be a string or a list of strings, got 5"
        )

    def test_refuses_config_that_is_not_a_json_object(self) -> None:
        with self.assertRaises(Refusal) as refused:
            self.config("[1]")
        self.assertEqual(refused.exception.reason, "models/aml/config.json is not a JSON object: a list")
        for broken in ["{nope", '{"a": NaN}', "[" * 129 + "]" * 129]:
            with self.assertRaises(Refusal) as refused:
                self.config(broken)
            self.assertTrue(refused.exception.reason.startswith("models/aml/config.json is not JSON: "), broken)

    def test_checks_the_longest_job_a_model_will_get_downstream(self) -> None:
        check_job_names(PER_MODEL, ModelName("m" * 100), None)
        with self.assertRaises(Refusal) as refused:
            check_job_names(PER_MODEL, ModelName("m" * 101), None)
        self.assertIn('_test_update_YYYYMMDD_HHMMSS" is 129 characters long', refused.exception.reason)


if __name__ == "__main__":
    unittest.main()
