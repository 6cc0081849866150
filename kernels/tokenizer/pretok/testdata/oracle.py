# Writes random split cases for TestAgainstOracle, computed with Python's
# `regex` module (which has \p{..} classes and lookahead like Oniguruma):
#
#   python3 oracle.py > /tmp/oracle.txt
#   PRETOK_ORACLE=/tmp/oracle.txt go test ./kernels/tokenizer/pretok -run TestAgainstOracle
#
# Each line: pattern name, hex input, comma-separated hex pieces.
import random

import regex

PATTERNS = {
    "llama3": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    "qwen": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    "deepseek": "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
    "gpt2": r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+",
}
ALPHABET = list("aZ'sStTrReEvVmMlLdD 1234 \n\r\t.,!?-+([{_$^`~") + [
    "\u00a0", "\u3000", "é", "\u0301", "你", "好", "٣", "½", "👋", "🏽", "€", "\u2028", "\x00", "\x1c", "ſ", "Ⅻ", "。",
]

random.seed(7)
for _ in range(6000):
    s = "".join(random.choice(ALPHABET) for _ in range(random.randint(0, 14)))
    for name, pattern in PATTERNS.items():
        pieces, prev = [], 0
        for m in regex.finditer(pattern, s):
            if m.start() > prev:
                pieces.append(s[prev:m.start()])
            if m.end() > m.start():
                pieces.append(m.group())
            prev = m.end()
        if prev < len(s):
            pieces.append(s[prev:])
        print(name, s.encode().hex(), ",".join(p.encode().hex() for p in pieces), sep="\t")
