"""A served job's usage: its log line parses back, and a Snakemake benchmark file gets the child's
memory and CPU time added to the client's (the columns the kernel keeps no child peak of: NA)."""

import resource

from attrprune.jobusage import FIELDS, amend_benchmark, from_rusage, parse_log, usage_line

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time"


def bench(tmp_path, row):
    path = tmp_path / "job.tsv"
    path.write_text(f"{HEADER}\n{row}\n")
    return path


def table(path):
    header, *rows = path.read_text().splitlines()
    return [dict(zip(header.split("\t"), r.split("\t"))) for r in rows]


def test_the_log_line_round_trips_and_commands_add_up():
    first = {"max_rss": 1.0, "cpu_time": 2.0, "io_in": 0.0, "io_out": 0.5}
    last = {"max_rss": 812.31, "cpu_time": 14.2, "io_in": 0.0, "io_out": 3.1}
    assert parse_log(f"2026-01-01 00:00:00Z INFO +0.1s x: {usage_line(last)}\n") == last
    text = f"2026-01-01 00:00:00Z INFO +0.1s x: {usage_line(first)}\nother\n... {usage_line(last)}\n"
    both = parse_log(text)  # one command after the other: the larger peak, the sums of the rest
    assert both["max_rss"] == 812.31 and both["cpu_time"] == 16.2 and both["io_out"] == 3.6
    assert parse_log("2026-01-01 00:00:00Z INFO +0.1s refset: done in 1.0 s; peak memory 600 MB\n") is None


def test_rusage_in_snakemake_units():
    usage = from_rusage(resource.getrusage(resource.RUSAGE_SELF))
    assert set(usage) == set(FIELDS)
    assert 10 < usage["max_rss"] < 100_000  # MiB: this test process, not KiB or bytes


def test_a_served_job_adds_the_child_to_the_client(tmp_path):
    path = bench(tmp_path, "20.0\t0:00:20\t15.51\t300.00\t10.00\t12.00\t0.00\t0.10\t0.50\t0.02")
    usage = {"max_rss": 812.3, "cpu_time": 18.0, "io_in": 1.0, "io_out": 3.0}
    assert amend_benchmark(path, usage)
    (row,) = table(path)
    assert row["max_rss"] == "827.81" and row["cpu_time"] == "18.02"
    assert row["io_in"] == "1.00" and row["io_out"] == "3.10"
    assert row["mean_load"] == "90.10"  # CPU percent over 20 s
    assert row["max_vms"] == row["max_uss"] == row["max_pss"] == "NA" and row["s"] == "20.0"


def test_a_job_snakemake_could_not_sample_gets_the_child_alone(tmp_path):
    path = bench(tmp_path, "0.3\t0:00:00\tNA\tNA\tNA\tNA\tNA\tNA\tNA\tNA")
    assert amend_benchmark(path, {"max_rss": 600.0, "cpu_time": 0.2, "io_in": 0.0, "io_out": 0.0})
    assert table(path)[0]["max_rss"] == "600.00"


def test_repeats_and_other_formats_are_left_alone(tmp_path):
    usage = {"max_rss": 1.0, "cpu_time": 1.0, "io_in": 0.0, "io_out": 0.0}
    row = "1.0\t0:00:01\t15\t1\t1\t1\t0\t0\t1\t0.1"
    path = tmp_path / "job.tsv"
    path.write_text(f"{HEADER}\n{row}\n{row}\n")
    before = path.read_text()
    assert not amend_benchmark(path, usage) and path.read_text() == before
    jsonl = tmp_path / "job.jsonl"
    jsonl.write_text('{"s": 1.0}\n')
    assert not amend_benchmark(jsonl, usage)
