"""The queue names and host.json's retry rule, apart from the storage clients: the queue
trigger's binding names its queue when the function app is indexed, which must not load the
storage SDKs."""

import json
from functools import cache
from pathlib import Path

BATCH_QUEUE = "acctsync-batches"
POISON_QUEUE = BATCH_QUEUE + "-poison"
# The Functions host reads its queue rules from here; the deployment package holds it next to
# shared/, as the project root does.
HOST_JSON = Path(__file__).resolve().parent.parent / "host.json"


@cache
def max_dequeue_count() -> int:
    """host.json's `extensions.queues.maxDequeueCount`: the attempt after which the host moves
    a failing batch to the poison queue. Read from the file the host reads (at first use), so
    the two cannot disagree."""
    queues = json.loads(HOST_JSON.read_text())["extensions"]["queues"]
    return int(queues["maxDequeueCount"])
