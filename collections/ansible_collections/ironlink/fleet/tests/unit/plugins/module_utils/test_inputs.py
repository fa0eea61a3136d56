# Copyright (c) Ironlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest
from ansible_collections.ironlink.fleet.plugins.module_utils import _inputs as inputs

GATEWAYS = ["LAB-CO/SITE-A/GW-01", "LAB-CO/SITE-B/GW-01"]

SPEC = {
    "role_sources": {"type": "list", "elements": "str"},
    "role_rules": {"type": "list", "elements": "dict"},
    "role_options": {"type": "dict"},
    "role_port": {"type": "int"},
    "role_any": {"type": "list"},
}


def test_well_typed_values_pass():
    values = {
        "role_sources": ["10.0.0.0/8"],
        "role_rules": [{"name": "x"}],
        "role_options": {},
        "role_any": [1],
    }
    assert inputs.spec_type_errors(SPEC, values) == []


def test_options_not_set_and_scalar_types_are_not_checked():
    assert inputs.spec_type_errors(SPEC, {"role_port": "22"}) == []


def test_string_for_a_list_names_the_variable_and_the_fix():
    assert inputs.spec_type_errors(SPEC, {"role_sources": "10.89.77.0/24"}) == [
        "role_sources: expected a list, got a string ('10.89.77.0/24'); write it as a YAML list "
        '(role_sources: [10.89.77.0/24]), with -e as JSON: -e \'{"role_sources": ["10.89.77.0/24"]}\''
    ]


def test_other_wrong_types():
    errors = inputs.spec_type_errors(
        SPEC, {"role_options": ["a"], "role_rules": {"name": "x"}, "role_any": None}
    )
    assert errors == [
        "role_rules: expected a list, got a mapping ({'name': 'x'})",
        "role_options: expected a mapping (dict), got a list (['a'])",
        "role_any: expected a list, got null (None)",
    ]


def test_bad_elements_are_named_by_index():
    errors = inputs.spec_type_errors(SPEC, {"role_sources": ["10.0.0.0/8", 22], "role_rules": ["x"]})
    assert errors == [
        "role_sources[1]: expected a string, got an integer (22); quote it in YAML",
        "role_rules[0]: expected a mapping, got a string ('x')",
    ]


def refs(value, **kwargs):
    return inputs.gateway_ref_errors("var", value, GATEWAYS, **kwargs)


def test_known_gateways_pass():
    assert refs(list(GATEWAYS)) == ([], [])
    assert refs([]) == ([], [])


def test_bad_format_names_the_entry():
    errors, warnings = refs(["LAB-CO/SITE-A/GW-01", "LAB-CO.SITE-A.GW-01"])
    assert warnings == []
    assert len(errors) == 1
    assert errors[0].startswith(
        "var[1] 'LAB-CO.SITE-A.GW-01' is not a gateway name: expected CLIENT/SITE/GATEWAY"
    )


def test_unknown_gateway_is_an_error_with_a_suggestion():
    errors, _warnings = refs(["LAB-CO/SITE-A/GW-1"])
    assert errors == [
        "var[0] 'LAB-CO/SITE-A/GW-1' is not a gateway of inventory group 'gateways' (did you mean "
        "'LAB-CO/SITE-A/GW-01'?)"
    ]


def test_unknown_gateway_far_from_any_has_no_suggestion():
    errors, _warnings = refs(["ACME/NORTH/EDGE-7"], group="edge")
    assert errors == ["var[0] 'ACME/NORTH/EDGE-7' is not a gateway of inventory group 'edge'"]


def test_unknown_gateway_may_be_a_warning():
    errors, warnings = refs(["OLD-CO/SITE-Z/GW-09"], absent="warn")
    assert errors == []
    assert warnings == [
        "var[0] 'OLD-CO/SITE-Z/GW-09' is not a gateway of inventory group 'gateways': only a certificate "
        "already "
        "issued to it (a gateway removed from the inventory) is revoked; if it was never issued nothing "
        "happens"
    ]


