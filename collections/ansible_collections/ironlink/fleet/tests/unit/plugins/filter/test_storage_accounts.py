# Copyright (c) Ironlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""ironlink.fleet.storage_accounts: the one naming rule of per-client databases and users."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.ironlink.fleet.plugins.filter.storage_accounts import FilterModule, storage_accounts


def test_names_per_client_sorted_and_unique():
    assert storage_accounts(["ZAM-WELD", "ACME-PACK", "ZAM-WELD"], "ironlink_") == [
        {
            "client": "ACME-PACK",
            "database": "ironlink_acme_pack",
            "write_user": "ironlink_acme_pack_write",
            "read_user": "ironlink_acme_pack_read",
        },
        {
            "client": "ZAM-WELD",
            "database": "ironlink_zam_weld",
            "write_user": "ironlink_zam_weld_write",
            "read_user": "ironlink_zam_weld_read",
        },
    ]


def test_prefix_is_used_everywhere():
    (entry,) = storage_accounts(["A-1"], "plant_")
    assert entry == {
        "client": "A-1",
        "database": "plant_a_1",
        "write_user": "plant_a_1_write",
        "read_user": "plant_a_1_read",
    }


def test_no_clients_no_accounts():
    assert storage_accounts([], "ironlink_") == []


@pytest.mark.parametrize("prefix", ["", "Ironlink_", "1x_", "iron-link_", "ironlink_\n", None])
def test_bad_prefix_is_refused(prefix):
    with pytest.raises(AnsibleFilterError, match="prefix"):
        storage_accounts(["A"], prefix)


def test_a_string_is_not_a_client_list():
    with pytest.raises(AnsibleFilterError, match="list of client ids"):
        storage_accounts("ZAM-WELD", "ironlink_")


def test_registered_name():
    assert FilterModule().filters() == {"storage_accounts": storage_accounts}
