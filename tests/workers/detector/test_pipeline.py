"""Pure parts of the pipelined worker: the bounded, ordered calls in flight, and the retry
rules taking a background call's error as their first attempt."""

from __future__ import annotations

from concurrent.futures import Future

import grpc
import numpy as np
import numpy.typing as npt
import pytest

from runtime.backoff import BackoffPolicy
from workers.detector.calls import ClassifierBusyError, ClassifierCalls, ClassifyError
from workers.detector.classifier import ClassifierError, FakeClassifier
from workers.detector.pipeline import InFlight

CROPS = np.full((3, 8, 8, 3), 51, np.uint8)


def finished(value: str) -> Future[str]:
    future: Future[str] = Future()
    future.set_result(value)
    return future


def test_in_flight_is_bounded() -> None:
    flights: InFlight[str, str] = InFlight(2)
    flights.add("a", Future())
    assert not flights.full()
    flights.add("b", Future())
    assert flights.full()
    with pytest.raises(RuntimeError):
        flights.add("c", Future())


def test_zero_limit_means_every_call_is_waited_for() -> None:
    flights: InFlight[str, str] = InFlight(0)
    assert flights.full()
    with pytest.raises(RuntimeError):
        flights.add("a", finished("x"))
    with pytest.raises(ValueError):
        InFlight(-1)


def test_done_calls_land_oldest_first_and_never_past_a_running_one() -> None:
    flights: InFlight[str, str] = InFlight(3)
    running: Future[str] = Future()
    flights.add("a", finished("1"))
    flights.add("b", running)
    flights.add("c", finished("3"))
    assert [f.batch for f in flights.pop_done()] == ["a"]
    assert flights.pop_done() == []  # "c" is done but "b", older, is not
    running.set_result("2")
    assert [f.batch for f in flights.pop_done()] == ["b", "c"]
    assert len(flights) == 0


def test_oldest_and_all_come_out_in_call_order() -> None:
    flights: InFlight[str, str] = InFlight(3)
    for name in "abc":
        flights.add(name, Future())
    oldest = flights.pop_oldest()
    assert oldest is not None and oldest.batch == "a"
    assert [f.batch for f in flights.pop_all()] == ["b", "c"]
    assert flights.pop_oldest() is None


class CountingClassifier(FakeClassifier):
    """Counts calls; fails the first `failures` of them with `error`."""

    def __init__(self, error: Exception, failures: int) -> None:
        super().__init__()
        self.error, self.failures, self.calls = error, failures, 0

    def classify(self, crops_rgb_uint8: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return super().classify(crops_rgb_uint8)


def calls_for(
    classifier: FakeClassifier, max_attempts: int = 3
) -> tuple[ClassifierCalls, list[bool]]:
    readiness: list[bool] = []
    calls = ClassifierCalls(
        classifier,
        BackoffPolicy(initial_s=0.001, max_s=0.001),
        BackoffPolicy(initial_s=0.001, max_s=0.001, max_attempts=max_attempts),
        wait=lambda _s: True,
        set_ready=lambda ready, _why: readiness.append(ready),
        on_answer=lambda: None,
    )
    return calls, readiness


BUSY = ClassifierError(grpc.StatusCode.DEADLINE_EXCEEDED, "slow")
DOWN = ClassifierError(grpc.StatusCode.UNAVAILABLE, "down")


def test_attempt_is_one_raw_call_and_answered_books_it() -> None:
    classifier = CountingClassifier(BUSY, failures=0)
    calls, readiness = calls_for(classifier)
    probabilities, ms = calls.attempt(CROPS)
    assert classifier.calls == 1 and readiness == []  # nothing booked off the loop's thread
    assert probabilities.shape == (3, 2) and ms >= 0
    np.testing.assert_allclose(probabilities[:, 0], 51 / 255, rtol=1e-5)
    assert calls.answered(CROPS, probabilities, ms)[1] == ms
    assert readiness == [True]


def test_a_background_failure_counts_as_the_first_of_the_bounded_attempts() -> None:
    classifier = CountingClassifier(BUSY, failures=10)
    calls, _ = calls_for(classifier, max_attempts=3)
    with pytest.raises(ClassifierBusyError):
        calls.classify(CROPS, failed=BUSY)
    assert classifier.calls == 2  # 3 attempts in all: the background one and 2 here


def test_after_a_background_outage_the_call_is_retried_until_answered() -> None:
    classifier = CountingClassifier(DOWN, failures=2)
    calls, readiness = calls_for(classifier)
    answer = calls.classify(CROPS, failed=DOWN)
    assert answer is not None and answer[0].shape == (3, 2)
    assert classifier.calls == 3 and readiness[0] is False and readiness[-1] is True


def test_a_background_error_is_not_retried_here() -> None:
    classifier = CountingClassifier(BUSY, failures=0)
    calls, _ = calls_for(classifier)
    with pytest.raises(ClassifyError):
        calls.classify(CROPS, failed=ClassifierError(grpc.StatusCode.INVALID_ARGUMENT, "bad"))
    assert classifier.calls == 0
