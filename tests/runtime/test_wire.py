"""The driver <-> resident task messages: exact round trips, refusals, the challenge (no Spark)."""

from __future__ import annotations

import json
import socket
import struct
import threading

import numpy as np
import pytest

from spark_gmm.kernels import GaussianParameters, SufficientStatistics, block_statistics
from spark_gmm.kernels.covariance import COVARIANCE_TYPES
from spark_gmm.runtime.wire import (
    ChannelError,
    answer_challenge,
    challenge,
    encode,
    new_secret,
    receive_message,
    send_message,
)
from tests.helpers import make_mixture


def _round_trip(payload: bytes) -> object:
    left, right = socket.socketpair()
    with left, right:
        sender = threading.Thread(target=left.sendall, args=(payload,))
        sender.start()
        message = receive_message(right)
        sender.join()
    return message


def _mixture(covariance_type: str) -> GaussianParameters:
    rng = np.random.default_rng(3)
    covariances = {"full": np.stack([np.eye(3) * 2.0, np.eye(3) + 0.3]),
                   "tied": np.eye(3) + 0.2, "diag": rng.uniform(0.5, 2.0, size=(2, 3)),
                   "spherical": np.array([0.7, 1.9])}[covariance_type]
    return GaussianParameters.from_covariances([0.3, 0.7], rng.normal(size=(2, 3)),
                                               covariances, covariance_type)


def _assert_same(a: object, b: object) -> None:
    assert type(a) is type(b)
    for name, value in vars(a).items():
        other = getattr(b, name)
        if isinstance(value, np.ndarray):
            assert other.dtype == value.dtype and other.shape == value.shape, name
            # bit for bit, NaN included
            assert other.tobytes() == value.tobytes(), name
        elif isinstance(value, float) and np.isnan(value):
            assert np.isnan(other), name
        else:
            assert other == value, name


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_mixtures_and_statistics_cross_bit_for_bit(covariance_type: str) -> None:
    mixture = _mixture(covariance_type)
    x, *_ = make_mixture(n=500, seed=5, k=2)
    counted, uncounted = (block_statistics(x, None, [mixture], x.mean(axis=0), False, count)[0]
                          for count in (True, False))
    assert counted.assigned is not None and uncounted.assigned is None
    message = _round_trip(encode("request", {"round": 7, "hard_assignment": False},
                                 [mixture, counted, uncounted]))
    assert message.kind == "request"
    assert message.meta == {"round": 7, "hard_assignment": False}
    for sent, received in zip([mixture, counted, uncounted], message.values, strict=True):
        _assert_same(sent, received)


def test_non_finite_scalars_and_an_empty_message_cross() -> None:
    stats = SufficientStatistics.zeros(_mixture("diag"))
    odd = SufficientStatistics(stats.shift, stats.resp_sum, stats.first, stats.second,
                               log_likelihood=float("-inf"), weight_sum=float("nan"),
                               row_count=0, assigned=None)
    _assert_same(_round_trip(encode("result", {}, [odd])).values[0], odd)
    empty = _round_trip(encode("stop"))
    assert (empty.kind, empty.meta, empty.values) == ("stop", {}, [])


def test_values_that_cannot_travel_are_refused_when_encoding() -> None:
    mixture = _mixture("spherical")
    as_float32 = GaussianParameters(mixture.covariance_type, mixture.weights.astype(np.float32),
                                    mixture.means, mixture.covariances,
                                    mixture.precisions_cholesky)
    with pytest.raises(TypeError, match="weights has dtype float32"):
        encode("request", {}, [as_float32])
    with pytest.raises(TypeError, match="covariance_type of type list"):
        encode("request", {}, [GaussianParameters(["full"], *list(vars(mixture).values())[1:])])


def _forged(header: dict, payload: bytes = b"", magic: bytes = b"GMM1") -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("!4sI", magic, len(raw)) + raw + payload


