"""The cffi module is built the way the microcontroller's C is meant, and declares
what the headers declare.

- Python's CFLAGS carry -fwrapv; _build_core appends -fno-wrapv. The probe
  ``x + 1 > x`` folds to 1 only when signed overflow is undefined (checked: a build
  with -fwrapv returns 0 for INT_MAX), so it tells which rule the module was built under.
- cffi's API mode compiles a call through every declared prototype but only warns
  on a mismatch; this test compares each function declared in the cdef, token for
  token, with the prototype in csrc/*.h, so a changed signature fails here.
"""
import pathlib
import re

from hge_embedded import _build_core
from hge_embedded._hge_core import lib

CSRC = pathlib.Path(__file__).resolve().parents[1] / "csrc"
# Wrappers defined in _build_core.SOURCE for tests, not in the headers.
BINDING_ONLY = {"hge_sin_q22_exported", "hge_q30_sat_exported", "hge_chunk_walk_exported", "hge_wrapv_probe",
                "hge_presum_term_exported", "hge_dot3_pieces_exported"}


def test_module_built_without_wrapv():
    assert lib.hge_wrapv_probe(2**31 - 1) == 1


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def _prototypes(text: str) -> dict:
    """name -> normalised prototype of every function declaration ``type name(args);``."""
    text = _strip_comments(text)
    out = {}
    for m in re.finditer(r"(?:^|[;}\n])\s*((?:const\s+)?[A-Za-z_]\w*\s*\**\s*(hge_\w+)\s*\(([^;{}]*?)\))\s*;", text):
        out[m.group(2)] = " ".join(re.findall(r"\w+|[^\s\w]", m.group(1)))
    return out


def test_cdef_prototypes_match_headers():
    headers = {}
    for h in sorted(CSRC.rglob("*.h")):
        headers.update(_prototypes(h.read_text()))
    declared = _prototypes(_build_core.CDEF)
    assert len(declared) >= 15, declared  # the parser found the cdef's functions
    for name, proto in declared.items():
        if name in BINDING_ONLY:
            continue
        assert name in headers, f"{name} is declared for cffi but in no csrc header"
        assert proto == headers[name], f"cdef and header differ:\n  cdef:   {proto}\n  header: {headers[name]}"


def test_every_lockin_nco_update_function_is_bound():
    """The reverse direction for the headers this binding covers: nothing public is left out."""
    declared = _prototypes(_build_core.CDEF)
    for h in ("hge_lockin.h", "hge_nco.h", "hge_update.h"):
        for name in _prototypes((CSRC / h).read_text()):
            assert name in declared, f"{name} ({h}) has no cdef declaration"
