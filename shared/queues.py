"""The queue names, apart from the storage clients: the queue trigger's binding names its
queue when the function app is indexed, which must not load the storage SDKs."""

BATCH_QUEUE = "acctsync-batches"
POISON_QUEUE = BATCH_QUEUE + "-poison"