def _valid_header() -> tuple[dict, bytes]:
    data = encode("result", {}, [_mixture("spherical")])
    length = struct.unpack("!I", data[4:8])[0]
    return json.loads(data[8:8 + length]), data[8 + length:]


@pytest.mark.parametrize("forge, complaint", [
    (lambda h: {**h, "values": [{**h["values"][0], "type": "Popen"}]}, "unexpected value type"),
    (lambda h: {**h, "values": [{**h["values"][0], "fields": {}}]}, "needs fields"),
    (lambda h: {**h, "values": [{"type": "GaussianParameters", "fields": {
        **h["values"][0]["fields"], "weights": {"dtype": "|O", "shape": [2], "offset": 0}}}]},
     "malformed array field"),
    (lambda h: {**h, "values": [{"type": "GaussianParameters", "fields": {
        **h["values"][0]["fields"], "means": {"dtype": "<f8", "shape": [200, 3],
                                              "offset": 0}}}]}, "runs past the payload"),
    (lambda h: {**h, "values": [{"type": "GaussianParameters", "fields": {
        **h["values"][0]["fields"], "covariance_type": {"scalar": {"__reduce__": 1}}}}]},
     "not a number, a string or null"),
    (lambda h: {k: v for k, v in h.items() if k != "meta"}, "malformed message"),
])
def test_forged_messages_are_refused(forge, complaint: str) -> None:
    header, payload = _valid_header()
    with pytest.raises(ChannelError, match=complaint):
        _round_trip(_forged(forge(header), payload))


def test_other_protocols_and_cut_messages_are_refused() -> None:
    header, payload = _valid_header()
    with pytest.raises(ChannelError, match="not a spark-gmm message"):
        _round_trip(_forged(header, payload, magic=b"HTTP"))
    whole = _forged(header, payload)
    left, right = socket.socketpair()
    with left, right:
        left.sendall(whole[:-5])
        left.close()
        with pytest.raises(ChannelError, match="closed the connection"):
            receive_message(right)


def _challenged(driver_secret: bytes, task_secret: bytes) -> BaseException | None:
    left, right = socket.socketpair()
    outcome: list[BaseException | None] = [None]

    def driver() -> None:
        try:
            challenge(left, driver_secret)
            send_message(left, "stop")
        except BaseException as error:
            outcome[0] = error
        finally:
            left.close()

    thread = threading.Thread(target=driver)
    thread.start()
    with right:
        answer_challenge(right, task_secret)
        if outcome[0] is None:
            try:
                receive_message(right)
            except ChannelError:
                pass
    thread.join()
    return outcome[0]


def test_the_challenge_admits_only_the_holder_of_the_secret() -> None:
    secret = new_secret()
    assert _challenged(secret, secret) is None
    refused = _challenged(secret, new_secret())
    assert isinstance(refused, ChannelError) and "secret" in str(refused)


def test_row_samples_cross_bit_for_bit_and_keep_their_order() -> None:
    from spark_gmm.kernels.kmeans import ClusterSums
    from spark_gmm.kernels.sampling import Candidates, KeyedRows

    x, *_ = make_mixture(n=400, seed=6, k=2)
    sample = KeyedRows.of(x, seed=9, size=25, distinct=True)
    empty = KeyedRows.of(x[:0], seed=9, size=25, distinct=False)
    candidates = Candidates.of(x - x.mean(axis=0), x, None, x[:2], seed=4, oversampling=6.0)
    sums = ClusterSums.of(x, None, x[:3])
    assert len(sample.rows) == 25 and len(candidates.rows) > 0 and empty.rows.shape == (0, 3)
    sent_values = [sample, empty, candidates, sums]
    message = _round_trip(encode("result", {"round": 2}, sent_values))
    for sent, received in zip(sent_values, message.values, strict=True):
        _assert_same(sent, received)
    # the keys' uint64 order survives their int64 journey: merging picks the same rows
    merged = message.values[0].merge(KeyedRows.of(x[:50], 9, 25, True))
    np.testing.assert_array_equal(merged.rows, sample.merge(KeyedRows.of(x[:50], 9, 25,
                                                                         True)).rows)


