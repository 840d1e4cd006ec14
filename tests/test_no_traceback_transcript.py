"""A hand-edited transcript.json with a time that is not a number: one line naming the
file and the field, never a traceback, and nothing published before is lost."""

import json
import math

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.archive import read_transcript
from pipeline.cli import cli
from pipeline.errors import PodarchiveError
from pipeline.model import Gap, InvalidTranscript, Segment, Transcript, Word

from conftest import copy_archive, write_transcript

SLUG = "kennedy-inaugural-1961"
SAID = ["ask", "not", "what", "your", "country", "can", "do", "for", "you", "and", "so", "on"]


def segments() -> list[Segment]:
    """Four segments of three words each."""
    built = []
    for number in range(4):
        words = [Word(text, number * 2.0 + n * 0.5, number * 2.0 + n * 0.5 + 0.4, 0.9)
                 for n, text in enumerate(SAID[number * 3:number * 3 + 3])]
        built.append(Segment(number, words[0].start, words[-1].end, " ".join(w.text for w in words),
                             "John F. Kennedy", "en", words))
    return built


def transcript_data() -> dict:
    transcript = Transcript(SLUG, "en", 11.0, "hand-made", {}, "0" * 64, segments(), gaps=[Gap(8.5, 9.0)])
    return transcript.to_json()


# Every time (and the number read with them) of a transcript, by its path in the file.
TIME_FIELDS = ["duration", "gaps[0].start", "gaps[0].end",
               *(f"segments[{s}].{name}" for s in range(4) for name in ("start", "end")),
               *(f"segments[{s}].words[{w}].{name}" for s in range(4) for w in range(3)
                 for name in ("start", "end", "probability"))]

NOT_A_TIME = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, None, True, False, "1.5", "", [], {}]),
    st.text(max_size=10),
    st.integers(min_value=2 ** 1024, max_value=10 ** 1000),  # past what a float holds
    st.integers(max_value=-(2 ** 1024), min_value=-(10 ** 1000)),
    st.lists(st.floats(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def set_field(data: dict, field: str, value) -> None:
    *parents, name = field.replace("]", "").replace("[", ".").split(".")
    for part in parents:
        data = data[int(part)] if part.isdigit() else data[part]
    data[name] = value


@settings(max_examples=400, deadline=None)
@given(field=st.sampled_from(TIME_FIELDS), value=NOT_A_TIME)
def test_a_time_that_is_not_a_number_names_its_field(field, value):
    data = transcript_data()
    set_field(data, field, value)
    with pytest.raises(InvalidTranscript) as refused:
        Transcript.from_json(json.loads(json.dumps(data)))  # NaN and Infinity as JSON writes them
    assert refused.value.field == field
    assert "must be a finite number" in refused.value.message and len(refused.value.message) < 100


@settings(max_examples=60, deadline=None)
@given(field=st.sampled_from(TIME_FIELDS), value=NOT_A_TIME)
def test_reading_the_file_names_the_file_and_the_field(tmp_path_factory, field, value):
    data = transcript_data()
    set_field(data, field, value)
    path = tmp_path_factory.mktemp("a") / "episodes" / SLUG / "transcript.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(data), "utf-8")
    with pytest.raises(PodarchiveError) as refused:
        read_transcript(path)
    assert refused.value.path == path and refused.value.field == field


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "null", '"12.5"', "1" + "0" * 400])
@pytest.mark.parametrize("command", ["check", "render", "index"])
def test_commands_name_the_file_and_the_field_and_keep_what_was_published(tmp_path, command, value):
    root = copy_archive(tmp_path / "a", slugs=[SLUG])
    write_transcript(root, SLUG, segments())
    runner = CliRunner()
    assert runner.invoke(cli, ["--archive", str(root), "index"]).exit_code == 0
    published = {p: p.read_bytes() for p in (root / "feed").rglob("*") if p.is_file()}
    path = root / "episodes" / SLUG / "transcript.json"
    path.write_text(path.read_text("utf-8").replace('"start": 7.0', f'"start": {value}', 1), "utf-8")
    assert f'"start": {value}' in path.read_text("utf-8")
    result = runner.invoke(cli, ["--archive", str(root), command])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    expected = f"error: episodes/{SLUG}/transcript.json: segments[3].words[2].start: must be a finite number"
    assert errors[0] == f"{expected}, got {value[:40]}"  # check goes on to what is published
    assert "Traceback" not in result.output
    if command != "check":  # the episode is withdrawn (it cannot be checked), not half published
        assert all(not p.exists() or p.read_bytes() == data for p, data in published.items())


@pytest.mark.parametrize("text", ['{"duration": ' + "1" * 5000 + "}", '{"options": ' + "[" * 100_000 + "]" * 100_000 + "}"],
                         ids=["a number of 5000 digits", "lists nested 100000 deep"])
def test_json_that_python_will_not_read_is_named_as_invalid_json(tmp_path, text):
    path = tmp_path / "a" / "episodes" / SLUG / "transcript.json"
    path.parent.mkdir(parents=True)
    path.write_text(text, "utf-8")
    with pytest.raises(PodarchiveError) as refused:
        read_transcript(path)
    assert refused.value.path == path and refused.value.field == "syntax"
