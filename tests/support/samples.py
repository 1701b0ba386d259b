"""Test strings that must never appear whole in the repository.

EICAR and GTUBE are assembled from two halves at run time, so no scanner
ever flags the checkout itself (docs/engineering-rules.md, "Tests").
"""

from __future__ import annotations

_EICAR_A = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STAN"
_EICAR_B = r"DARD-ANTIVIRUS-TEST-FILE!$H+H*"
_GTUBE_A = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD"
_GTUBE_B = "-ANTI-UBE-TEST-EMAIL*C.34X"


def eicar() -> bytes:
    """The 68-byte EICAR anti-virus test file."""
    return (_EICAR_A + _EICAR_B).encode("ascii")


def gtube() -> str:
    """The GTUBE anti-spam test string."""
    return _GTUBE_A + _GTUBE_B