def test_a_forged_payload_length_is_refused_before_anything_is_allocated() -> None:
    import tracemalloc

    header, _ = _valid_header()
    left, right = socket.socketpair()
    with left, right:
        left.sendall(_forged({**header, "payload": 1 << 40}))  # a terabyte, announced
        tracemalloc.start()
        try:
            with pytest.raises(ChannelError, match="announces 1099511627776 payload bytes"):
                receive_message(right)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 1 << 20


def _requests() -> list:
    from spark_gmm.runtime.requests import (
        CandidatesRequest,
        ClusterSumsRequest,
        SampleRequest,
        StatisticsRequest,
        centre_arrays,
    )

    centres = centre_arrays([np.eye(3)[:2], np.ones((1, 3))])
    return [StatisticsRequest((_mixture("full"), _mixture("diag")), True, True),
            # a noise component's weight and log volume travel with its mixture
            StatisticsRequest((_mixture("tied").with_noise(0.15, 2.5),), False, True),
            SampleRequest((4, 9), 17, True),
            CandidatesRequest(centres, (3, 5), (4.0, 2.0)),
            ClusterSumsRequest(centres)]


def test_every_pass_request_crosses_and_folds_as_sent() -> None:
    from spark_gmm.runtime.requests import REQUEST_TYPES, fold_blocks

    x, *_ = make_mixture(n=400, seed=8, k=2)
    blocks = [(x[:150], None), (x[150:], np.linspace(0.5, 2.0, 250))]
    sent = _requests()
    assert {type(r) for r in sent} == set(REQUEST_TYPES)  # a new pass kind is tested here
    message = _round_trip(encode("request", {"round": 2}, sent))
    for request, received in zip(sent, message.values, strict=True):
        assert type(received) is type(request)
        for name in vars(request):
            mine, theirs = getattr(request, name), getattr(received, name)
            if name == "mixtures":
                for a, b in zip(mine, theirs, strict=True):
                    _assert_same(a, b)
            elif isinstance(mine, tuple) and mine and isinstance(mine[0], np.ndarray):
                assert [a.tobytes() for a in mine] == [b.tobytes() for b in theirs], name
            else:
                assert theirs == mine and type(theirs) is type(mine), name
        center = x.mean(axis=0)
        for a, b in zip(fold_blocks(request, center, blocks),
                        fold_blocks(received, center, blocks), strict=True):
            _assert_same(a, b)


def test_forged_nesting_is_refused() -> None:
    from spark_gmm.runtime.requests import SampleRequest

    data = encode("request", {}, [SampleRequest((1, 2), 3, False)])
    length = struct.unpack("!I", data[4:8])[0]
    header = json.loads(data[8:8 + length])
    seeds = header["values"][0]["fields"]["seeds"]
    nested_tuple = {**seeds, "items": [seeds] * 2}
    with pytest.raises(ChannelError, match="nests tuples"):
        _round_trip(_forged({**header, "values": [{**header["values"][0], "fields": {
            **header["values"][0]["fields"], "seeds": nested_tuple}}]}))
    inner = {"type": "SampleRequest", "fields": header["values"][0]["fields"]}
    deep = {"value": {"type": "SampleRequest", "fields": {
        **header["values"][0]["fields"], "seeds": {"items": [{"value": inner}]}}}}
    with pytest.raises(ChannelError, match="nests values too deeply"):
        _round_trip(_forged({**header, "values": [{"type": "SampleRequest", "fields": {
            **header["values"][0]["fields"], "seeds": {"items": [deep]}}}]}))
    with pytest.raises(TypeError, match="of type list cannot travel"):
        encode("request", {}, [SampleRequest([1, 2], 3, False)])
