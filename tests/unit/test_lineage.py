"""Tables that know their inputs (attrprune.lineage): code versions found in what a table reads,
and the warning when one stage and method's outputs come from two versions of its code."""

from attrprune.lineage import code_records, code_section, code_versions, with_code_section


def metrics(compress_fp: str, scores_fp: str, method: str = "lrp", commit: str = "abc") -> dict:
    """A metrics record as compress writes it: its own code, and its scores' embedded."""
    return {
        "method": method,
        "scores": {"code": {"stage": "scores", "method": method, "fingerprint": scores_fp}, "git_commit": commit},
        "code": {"stage": "compress", "method": method, "fingerprint": compress_fp},
        "git_commit": commit + "-dirty",
    }


def test_records_are_found_where_they_are_embedded():
    found = code_records({"provenance": metrics("c1", "s1")})
    assert {(r["stage"], r["fingerprint"], r["git_commit"]) for r in found} == {
        ("compress", "c1", "abc-dirty"),
        ("scores", "s1", "abc"),
    }


def test_one_version_per_stage_and_method_gives_no_warning():
    records = [metrics("c1", "s1"), metrics("c1", "s1"), metrics("c2", "s2", method="random")]
    rows, unrecorded = code_versions(records)
    assert unrecorded == 0
    assert {(r["stage"], r["method"], r["fingerprint"], r["inputs"]) for r in rows} == {
        ("compress", "lrp", "c1", 2),
        ("scores", "lrp", "s1", 2),
        ("compress", "random", "c2", 1),
        ("scores", "random", "s2", 1),
    }


def test_two_versions_of_one_stage_warn_in_the_markdown_and_the_log(capsys):
    records = [metrics("c1", "s1"), metrics("c1", "s2"), {"method": "old"}]
    warnings, section = code_section(records)
    assert len(warnings) == 1 and "the scores outputs of lrp this table read come from 2 versions" in warnings[0]
    assert "s1 (1 input, commit abc)" in warnings[0] and "s2 (1 input, commit abc)" in warnings[0]
    assert "| compress | lrp | c1 | abc-dirty | 2 |" in section
    assert "1 inputs record no code fingerprint" in section
    markdown = with_code_section("# Title\n\nbody\n", records)
    title, warning, rest = markdown.split("\n\n", 2)
    assert title == "# Title" and warning.startswith("> **Warning: the scores outputs of lrp")
    assert rest.startswith("body\n") and rest.rstrip().endswith(
        "record no code fingerprint (written before outputs recorded one)."
    )
    assert "Warning: the scores outputs of lrp" in capsys.readouterr().err
