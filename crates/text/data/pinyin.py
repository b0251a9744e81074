# Rebuilds crates/text/data/pinyin.txt (run from the repository root): pypinyin 0.53.0 (MIT), default (most common) toneless reading of
# each GB2312 character, grouped by syllable.
import collections, sys
from pypinyin import pinyin, Style
by = collections.defaultdict(list)
for hi in range(0xB0, 0xF8):
    for lo in range(0xA1, 0xFF):
        try:
            c = bytes([hi, lo]).decode("gb2312")
        except UnicodeDecodeError:
            continue
        r = pinyin(c, style=Style.NORMAL, heteronym=False)[0][0]
        if r.isascii() and r.isalpha():
            by[r.replace("v", "u")].append(c)
out = sys.stdout
out.write("# Toneless pinyin of the 6,763 GB2312 characters (most common reading), one syllable per line.\n# Data: pypinyin (MIT), from Unicode Unihan.\n")
out.write("# Rebuild: pip install pypinyin==0.53.0 && python3 crates/text/data/pinyin.py > crates/text/data/pinyin.txt\n")
for s in sorted(by):
    out.write(s + " " + "".join(by[s]) + "\n")
