#!/usr/bin/env python3
"""A stand-in speech-to-text *command engine* for the captions tests (`[captions] command`).

It does not recognize words: it reads 16 kHz mono S16LE audio on stdin, finds stretches of
sound by their energy (20 ms frames above -40 dBFS; an utterance ends after 0.6 s below), and
writes what a real engine (a whisper.cpp or vosk wrapper) would write, one JSON object per line:
partials while sound goes on, a final when it ends — {"text", "final", "start", "end"}, times in
seconds of audio since the stream began. The text says how long the sound lasted, so a test can
check the plumbing and the timestamps end to end.
"""
import json
import math
import struct
import sys

RATE = 16000
FRAME = RATE // 50  # 20 ms
THRESHOLD_DBFS = -40.0
END_SILENCE_FRAMES = 30  # 0.6 s


def say(text, final, start, end):
    print(json.dumps({"text": text, "final": final, "start": round(start, 3), "end": round(end, 3)}), flush=True)


def main():
    stream = sys.stdin.buffer
    frame_no = 0
    start = None
    last_loud = None
    utterances = 0
    while True:
        data = stream.read(FRAME * 2)
        if len(data) < FRAME * 2:
            return
        samples = struct.unpack(f"<{FRAME}h", data)
        rms = math.sqrt(sum(s * s for s in samples) / FRAME) / 32768.0
        dbfs = 20 * math.log10(rms) if rms > 0 else -120.0
        t = frame_no * FRAME / RATE
        frame_no += 1
        if dbfs > THRESHOLD_DBFS:
            if start is None:
                start = t
            last_loud = t
            if frame_no % 25 == 0:  # a partial every 0.5 s of sound
                say(f"sound {utterances + 1} so far", False, start, t)
        elif start is not None and frame_no - 1 - int(last_loud * 50) >= END_SILENCE_FRAMES:
            utterances += 1
            end = last_loud + FRAME / RATE
            say(f"sound {utterances} lasted {end - start:.1f} seconds", True, start, end)
            start = None


if __name__ == "__main__":
    main()
