"""The PromQL engine against Prometheus's own worked examples (promql/promqltest/testdata,
ported: the same series, the same evaluation times, the same expected values) and
against numpy on the raw samples, over a real Repository."""

from __future__ import annotations

import math

import numpy as np
import pytest

from snapcloud.errors import QueryExecutionError, TooManySamples, UnsupportedQuery, ValidationError
from snapcloud.promql import STALE_NAN_BITS, Evaluator, Limits, StoreSource
from tests.promql.fleet import MIN, load, store_series

S = 10**9


def instant(repo, query: str, at_s: float, **limits) -> dict[str, float]:
    value = Evaluator(StoreSource(repo), Limits(**limits)).instant(query, int(at_s * S))
    return {
        dict(s.labels).get("path", dict(s.labels).get("host", "")): float(s.values[0])
        for s in value.series
    }


# ---------------------------------------------------------------- Prometheus's examples


@pytest.fixture(scope="module")
def increase_fleet():
    # functions.test, "Tests for increase()"
    return load(
        300,
        {
            "foo": ("http_requests_total", {"path": "/foo"}, "0+10x10"),
            "bar": ("http_requests_total", {"path": "/bar"}, "0+18x5 0+18x5"),
            "dings": ("http_requests_total", {"path": "/dings"}, "10+10x10"),
            "bumms": ("http_requests_total", {"path": "/bumms"}, "1+10x10"),
        },
    )


def test_increase_prometheus_examples(increase_fleet):
    got = instant(increase_fleet, "increase(snapcloud_http_requests_total[50m])", 3000)
    assert got == pytest.approx({"/foo": 100, "/bar": 160, "/dings": 100, "/bumms": 100})
    # Extrapolation stops at the counter's zero point ("bumms" reaches 0 at t = -30 s).
    got = instant(increase_fleet, "increase(snapcloud_http_requests_total[100m])", 3000)
    assert got == pytest.approx({"/foo": 100, "/bar": 162, "/dings": 105, "/bumms": 101})


def test_increase_counter_reset_prometheus_example():
    repo = load(300, {"foo": ("http_requests_total", {"path": "/foo"}, "0 1 2 3 2 3 4")})
    assert instant(repo, "increase(snapcloud_http_requests_total[30m])", 1800) == {"/foo": 7}


def test_rate_resets_prometheus_examples():
    repo = load(
        300,
        {
            "mid": ("testcounter_reset_middle_total", {}, "0+27x4 0+27x5"),
            "end": ("testcounter_reset_end_total", {}, "0+10x9 0 10"),
        },
    )
    assert instant(repo, "rate(snapcloud_testcounter_reset_middle_total[50m])", 3000) == {
        "mid": pytest.approx(0.08)
    }
    assert instant(repo, "rate(snapcloud_testcounter_reset_end_total[5m])", 3000) == {}
    assert instant(repo, "rate(snapcloud_testcounter_reset_end_total[6m])", 3000) == {"end": 0}


def test_rate_window_and_offset_prometheus_examples():
    repo = load(
        300,
        {
            "a": ("calculate_rate_offset_total", {"path": "a"}, "0+10x10"),
            "b": ("calculate_rate_offset_total", {"path": "b"}, "0+20x10"),
            "w": ("calculate_rate_window_total", {"path": "w"}, "0+80x10"),
        },
    )
    # promqltest compares with a relative epsilon of 1e-6; 1e-12 here
    assert instant(repo, "rate(snapcloud_calculate_rate_window_total[50m])", 3000) == {
        "w": pytest.approx(0.26666666666666666, rel=1e-12)
    }
    got = instant(repo, "rate(snapcloud_calculate_rate_offset_total[10m] offset 5m)", 3000)
    assert got == pytest.approx({"a": 0.03333333333333333, "b": 0.06666666666666667}, rel=1e-12)


