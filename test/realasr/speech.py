"""Known scripts for the real-ASR tier and `bench/real_asr.py`: espeak-ng speech, word error rate.

Each script is a list of (sentence, pause after it in ms). The pauses (1–6 s) exercise WLK's pause
segmentation (its default `--pause-segmentation-seconds` is 5 s, so the long ones produce silence
lines); the last sentence is distinctive, so a lost tail is easy to see. espeak-ng at 150 words per
minute makes a bit over a minute of speech of each.

`word_error_rate` is the usual Levenshtein distance over words divided by the reference length,
after lower-casing, folding accents and dropping punctuation, so "Tuesday," equals "tuesday".
"""

from __future__ import annotations

import re
import shutil
import subprocess
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from test.audio_fixtures import write_audio_file

ESPEAK_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Script:
    """A known text spoken by espeak-ng with pauses between sentences."""

    language: str  # espeak-ng voice and Whisper language code
    sentences: tuple[tuple[str, int], ...]  # (sentence, pause after it in ms)
    # Words of the last sentence every model gets right on this voice: the transcript's end must
    # hold them all (a lost tail is then plain to see, whatever Whisper makes of the others).
    last_words: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return " ".join(sentence for sentence, _ in self.sentences)

    @property
    def last_sentence(self) -> str:
        return self.sentences[-1][0]

    def ssml(self) -> str:
        parts = []
        for sentence, pause_ms in self.sentences:
            parts.append(sentence)
            if pause_ms:
                parts.append(f'<break time="{pause_ms}ms"/>')
        return "<speak>" + "".join(parts) + "</speak>"


ENGLISH = Script(
    "en",
    (
        ("The court opened the morning session on time.", 1500),
        ("The judge asked the witness to state her name and address.", 1000),
        ("She said that she had lived in the same house for many years.", 2000),
        ("On the night in question she heard a loud noise from the street.", 1200),
        ("She looked out of the window and saw a blue car driving away.", 6000),
        ("The lawyer for the defense asked how dark it was outside.", 1000),
        ("The witness replied that the street lights were on.", 1500),
        ("She was certain about the color of the car.", 3000),
        ("The judge thanked the witness and called a short break.", 6000),
        ("After the break the second witness was a young police officer.", 1200),
        ("He described the report he wrote on the following morning.", 2500),
        ("The purple elephant signed the treaty in Paris.", 0),
    ),
    last_words=("purple", "elephant", "signed", "paris"),
)

SPANISH = Script(
    "es",
    (
        ("El tribunal abrió la audiencia de la mañana puntualmente.", 1500),
        ("La jueza pidió a la testigo que dijera su nombre y su domicilio.", 1000),
        ("Ella dijo que vivía en la misma casa desde hace muchos años.", 2000),
        ("Esa noche escuchó un ruido muy fuerte que venía de la calle.", 1200),
        ("Miró por la ventana y vio un coche azul que se alejaba.", 6000),
        ("El abogado de la defensa preguntó si estaba oscuro afuera.", 1000),
        ("La testigo respondió que las luces de la calle estaban encendidas.", 1500),
        ("Estaba segura del color del coche.", 3000),
        ("La jueza agradeció a la testigo y anunció un breve descanso.", 6000),
        ("Después del descanso declaró un joven agente de policía.", 1200),
        ("Describió el informe que escribió a la mañana siguiente.", 2500),
        ("El elefante violeta firmó el tratado en París.", 0),
    ),
    # base hears espeak-ng's "violeta", "tratado" and "París" as "mioreta", "tratano", "país",
    # offline too (bench/results/real_asr-base.json).
    last_words=("elefante", "firmo"),
)

SCRIPTS = {"en": ENGLISH, "es": SPANISH}


def espeak_binary() -> str | None:
    return shutil.which("espeak-ng")


def synthesize(script: Script, path: Path, *, espeak: str) -> Path:
    """Write `script` as espeak-ng speech (22.05 kHz mono WAV) to `path`."""
    subprocess.run(
        [espeak, "-m", "-v", script.language, "-s", "150", "-w", str(path), script.ssml()],
        check=True,
        timeout=ESPEAK_TIMEOUT_S,
        capture_output=True,
    )
    return path


def encode(wav: Path, path: Path, *, fmt: str) -> Path:
    """Re-encode an espeak-ng WAV (mono) as `fmt` (a test.audio_fixtures format key)."""
    audio, rate = sf.read(wav, dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    blocks = (mono[i : i + rate].reshape(1, -1) for i in range(0, len(mono), rate))
    return write_audio_file(path, blocks, fmt=fmt, sample_rate=rate, channels=1)


def normalize_words(text: str) -> list[str]:
    """Lower-case words without accents or punctuation; digits stay."""
    folded = unicodedata.normalize("NFKD", text.lower())
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    return re.findall(r"[a-z0-9]+", folded)


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / reference words."""
    ref, hyp = normalize_words(reference), normalize_words(hypothesis)
    previous = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, start=1):
        current = [i] + [0] * len(hyp)
        for j, hyp_word in enumerate(hyp, start=1):
            current[j] = min(
                previous[j] + 1,
                current[j - 1] + 1,
                previous[j - 1] + (ref_word != hyp_word),
            )
        previous = current
    return previous[-1] / max(1, len(ref))


def has_last_words(text: str, script: Script, *, window: int = 12) -> bool:
    """True when all of `script.last_words` are among the transcript's last `window` words."""
    tail = normalize_words(text)[-window:]
    return all(word in tail for word in script.last_words)


def contains_phrase(text: str, phrase: str, *, max_missing: int = 0) -> bool:
    """True when all but `max_missing` words of `phrase` appear, in order, in `text`."""
    words = normalize_words(text)
    wanted = normalize_words(phrase)
    best = 0
    for start in range(len(words)):
        matched, k = 0, start
        for word in wanted:
            try:
                k = words.index(word, k) + 1
            except ValueError:
                continue
            matched += 1
        best = max(best, matched)
    return best >= len(wanted) - max_missing
