"""docs/TOUR.md never goes stale: every python block of every stop runs, and prints what the tour shows.

The rules the tour is written to: a stop is a ``## N. title`` section; its ```python blocks run in order in
one namespace of their own (a fresh one per stop), in a temporary working directory; a block followed by a
```text block must print exactly that text, a block followed by anything else must print nothing. A block
right after a ``<!-- pending: reason -->`` line shows code that needs something not in npgan yet: its stop
is skipped with that reason.
"""

import contextlib
import io
import re
from pathlib import Path

import pytest

import npgan

TOUR = Path(__file__).resolve().parents[1] / "docs" / "TOUR.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.S | re.M)
PENDING = re.compile(r"<!-- pending: (.*?) -->\s*$")


def stops(text: str) -> list[dict]:
    """[{number, title, blocks: [(code, expected output or '', pending reason or None)]}] of the tour."""
    sections = re.split(r"^## (?=\d+\. )", text, flags=re.M)[1:]
    result = []
    for section in sections:
        title = section.splitlines()[0]
        fences = [(m.group(1), m.group(2), section[:m.start()]) for m in FENCE.finditer(section)]
        blocks = []
        for i, (language, body, before) in enumerate(fences):
            if language != "python":
                continue
            following = fences[i + 1] if i + 1 < len(fences) else None
            expected = following[1] if following is not None and following[0] == "text" else ""
            pending = PENDING.search(before.rstrip("\n").rsplit("\n", 1)[-1])
            blocks.append((body, expected, pending.group(1) if pending else None))
        result.append({"number": int(title.split(".")[0]), "title": title, "blocks": blocks})
    return result


def run_block(code: str, namespace: dict) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(TOUR), "exec"), namespace)
    return out.getvalue()


TOUR_STOPS = stops(TOUR.read_text(encoding="utf-8"))


def test_the_tour_has_its_twelve_stops_in_order_each_with_a_snippet_and_its_output():
    assert [s["number"] for s in TOUR_STOPS] == list(range(1, 13))
    for stop in TOUR_STOPS:
        assert stop["blocks"], f"stop {stop['title']} has no python block"
        assert any(expected for _, expected, _ in stop["blocks"]), f"stop {stop['title']} shows no output"


@pytest.mark.parametrize("stop", TOUR_STOPS, ids=lambda s: f"stop{s['number']}")
def test_every_snippet_of_the_stop_prints_what_the_tour_shows(stop, tmp_path, monkeypatch):
    for _, _, pending in stop["blocks"]:
        if pending:
            pytest.skip(f"pending: {pending}")
    monkeypatch.chdir(tmp_path)
    npgan.manual_seed(0)
    namespace = {"__name__": f"tour_stop_{stop['number']}"}
    with npgan.enable_grad():
        for code, expected, _ in stop["blocks"]:
            assert run_block(code, namespace) == expected, f"in {stop['title']}, the block:\n{code}"


def test_the_checker_catches_a_wrong_output():
    text = "## 1. a\n\n```python\nprint(1 + 1)\n```\n\n```text\n3\n```\n"
    (code, expected, _), = stops(text)[0]["blocks"]
    assert run_block(code, {}) != expected