def test_with_issued_names_only_a_former_gateway_is_a_warning():
    issued = {"OLD-CO/SITE-Z/GW-09"}
    errors, warnings = refs(["OLD-CO/SITE-Z/GW-09", "LAB-CO/SITE-Z/GW-09"], absent="warn", issued=issued)
    assert [w.split(" is not")[0] for w in warnings] == ["var[0] 'OLD-CO/SITE-Z/GW-09'"]
    assert errors == [
        "var[1] 'LAB-CO/SITE-Z/GW-09' is not a gateway of inventory group 'gateways' and no certificate was "
        "ever issued to it: nothing to revoke (did you mean 'LAB-CO/SITE-B/GW-01'?)"
    ]


def test_certificate_names():
    files = [
        "/pki/gateways/LAB-CO.SITE-A.GW-01.crt",
        "/pki/gateways/LAB-CO.SITE-A.GW-01.key",
        "/pki/revoked/OLD-CO.SITE-Z.GW-09.1f2e.crt",
        "/pki/revoked/README",
        "/pki/revoked/bad.name.crt",
    ]
    assert inputs.certificate_names(files) == {"LAB-CO/SITE-A/GW-01", "OLD-CO/SITE-Z/GW-09"}


def test_a_bad_format_stays_an_error_where_absence_warns():
    errors, warnings = refs(["lab-co/site-a"], absent="warn")
    assert len(errors) == 1
    assert warnings == []


def test_wrong_type_is_the_only_error():
    assert refs("LAB-CO/SITE-A/GW-01") == (
        [
            "var: expected a list, got a string ('LAB-CO/SITE-A/GW-01'); write it as a YAML list "
            '(var: [LAB-CO/SITE-A/GW-01]), with -e as JSON: -e \'{"var": ["LAB-CO/SITE-A/GW-01"]}\''
        ],
        [],
    )
    errors, _warnings = refs(["LAB-CO/SITE-A/GW-01"], kind="dict")
    assert errors[0].startswith("var: expected a mapping (dict), got a list")


def test_non_string_entries_and_duplicates():
    errors, _warnings = refs([1, "LAB-CO/SITE-A/GW-01", "LAB-CO/SITE-A/GW-01"])
    assert errors[0].startswith("var[0] 1 is an integer, not a gateway name")
    assert errors[1] == "var: 'LAB-CO/SITE-A/GW-01' is listed more than once"


def test_versions_accept_accounts_and_check_numbers():
    accounts = ["ironlink-ingest", *inputs.storage_accounts(GATEWAYS)]
    value = {
        "LAB-CO/SITE-A/GW-01": 2,
        "ironlink-ingest": 3,
        "influxdb/LAB-CO/write": 2,
        "LAB-CO/SITE-B/GW-01": 0,
        "influxdb/LAB-CO/admin": 2,
        "ironlink-ingst": True,
    }
    errors, warnings = refs(value, kind="dict", accounts=accounts)
    assert warnings == []
    assert errors[0] == "var['LAB-CO/SITE-B/GW-01'] = 0: expected a version number, an integer >= 1"
    assert errors[1].startswith(
        "var key 'influxdb/LAB-CO/admin' is not a gateway name: expected CLIENT/SITE/GATEWAY"
    )
    assert "or one of LAB-CO/SITE-A/GW-01" not in errors[1]
    assert "influxdb/LAB-CO/read" in errors[1]
    assert errors[2] == "var['ironlink-ingst'] = True: expected a version number, an integer >= 1"
    assert errors[3].endswith("(did you mean 'ironlink-ingest'?)")
    assert len(errors) == 4


def test_storage_accounts():
    assert inputs.storage_accounts(["B/S/G", "A/S/G", "A/T/G"]) == [
        "influxdb/A/write",
        "influxdb/A/read",
        "influxdb/B/write",
        "influxdb/B/read",
    ]


@pytest.mark.parametrize(
    ("word", "hint"), [("lab-co/site-a/gw-1", " (did you mean 'LAB-CO/SITE-A/GW-01'?)"), ("X", "")]
)
def test_did_you_mean_ignores_case(word, hint):
    assert inputs.did_you_mean(word, GATEWAYS) == hint