def test_rate_zero_cutoff_prometheus_examples():
    repo = load(
        240,
        {
            f"s{m}": ("testcounter_zero_cutoff_total", {"path": f"{m}m"}, f"{60 * m}+240x10")
            for m in range(6)
        },
    )
    got = instant(repo, "rate(snapcloud_testcounter_zero_cutoff_total[20m])", 600)
    assert got == pytest.approx({"0m": 0.5, "1m": 0.55, "2m": 0.6, "3m": 0.6, "4m": 0.6, "5m": 0.6})
    got = instant(repo, "rate(snapcloud_testcounter_zero_cutoff_total[20m])", 3000)
    assert got == pytest.approx({f"{m}m": 0.6 for m in range(6)})


def test_irate_prometheus_examples():
    repo = load(
        300,
        {
            "foo": ("http_requests_total", {"path": "/foo"}, "0+10x10"),
            "bar": ("http_requests_total", {"path": "/bar"}, "0+10x5 0+10x5"),
        },
    )
    third = 0.03333333333333333
    got = instant(repo, "irate(snapcloud_http_requests_total[50m])", 3000)
    assert got == {"/foo": pytest.approx(third), "/bar": pytest.approx(third)}
    assert instant(repo, "irate(snapcloud_http_requests_total[50m])", 1800) == {
        "/foo": pytest.approx(third),
        "/bar": 0,
    }


def test_delta_and_deriv_prometheus_examples():
    repo = load(
        300,
        {
            "foo": ("http_requests", {"path": "/foo"}, "0 50 100 150 200"),
            "bar": ("http_requests", {"path": "/bar"}, "200 150 100 50 0"),
            "c": ("http_requests_total", {"path": "c"}, "0+80x10"),
            "mid": ("testcounter_reset_middle_total", {"path": "mid"}, "0+10x4 0+10x5"),
        },
    )
    assert instant(repo, "delta(snapcloud_http_requests[20m])", 1200) == {"/foo": 200, "/bar": -200}
    assert instant(repo, "deriv(snapcloud_http_requests_total[50m])", 3000) == {
        "c": pytest.approx(0.26666666666666666)
    }
    assert instant(repo, "deriv(snapcloud_testcounter_reset_middle_total[100m])", 3000) == {
        "mid": pytest.approx(0.010606060606060607)
    }


def test_at_modifier_prometheus_example():
    # at_modifier.test: the value at 10s, whatever the evaluation time
    repo = load(10, {"a": ("metric", {"path": "1"}, "0+1x1000")})
    for t in (0, 100, 1000):
        assert instant(repo, "snapcloud_metric @ 10", t) == {"1": 1}
        assert instant(repo, "snapcloud_metric offset 50s @ 100", t) == {"1": 5}
    assert instant(repo, "sum_over_time(snapcloud_metric[100s] @ 100)", 3) == {
        "1": 55
    }  # samples 1..10 in (0 s, 100 s]


# ---------------------------------------------------------------- numpy on raw samples


@pytest.fixture(scope="module")
def random_fleet():
    rng = np.random.default_rng(18)
    rows = []
    raw = {}
    for h in range(4):
        times = np.cumsum(rng.integers(5, 25, size=400)) * S  # irregular, 5-25 s apart
        values = rng.normal(100, 20, size=400)
        values[rng.integers(0, 400, size=6)] = np.nan
        counter = np.cumsum(rng.integers(0, 50, size=400)).astype(np.float64)
        counter[250:] -= counter[250] - 3  # a reset
        host = f"h{h}"
        rows.append((host, "gpu.0.temp_c", {"rack": f"r{h % 2}"}, values, times))
        rows.append((host, "net.rx_bytes_total", {"rack": f"r{h % 2}"}, counter, times))
        raw[host] = (times, values, counter)
    return store_series(rows), raw


def _window(ts, vs, t, r):
    keep = (ts > t - r) & (ts <= t)
    return vs[keep], ts[keep]


NUMPY = {
    "avg_over_time": np.mean,
    "min_over_time": lambda v: np.nan if np.isnan(v).all() else np.nanmin(v),
    "max_over_time": lambda v: np.nan if np.isnan(v).all() else np.nanmax(v),
    "sum_over_time": np.sum,
    "count_over_time": lambda v: float(v.size),
    "last_over_time": lambda v: v[-1],
    "stddev_over_time": np.std,
}


