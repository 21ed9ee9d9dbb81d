"""host.json's retry rule has one home: shared reads the file the Functions host reads."""

from __future__ import annotations

import json

from shared.queues import HOST_JSON, max_dequeue_count


def test_the_poison_attempt_is_the_one_host_json_names() -> None:
    queues = json.loads(HOST_JSON.read_text())["extensions"]["queues"]
    assert max_dequeue_count() == queues["maxDequeueCount"]
