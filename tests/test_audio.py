"""Decoding recordings for the model: the samples faster-whisper's own decoder gives, in
half the memory."""

import dataclasses
import struct
import subprocess

import numpy as np
import pytest
from faster_whisper import decode_audio

from pipeline.archive import load_archive
from pipeline.audio import SAMPLE_RATE, as_float, decode, probe, speaker_tracks
from pipeline.errors import PodarchiveError

from conftest import REPO, copy_archive

RECORDINGS = ["kennedy-inaugural-1961/jfk.flac", "eric-joanis-readalongs/ej-fra.m4a",
              "mit-licence-en-de/multilingual.mp3", "conservateur-des-eaux-et-forets/leopard-fr.wav"]


@pytest.mark.parametrize("recording", RECORDINGS)
def test_decoded_samples_are_those_faster_whisper_decodes(recording):
    path = REPO / "episodes" / recording
    samples = decode(path, probe(path), SAMPLE_RATE, stereo=False)
    assert samples.dtype == np.int16 and samples.shape[1] == 1
    np.testing.assert_array_equal(as_float(samples[:, 0]), decode_audio(str(path), sampling_rate=SAMPLE_RATE))


def test_stereo_channels_come_apart_as_faster_whisper_splits_them():
    path = REPO / "episodes" / "two-voices-stereo" / "stereo_diarization.wav"
    samples = decode(path, probe(path), SAMPLE_RATE, stereo=True)
    left, right = decode_audio(str(path), sampling_rate=SAMPLE_RATE, split_stereo=True)
    np.testing.assert_array_equal(as_float(samples[:, 0]), left)
    np.testing.assert_array_equal(as_float(samples[:, 1]), right)
    assert not np.array_equal(left, right)


def test_a_container_that_understates_its_length_loses_no_sample():
    path = REPO / "episodes" / "kennedy-inaugural-1961" / "jfk.flac"
    info = probe(path)
    understated = decode(path, dataclasses.replace(info, duration=1.0), SAMPLE_RATE, stereo=False)
    np.testing.assert_array_equal(understated, decode(path, info, SAMPLE_RATE, stereo=False))
    assert len(understated) / SAMPLE_RATE == pytest.approx(info.duration, abs=0.01)


def test_each_person_on_a_channel_gets_that_channel(tmp_path):
    archive = load_archive(copy_archive(tmp_path, ["two-voices-stereo"]))
    episode = archive.episodes[0]
    tracks = speaker_tracks(episode)
    assert [speaker for speaker, _ in tracks] == [p.name for p in sorted(episode.persons, key=lambda p: p.channel)]
    for (_, samples), channel in zip(tracks, decode_audio(str(episode.audio_path), split_stereo=True)):
        assert samples.flags.c_contiguous
        np.testing.assert_array_equal(as_float(samples), channel)


def test_floats_pass_through_as_float32():
    floats = np.linspace(-1, 1, 5)
    assert as_float(floats).dtype == np.float32
    np.testing.assert_array_equal(as_float(floats), floats.astype(np.float32))


def cut_wav(tmp_path, *, data_size=None):
    """The Kennedy recording as a WAV (its header says 11 s), cut to its first 0.85 s,
    its header's data size replaced when given."""
    wav = tmp_path / "jfk.wav"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(REPO / "episodes/kennedy-inaugural-1961/jfk.flac"),
                    "-map_metadata", "-1", "-fflags", "+bitexact", str(wav)], check=True)
    data = wav.read_bytes()
    start = data.index(b"data") + 8
    if data_size is not None:
        data = data[:start - 4] + struct.pack("<I", data_size) + data[start:]
    wav.write_bytes(data[:start + int(0.85 * 44100) * 4])
    return wav


def test_a_wav_cut_short_is_refused_naming_the_file(tmp_path):
    wav = cut_wav(tmp_path)
    with pytest.raises(PodarchiveError) as caught:
        probe(wav)
    assert str(caught.value) == (f"{wav}: audio: the recording is truncated or damaged: only 0.8 s of the 11.0 s "
                                 "it declares could be decoded")


def test_a_wav_written_while_recording_declares_no_length_and_is_read_whole(tmp_path):
    assert probe(cut_wav(tmp_path, data_size=0xFFFFFFFF)).duration == pytest.approx(0.85, abs=0.001)
