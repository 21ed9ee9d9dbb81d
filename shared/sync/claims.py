"""Batches too large for a queue message, kept in a blob container (the claim check pattern).

The message names the blob `<cycle>/<batch>.json`; the apply step reads it from there. A cycle
deletes its blobs once it has finished, except those of batches that went to the poison queue,
which `acctsync replay-poison` may still send again (the storage account's lifecycle rule
removes what is left after two weeks, the longest a queue message lives twice over).
"""

from __future__ import annotations

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import ContainerClient

from shared.sync.batches import BadBatch


class ClaimStore:
    def __init__(self, container: ContainerClient):
        self.container = container

    def put(self, cycle_id: str, batch_id: str, body: str) -> str:
        name = f"{cycle_id}/{batch_id}.json"
        self.container.upload_blob(name, body.encode("utf-8"), overwrite=True)
        return name

    def get(self, name: str) -> str:
        try:
            return self.container.download_blob(name).readall().decode("utf-8")
        except ResourceNotFoundError:
            raise BadBatch(
                f"the batch blob {name} is gone: its cycle finished; the next cycle re-reads "
                "whatever it did not apply"
            ) from None

    def drop_cycle(self, cycle_id: str, *, keep: set[str]) -> int:
        """Delete the cycle's blobs but those of the batches in `keep`."""
        names = [
            name
            for name in self.container.list_blob_names(name_starts_with=f"{cycle_id}/")
            if name.removeprefix(f"{cycle_id}/").removesuffix(".json") not in keep
        ]
        for name in names:
            self.container.delete_blob(name)
        return len(names)
