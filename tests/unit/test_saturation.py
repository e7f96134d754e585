"""The harness saturation guard's judgement, on synthetic CPU samples."""

from ptor_harness.drill import cpu_sampler
from ptor_harness.outputs import report
from ptor_harness.verify import saturation

from .test_report import outcome


def samples(busy_and_cores):
    return [(float(t), cores, busy) for t, (busy, cores) in enumerate(busy_and_cores)]


def test_a_latency_bound_load_is_not_harness_limited():
    verdict = saturation.judge(samples([(40.0, 0.4)] * 10), cores=2)
    assert verdict["harness_limited"] is False and verdict["saturated_seconds"] == 0
    assert verdict["harness_cores_median"] == 0.4 and verdict["machine_busy_median"] == 40.0


def test_a_saturated_machine_mostly_busy_with_ptor_is_harness_limited():
    verdict = saturation.judge(samples([(99.0, 1.3)] * 6 + [(60.0, 0.8)] * 4), cores=2)
    assert verdict["saturated_seconds"] == 6 and verdict["harness_limited"] is True


def test_a_saturated_machine_busy_with_the_cluster_is_not():
    verdict = saturation.judge(samples([(99.0, 0.3)] * 10), cores=2)
    assert verdict["harness_limited"] is False


def test_only_the_load_phase_counts():
    found = samples([(99.0, 1.8)] * 3 + [(30.0, 0.2)] * 7)
    assert saturation.judge(found, 2, load_from=3.0)["samples"] == 7
    assert saturation.judge(found, 2, load_from=3.0)["harness_limited"] is False
    assert saturation.judge([], 2)["harness_cores_max"] is None


def test_the_report_warns_when_the_harness_set_the_pace():
    o = outcome()
    o.phases = {"warmup": 0.0, "load": 0.0, "drain": 10.0}
    o.harness.cpu_samples, o.harness.cpu_cores = samples([(99.0, 1.5)] * 10), 2
    r = report.build(o)
    assert r["harness"]["harness_limited"] is True
    assert any(w.startswith("the harness, not only the cluster, set the pace")
               for w in r["warnings"])


def test_a_full_queue_to_the_recorder_is_reported():
    o = outcome()
    o.harness.queue_peak, o.harness.queue_capacity = 120, 20000
    r = report.build(o)
    assert r["harness"]["queue_peak_messages"] == 120
    assert not any("recorder fell behind" in w for w in r["warnings"])
    o.harness.queue_peak = 20000
    r = report.build(o)
    assert any(w.startswith("the recorder fell behind: the queue to it was full")
               for w in r["warnings"])


def test_the_sampler_keeps_the_deepest_queue_it_saw():
    sampler = cpu_sampler.CpuSampler([])
    for now, depth in ((0.0, 3), (0.05, 40), (0.1, 7)):
        sampler.sample(now, depth)
    assert sampler.queue_peak == 40
