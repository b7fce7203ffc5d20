"""The covert mark: a keyed pattern of module flips inside a QR symbol's error-correction budget.

``geometry`` and ``mark`` are pure (standard library only): where a symbol's codewords sit, which
modules a brand's key marks for one code, and the rule that judges a sampled symbol. ``qr``
builds matrices with the ``qrcode`` library; ``reader`` finds and samples a symbol in an image
(zxing-cpp, Pillow, numpy).

What the mark stops, and what it does not: a code re-generated from a leaked list of serials (or
from decoding a genuine label and encoding the text again) has no flips at the keyed positions
and reads ABSENT. A photocopy, a photo or a scan of a real label carries the flips with it and
reads PRESENT: copies of real labels are caught by per-serial state (sessions, travel, the PIN).
"""
