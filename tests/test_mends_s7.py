"""Small defects left open by session 6 (the new-user trial and review s6), each test failing on the
code before its fix: ``hge gradient --method fd``'s frequency column, the progress bar of a run that
stops early, and what ``hge calibrate`` writes on a device without a setup file."""
import json
import math
from pathlib import Path

import numpy as np
import pytest

from hge_embedded.cli import main

HERE = Path(__file__).parent


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# -- hge gradient --method fd: no frequency, and it says so -------------------------------------------
def test_fd_prints_no_nan_and_its_json_has_no_nan(capsys):
    """Finite differences perturb no frequency: the text printed 'nan' in the f [Hz] column. Now '-';
    --json keeps one entry per electrode (null, as for every non-finite number) and names the method."""
    code, out, err = run(capsys, "gradient", "--method", "fd", "--electrodes", "1,2")
    assert code == 0, err
    assert "nan" not in out.lower()
    rows = [ln.split() for ln in out.splitlines() if ln.strip()[:1].isdigit()]
    assert [r[0] for r in rows] == ["1", "2"] and all(r[1] == "-" for r in rows)
    assert all(math.isfinite(float(r[2])) for r in rows)          # the gradient itself is printed
    code, out, err = run(capsys, "gradient", "--method", "fd", "--electrodes", "1,2", "--json")
    assert code == 0, err
    assert "NaN" not in out
    d = json.loads(out)
    assert d["method"] == "fd" and d["freqs_Hz"] == [None, None] and len(d["gradient_nA_per_V"]) == 2
    # HGE keeps its frequencies in both.
    code, out, err = run(capsys, "gradient", "--electrodes", "1,2", "--json")
    d = json.loads(out)
    assert d["method"] == "hge" and all(f > 0 for f in d["freqs_Hz"])
    code, out, err = run(capsys, "gradient", "--electrodes", "1,2")
    rows = [ln.split() for ln in out.splitlines() if ln.strip()[:1].isdigit()]
    assert [float(r[1]) for r in rows] == pytest.approx(d["freqs_Hz"], abs=0.05)
