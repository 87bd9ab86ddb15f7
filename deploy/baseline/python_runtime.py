"""A minimal Lambda runtime loop for the original Python handlers.

`cargo test -p emmaa-deploy --test side_by_side` runs the original
`model_updates.py` and `update_pipeline.py` (from PyPI's `emmaa` 1.17.0,
fetched into target/, never committed) under this loop, as Lambda's Python runtime would: import the
handler module once (boto3 with it), then for each event from the Runtime
API call `lambda_handler(event, context)` and post its answer.
"""

import importlib
import json
import os
import sys
import urllib.request

sys.path.insert(0, os.environ["LAMBDA_TASK_ROOT"])
module, function = os.environ["_HANDLER"].rsplit(".", 1)
handler = getattr(importlib.import_module(module), function)
api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation/"

while True:
    with urllib.request.urlopen(api + "next") as response:
        request_id = response.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(response.read())
    answer = json.dumps(handler(event, None)).encode()
    urllib.request.urlopen(urllib.request.Request(api + request_id + "/response", data=answer, method="POST")).read()