@pytest.mark.parametrize("fn", sorted(NUMPY))
def test_over_time_functions_match_numpy(random_fleet, fn):
    repo, raw = random_fleet
    start, end, step, rng_s = 600 * S, 3000 * S, 60 * S, 300 * S
    value = Evaluator(StoreSource(repo)).range(f"{fn}(snapcloud_gpu_temp_c[5m])", start, end, step)
    assert len(value.series) == 4
    for s in value.series:
        ts, vs, _ = raw[dict(s.labels)["host"]]
        for i, t in enumerate(value.times_ns.tolist()):
            w, _ = _window(ts, vs, t, rng_s)
            assert s.present[i] == (w.size > 0)
            if w.size:
                np.testing.assert_allclose(s.values[i], NUMPY[fn](w), rtol=1e-12, equal_nan=True)
        assert ("__name__" in dict(s.labels)) == (fn == "last_over_time")


def test_quantile_over_time_matches_numpy(random_fleet):
    repo, raw = random_fleet
    value = Evaluator(StoreSource(repo)).range(
        "quantile_over_time(0.9, snapcloud_gpu_temp_c[10m])", 900 * S, 3000 * S, 300 * S
    )
    for s in value.series:
        ts, vs, _ = raw[dict(s.labels)["host"]]
        for i, t in enumerate(value.times_ns.tolist()):
            w, _ = _window(ts, vs, t, 600 * S)
            # Prometheus sorts NaN first; without NaN in the window it is numpy's linear
            if w.size and not np.isnan(w).any():
                assert s.values[i] == pytest.approx(np.quantile(w, 0.9, method="linear"))


def _rate_reference(ts, vs, t, r, counter=True, as_rate=True):
    """Prometheus's extrapolatedRate, written out per window in plain Python."""
    w, wt = _window(ts, vs, t, r)
    if w.size < 2:
        return None
    result = w[-1] - w[0]
    if counter:
        result += sum(w[i - 1] for i in range(1, w.size) if w[i] < w[i - 1])
    to_start, to_end = (wt[0] - (t - r)) / 1e9, (t - wt[-1]) / 1e9
    sampled = (wt[-1] - wt[0]) / 1e9
    avg = sampled / (w.size - 1)
    if to_start >= avg * 1.1:
        to_start = avg / 2
    if counter and result > 0 and w[0] >= 0:
        to_start = min(to_start, sampled * (w[0] / result))
    if to_end >= avg * 1.1:
        to_end = avg / 2
    factor = (sampled + to_start + to_end) / sampled
    return result * factor / (r / 1e9 if as_rate else 1)


