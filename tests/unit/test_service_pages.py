"""A query's page read through the SDK's page iterator is freed with its rows, without waiting
for the cyclic garbage collector (the iterator holds itself through its callbacks)."""

from __future__ import annotations

import gc
import weakref
from typing import Any

from azure.core.paging import PageIterator

from shared.mirror.service_pages import service_page


class Answer:
    """Stands for what the SDK keeps of a service answer (parsed JSON, deserialized model)."""


class SelfHeldPages(PageIterator[Any]):
    """Shaped like azure-data-tables' TableEntityPropertiesPaged: its own bound methods are
    its callbacks, and it keeps the answer it got."""

    def __init__(self, continuation_token: Any = None) -> None:
        super().__init__(self._get_next, self._extract, continuation_token=continuation_token)
        self.answers: list[weakref.ref[Answer]] = []

    def _get_next(self, continuation_token: Any) -> Any:  # an Answer
        answer = Answer()
        self.answers.append(weakref.ref(answer))
        return answer

    def _extract(self, answer: Answer) -> tuple[Any, list[dict[str, str]]]:
        return {"PartitionKey": "01", "RowKey": "b"}, [{"RowKey": "a"}]


def test_a_page_and_the_answer_it_came_in_are_freed_with_the_rows() -> None:
    pages = SelfHeldPages()
    answers = pages.answers
    gc.disable()
    try:
        rows, continuation = service_page(pages)
        del pages
        assert rows == [{"RowKey": "a"}]
        assert continuation == {"PartitionKey": "01", "RowKey": "b"}
        assert len(answers) == 1 and answers[0]() is None
    finally:
        gc.enable()
