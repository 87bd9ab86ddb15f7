"""``emmaa-model-stats`` in Python: one Batch job for the model it is sent."""

import json
import unittest

from emmaa_guest import HandlerError, run
from emmaa_guest.host import Settings
from model_stats.handler import handle

from .fake_host import FakeHost


class ModelStats(unittest.TestCase):
    def test_submits_the_models_statistics_job(self) -> None:
        host = FakeHost()
        answer = json.loads(run('{"model": "aml"}', "r1", handle, host))
        self.assertEqual(answer["job_ids"], ["local-aml_model_stats_20200204_120000"])
        [job] = host.submitted
        self.assertEqual(job.name, "aml_model_stats_20200204_120000")
        self.assertEqual(job.work, "request:r1:aml_model_stats")
        self.assertEqual(
            job.command[-1],
            "bash scripts/git_and_run.sh --branch origin/master "
            "python scripts/run_model_stats_from_s3.py --model aml --stats_mode model",
        )
        self.assertEqual(job.command[6:8], ["--purpose", "update-emmaa-model-stats"])

    def test_a_large_model_goes_to_the_large_queue(self) -> None:
        host = FakeHost(settings_=Settings(large_models=["big"]))
        run('{"model": "big"}', "r1", handle, host)
        self.assertEqual(host.submitted[0].queue, "emmaa-after-update")

    def test_a_bad_model_is_refused_and_nothing_submitted(self) -> None:
        host = FakeHost()
        with self.assertRaises(HandlerError) as failed:
            run('{"model": "a;b"}', "r1", handle, host)
        self.assertEqual(
            str(failed.exception),
            'model "a;b" is not a valid model name: it must match ^[A-Za-z0-9][A-Za-z0-9_-]*$',
        )
        self.assertEqual(host.submitted, [])


if __name__ == "__main__":
    unittest.main()
