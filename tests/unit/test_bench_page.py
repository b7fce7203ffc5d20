"""The consumer page benchmarks are registered against verify_rps of the same run, with the
bars of issue 23 (item 4). Declarations only: the benchmarks run in `make bench`."""

from __future__ import annotations

from sealmark_app.bench import registry
from sealmark_app.bench.registry import Bar


def test_page_benches_hold_the_issue_bars() -> None:
    benches = registry.registered()
    for name in ("page_json_rps", "page_html_rps"):
        assert benches[name].baseline == "verify_rps"
        assert benches[name].bar == Bar(0.8, of="ratio")
    assert benches["page_p99_ms_half_load"].bar == Bar(20, at_least=False)
    assert benches["page_close_rps"].baseline == "verify_rps"
    assert benches["page_close_rps"].bar is None
