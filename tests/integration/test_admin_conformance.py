"""The admin API probed as a hostile or careless client would: bodies whose
strings hold what C strings cannot, bearer tokens no client can send, and
`sluice ctl` saying why a request was refused.

Each test starts the real binary on loopback (test_admin's helpers), talks
to it with raw sockets or `sluice ctl`, and stops it by PID.
"""
from harness import stop_all
from test_admin import Admin, start

ADMISSION = "admission: { rate: 100/s, burst: 10 }"


def test_a_nul_in_a_body_string_is_refused_not_cut_short():
    """A \\u0000 in a key or a value once reached handlers that read C
    strings: {"burst\\u0000": 55} passed the unknown-field check as "burst"
    and was then never found (200, nothing changed), and "50/s\\u0000junk"
    set the rate to 50/s. Now both are bad JSON, with the escape's offset."""
    s = start(admission=ADMISSION)
    try:
        a = Admin(s.admin_port)
        path = "/api/v1/services/app/admission"
        cases = [(rb'{"burst\u0000": 55}', 7), (rb'{"rate": "50/s\u0000junk"}', 14),
                 (rb'{"to": "green\u0000x"}', 13)]
        for body, off in cases:
            target = path if b'"to"' not in body else "/api/v1/services/app/deploys"
            status, err = a.json("PUT" if target == path else "POST", target, body)
            assert (status, err) == (400, {"error": "bad JSON at byte %d: \\u0000 in a string "
                                                    "(not accepted here)" % off}), body
        status, got = a.json("GET", path)
        assert status == 200 and (got["limits"]["rate"], got["limits"]["burst"]) == (100, 10), got
        assert a.json("GET", "/api/v1/services/app/deploys/current")[0] == 404
        # other escapes still decode: the body is read, and its field refused by name
        status, err = a.json("POST", "/api/v1/reload", rb'{"\u00e9\u0001": 1}')
        assert (status, err) == (400, {"error": 'unknown field "\u00e9\x01"'})
        a.close()
    finally:
        stop_all(s)