@pytest.mark.parametrize("fn", ["rate", "increase", "delta", "irate", "deriv"])
def test_rate_functions_match_reference(random_fleet, fn):
    repo, raw = random_fleet
    metric = "snapcloud_gpu_temp_c" if fn in ("delta", "deriv") else "snapcloud_net_rx_bytes_total"
    value = Evaluator(StoreSource(repo)).range(f"{fn}({metric}[3m])", 600 * S, 4000 * S, 30 * S)
    assert value.series
    for s in value.series:
        ts, temp, counter = raw[dict(s.labels)["host"]]
        vs = temp if fn in ("delta", "deriv") else counter
        for i, t in enumerate(value.times_ns.tolist()):
            w, wt = _window(ts, vs, t, 180 * S)
            if fn == "irate":
                want = None
                if w.size >= 2:
                    d = w[-1] if w[-1] < w[-2] else w[-1] - w[-2]
                    want = d / ((wt[-1] - wt[-2]) / 1e9)
            elif fn == "deriv":
                want = np.polyfit((wt - wt[0]) / 1e9, w, 1)[0] if w.size >= 2 else None
            else:
                want = _rate_reference(ts, vs, t, 180 * S, fn != "delta", fn == "rate")
            assert s.present[i] == (want is not None)
            if want is not None and not math.isnan(want):
                assert s.values[i] == pytest.approx(want, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("op", ["sum", "avg", "min", "max", "count", "quantile"])
def test_aggregations_match_numpy(random_fleet, op):
    repo, raw = random_fleet
    param = "0.25, " if op == "quantile" else ""
    ev = Evaluator(StoreSource(repo))
    t = 2000 * S
    got = ev.instant(f"{op} by (rack) ({param}snapcloud_net_rx_bytes_total)", t)
    assert sorted(dict(s.labels)["rack"] for s in got.series) == ["r0", "r1"]
    for s in got.series:
        rack = dict(s.labels)["rack"]
        vals = []
        for host, (ts, _, counter) in raw.items():
            if int(host[1]) % 2 == int(rack[1]):
                i = np.searchsorted(ts, t, side="right") - 1
                if ts[i] > t - 300 * S:
                    vals.append(counter[i])
        ref = {
            "sum": np.sum,
            "avg": np.mean,
            "min": np.min,
            "max": np.max,
            "count": len,
            "quantile": lambda v: np.quantile(v, 0.25),
        }[op](np.array(vals))
        assert s.values[0] == pytest.approx(ref)
    without = ev.instant(f"{op} without (host, rack) ({param}snapcloud_net_rx_bytes_total)", t)
    assert [dict(s.labels) for s in without.series] == [
        {k: v for k, v in dict(got.series[0].labels).items() if k == "__name__"}
    ] or len(without.series) == 1


def test_topk_bottomk(random_fleet):
    repo, raw = random_fleet
    ev = Evaluator(StoreSource(repo))
    t = 2000 * S
    top = ev.instant("topk(2, snapcloud_net_rx_bytes_total)", t)
    bottom = ev.instant("bottomk(1, snapcloud_net_rx_bytes_total)", t)
    latest = {h: c[np.searchsorted(ts, t, side="right") - 1] for h, (ts, _, c) in raw.items()}
    ranked = sorted(latest, key=latest.get)
    assert [dict(s.labels)["host"] for s in top.series] == ranked[::-1][:2]
    assert [dict(s.labels)["host"] for s in bottom.series] == ranked[:1]
    assert dict(top.series[0].labels)["__name__"] == "snapcloud_net_rx_bytes_total"


def test_binary_arithmetic_and_matching(random_fleet):
    repo, _raw = random_fleet
    ev = Evaluator(StoreSource(repo))
    t = 2000 * S
    plain = {
        dict(s.labels)["host"]: s.values[0]
        for s in ev.instant("snapcloud_net_rx_bytes_total", t).series
    }
    doubled = ev.instant("snapcloud_net_rx_bytes_total * 2 - 1", t)
    assert {dict(s.labels)["host"]: s.values[0] for s in doubled.series} == {
        h: v * 2 - 1 for h, v in plain.items()
    }
    assert "__name__" not in dict(doubled.series[0].labels)
    ratio = ev.instant("snapcloud_net_rx_bytes_total / on(host) snapcloud_net_rx_bytes_total", t)
    assert {float(s.values[0]) for s in ratio.series} == {1.0}
    assert next(dict(s.labels) for s in ratio.series) == {"host": "h0"}
    share = ev.instant(
        "snapcloud_net_rx_bytes_total / ignoring(host) group_left "
        "sum by (rack) (snapcloud_net_rx_bytes_total)",
        t,
    )
    assert len(share.series) == 4
    by_rack = {}
    for h, v in plain.items():
        by_rack.setdefault(int(h[1]) % 2, 0.0)
        by_rack[int(h[1]) % 2] += v
    for s in share.series:
        h = dict(s.labels)["host"]
        assert s.values[0] == pytest.approx(plain[h] / by_rack[int(h[1]) % 2])
    with pytest.raises(QueryExecutionError, match="many-to-one matching must be explicit"):
        ev.instant(
            "snapcloud_net_rx_bytes_total / ignoring(host) "
            "sum by (rack) (snapcloud_net_rx_bytes_total)",
            t,
        )
    assert ev.instant("2 ^ 3 % 5", t).scalar.tolist() == [3.0]
    assert ev.instant("-(1 + 1)", t).scalar.tolist() == [-2.0]


def test_lookback_and_staleness():
    stale = np.array([STALE_NAN_BITS], dtype=np.uint64).view(np.float64)[0]
    times = [0, 60 * S, 120 * S, 180 * S]
    repo = store_series(
        [
            ("a", "up", {}, [1.0, 1.0, stale, 5.0], times),
            ("b", "up", {}, [1.0, float("nan"), 2.0, 2.0], [0, 60 * S, 120 * S, 120 * S + 1]),
        ]
    )
    ev = Evaluator(StoreSource(repo))
    value = ev.range("snapcloud_up", 0, 600 * S, 30 * S)
    a = next(s for s in value.series if dict(s.labels)["host"] == "a")
    b = next(s for s in value.series if dict(s.labels)["host"] == "b")
    # a: present until the stale marker at 120 s, again at 180 s for 5 minutes (left-open)
    assert a.present.tolist() == [t < 120 or 180 <= t < 480 for t in range(0, 601, 30)]
    # b: a plain NaN is a value (not stale); the last sample ends 5 minutes later
    assert b.present.tolist() == [t <= 420 for t in range(0, 601, 30)]
    assert math.isnan(b.values[2])
    assert ev.instant("count_over_time(snapcloud_up[10m])", 200 * S).series[0].values[0] == 3


def test_unsupported_constructs_are_named():
    ev = Evaluator(StoreSource(store_series([("a", "up", {}, [1.0], [0])])))
    for query, named in [
        ("histogram_quantile(0.9, snapcloud_up)", "function histogram_quantile()"),
        ("snapcloud_up and snapcloud_up", "set operator 'and'"),
        ("snapcloud_up > 1", "operator '>'"),
        ("rate(snapcloud_up[5m:1m])", "rate() of anything but a range vector selector"),
        ("max_over_time(snapcloud_up[5m:1m])", "max_over_time()"),
        ("stddev(snapcloud_up)", "aggregation stddev"),
        ('label_replace(snapcloud_up, "a", "b", "c", "d")', "function label_replace()"),
    ]:
        with pytest.raises(UnsupportedQuery, match=named.replace("(", r"\(").replace(")", r"\)")):
            ev.instant(query, 0)
    with pytest.raises(ValidationError, match="parse error"):
        ev.instant("sum(", 0)
    with pytest.raises(ValidationError, match="non-empty matcher"):
        ev.instant('{host=~".*"}', 0)


def test_regex_matchers_are_anchored_re2():
    repo = store_series(
        [
            ("gpu-a", "up", {"model": "NVIDIA H100 80GB HBM3"}, [1.0], [0]),
            ("gpu-b", "up", {"model": "A100 SXM4"}, [1.0], [0]),
        ]
    )
    ev = Evaluator(StoreSource(repo))
    hosts = lambda q: sorted(dict(s.labels)["host"] for s in ev.instant(q, S).series)  # noqa: E731
    assert hosts('snapcloud_up{model=~"H100"}') == []
    assert hosts('snapcloud_up{model=~".*H100.*"}') == ["gpu-a"]
    assert hosts('snapcloud_up{model=~"A100.SXM4|H100"}') == ["gpu-b"]  # alternation anchored
    assert hosts('snapcloud_up{model!~".*H100.*"}') == ["gpu-b"]
    assert hosts('snapcloud_up{host!="gpu-a"}') == ["gpu-b"]
    assert hosts('snapcloud_up{missing=""}') == ["gpu-a", "gpu-b"]
    with pytest.raises(ValidationError, match="regex"):
        ev.instant('snapcloud_up{model=~"(?<=a)b"}', S)  # lookbehind: not RE2


def test_sample_limit():
    times = list(range(0, 100 * S, S))
    repo = store_series([("a", "up", {}, [1.0] * 100, times)])
    with pytest.raises(TooManySamples):
        instant(repo, "count_over_time(snapcloud_up[100s])", 99, max_samples=50)
    assert instant(repo, "count_over_time(snapcloud_up[100s])", 99, max_samples=100) == {"a": 100}


def test_range_query_limits():
    ev = Evaluator(StoreSource(store_series([("a", "up", {}, [1.0], [0])])))
    with pytest.raises(ValidationError, match="11,000 points"):
        ev.range("snapcloud_up", 0, 20_000 * S, S)
    with pytest.raises(ValidationError, match="zero or negative"):
        ev.range("snapcloud_up", 0, 10 * S, 0)
    with pytest.raises(ValidationError, match="range vector"):
        ev.range("snapcloud_up[5m]", 0, 10 * S, S)
    _ = MIN
