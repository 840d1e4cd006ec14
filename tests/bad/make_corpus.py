"""Rebuild the audio of the bad-input corpus (run from the repository root).

The corpus is committed; this script documents how each file was made from the
bundled recordings (see episodes/LICENSES.md) or from nothing.
"""

import subprocess
from pathlib import Path

HERE = Path(__file__).parent / "episodes"
EPISODES = Path("episodes")


def sox(*args: str) -> None:
    subprocess.run(["sox", *args], check=True)


def make() -> None:
    jfk = EPISODES / "kennedy-inaugural-1961/jfk.flac"
    leopard = EPISODES / "conservateur-des-eaux-et-forets/leopard-fr.wav"
    mp3 = EPISODES / "mit-licence-en-de/multilingual.mp3"
    (HERE / "empty-audio/empty.mp3").write_bytes(b"")
    (HERE / "truncated-mp3/truncated.mp3").write_bytes(mp3.read_bytes()[:1500])
    flac = jfk.read_bytes()
    (HERE / "corrupt-flac/corrupt.flac").write_bytes(flac[:42] + bytes(range(256)) * 64)
    (HERE / "text-named-mp3/notes.mp3").write_text("These are my interview notes, not audio.\n")
    sox("-n", "-r", "16000", "-c", "1", str(HERE / "pure-silence/silence.flac"), "trim", "0", "5")
    sox("-n", "-r", "16000", "-c", "1", str(HERE / "ten-minutes-of-silence/silence.flac"), "trim", "0", "600")
    sox("-n", "-r", "16000", "-c", "1", str(HERE / "one-millisecond/blip.wav"), "synth", "0.001", "sine", "440")
    sox(str(leopard), "-r", "8000", str(HERE / "telephone-8khz/phone.wav"))
    sox(str(jfk), "-r", "16000", "-c", "6", str(HERE / "six-channels/surround.flac"), "trim", "0", "3")
    sox("-n", "-r", "16000", "-c", "1", str(HERE / "unsupported-extension/recording.aiff"), "trim", "0", "0.5")
    # Cases about metadata only need some valid audio: half a second of silence.
    for toml in sorted(HERE.glob("*/episode.toml")):
        if '"note.flac"' in toml.read_text(encoding="utf-8"):
            sox("-n", "-r", "16000", "-c", "1", str(toml.parent / "note.flac"), "trim", "0", "0.5")


if __name__ == "__main__":
    make()
