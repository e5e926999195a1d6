"""Turning library exceptions into the one-line messages vpd shows users."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def first_line(err: BaseException) -> str:
    """The first non-empty line of an exception's message, or its type name when it has none."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0].strip("'\"") if lines else type(err).__name__


def is_out_of_memory(err: BaseException) -> bool:
    """True for torch's allocation failures (CPU ``DefaultCPUAllocator`` and CUDA out-of-memory)."""
    text = str(err)
    return isinstance(err, MemoryError) or "out of memory" in text or "DefaultCPUAllocator" in text


def worker_error(err: BaseException) -> BaseException:
    """The error a DataLoader worker raised, without the traceback text torch folds into the message.

    torch re-raises a worker's exception in the main process with the same type but a message of the form
    ``"Caught ValueError in DataLoader worker process 0.\\nOriginal Traceback ...\\nValueError: <message>"``; the
    user should see ``<message>`` alone, like an error raised without workers.
    """
    text = str(err)
    if not text.startswith("Caught ") or "Original Traceback" not in text:
        return err
    last = [line for line in text.strip().splitlines() if line.strip()][-1]
    message = last.split(": ", 1)[1] if ": " in last and last.split(": ", 1)[0].isidentifier() else last
    try:
        return type(err)(message)
    except TypeError:  # an exception type that needs other constructor arguments
        return RuntimeError(message)


def iterate(loader: Iterable[T]) -> Iterator[T]:
    """Iterates a DataLoader, re-raising worker errors as :func:`worker_error` shows them."""
    iterator = iter(loader)
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            return
        except Exception as err:
            unwrapped = worker_error(err)
            if unwrapped is err:
                raise
            raise unwrapped from None
        yield item
