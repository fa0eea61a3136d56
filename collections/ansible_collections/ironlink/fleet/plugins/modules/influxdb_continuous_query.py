#!/usr/bin/python
# Copyright (c) Ironlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: influxdb_continuous_query
short_description: Manage InfluxDB 1.x continuous queries
version_added: 0.2.0
description:
  - Creates, replaces or drops a continuous query (CQ) of an InfluxDB 1.x database through the v1 HTTP
    API (C(/query)).
  - InfluxDB cannot alter a CQ. When the stored definition differs from the wanted one, the module drops
    the CQ and creates it again (two statements; a failure in between leaves the CQ absent, and the next
    run creates it).
  - The stored definition is compared after normalisation, because InfluxDB re-formats a statement when
    it saves it (keywords in upper case, function names in lower case, needless identifier quotes removed,
    durations such as V(60m) printed as V(1h)). Whitespace does not matter.
  - Uses only the Python standard library on the managed host (no C(influxdb) library needed); works with
    InfluxDB 1.6 and 1.8.
author:
  - Ironlink team (@ironlink)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
options:
  name:
    description: Name of the continuous query, unique within O(database).
    type: str
    required: true
  database:
    description: Database the continuous query belongs to (C(ON <database>)).
    type: str
    required: true
  query:
    description:
      - The C(SELECT ... INTO ... FROM ... GROUP BY time(...)) statement the CQ runs, without the
        C(CREATE CONTINUOUS QUERY ... BEGIN) and C(END) around it.
      - Required when O(state=present).
    type: str
  resample_every:
    description: C(RESAMPLE EVERY) interval, how often the CQ runs (an InfluxQL duration such as V(1h)).
    type: str
  resample_for:
    description: C(RESAMPLE FOR) interval, how far back each run recomputes (an InfluxQL duration, V(2h)).
    type: str
  state:
    description: Whether the continuous query should exist.
    type: str
    choices: [present, absent]
    default: present
  hostname:
    description: Name or address of the InfluxDB server.
    type: str
    default: localhost
  port:
    description: HTTP API port.
    type: int
    default: 8086
  ssl:
    description: Use HTTPS.
    type: bool
    default: false
  validate_certs:
    description: Verify the server certificate with O(ssl=true).
    type: bool
    default: true
  username:
    description:
      - User to authenticate as (HTTP basic authentication). Creating or dropping a CQ needs an admin user.
      - Omit it on a server without authentication.
    type: str
    aliases: [login_username]
  password:
    description: Password of O(username).
    type: str
    aliases: [login_password]
  timeout:
    description: HTTP timeout in seconds.
    type: int
    default: 10
attributes:
  check_mode:
    support: full
    details: Reads the stored continuous queries and reports the action it would take, changing nothing.
  diff_mode:
    support: full
    details: The diff shows the stored statement before and the statement to create after.
  idempotent:
    description: When run twice in a row with the same options, the second run reports no change.
    support: full
    details: Compares the normalised stored statement with the wanted one; equal means no change.
  platform:
    support: full
    platforms: posix
notes:
  - Write O(query) with fully qualified measurements (C(INTO "db"."rp".:MEASUREMENT FROM "db"."rp"./.*/)) so
    the CQ does not depend on the database's default retention policy.
  - To backfill or test a CQ definition without waiting for its interval, run its C(SELECT ... INTO) with a
    C(WHERE time >= ... AND time < ...) range (for example with M(community.general.influxdb_query)).
seealso:
  - module: community.general.influxdb_retention_policy
  - name: InfluxDB 1.x continuous queries
    description: The InfluxQL reference for CREATE CONTINUOUS QUERY.
    link: https://docs.influxdata.com/influxdb/v1/query_language/continuous_queries/
"""

EXAMPLES = r"""
- name: Hourly rollups of every field, keeping all tags
  ironlink.fleet.influxdb_continuous_query:
    username: admin
    password: "{{ vault_cloud_storage_admin_password }}"
    database: ironlink_zam_weld
    name: rollup_1h
    query: >-
      SELECT mean(*), min(*), max(*), last(*)
      INTO "ironlink_zam_weld"."rollup_1h".:MEASUREMENT
      FROM "ironlink_zam_weld"."raw"./.*/
      GROUP BY time(1h), *
    resample_every: 1h
    resample_for: 2h

- name: Remove an old continuous query
  ironlink.fleet.influxdb_continuous_query:
    username: admin
    password: "{{ vault_cloud_storage_admin_password }}"
    database: ironlink_zam_weld
    name: cq_old
    state: absent
"""

RETURN = r"""
statement:
  description: The C(CREATE CONTINUOUS QUERY) statement built from the options (also in check mode).
  returned: state=present
  type: str
  sample: >-
    CREATE CONTINUOUS QUERY rollup_1h ON ironlink_zam_weld RESAMPLE EVERY 1h FOR 2h BEGIN SELECT mean(*) INTO
    "ironlink_zam_weld"."rollup_1h".:MEASUREMENT FROM "ironlink_zam_weld"."raw"./.*/ GROUP BY time(1h), * END
current:
  description: The statement InfluxDB stored before the run, empty when the CQ did not exist.
  returned: always
  type: str
  sample: "CREATE CONTINUOUS QUERY rollup_1h ON ironlink_zam_weld BEGIN SELECT mean(*) INTO ... END"
action:
  description: What was (or in check mode would be) done.
  returned: always
  type: str
  choices: [none, create, replace, drop]
  sample: create
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.ironlink.fleet.plugins.module_utils._influxdb import (
    InfluxDBAPI,
    InfluxDBError,
    build_create_statement,
    connection_argument_spec,
    normalise,
    parse_duration,
    parse_show_continuous_queries,
    quote_ident,
)


def decide(current: str, desired: str | None) -> str:
    """Action for the stored statement ``current`` ("" when absent) and the wanted one (None: absent)."""
    if desired is None:
        return "drop" if current else "none"
    if not current:
        return "create"
    return "none" if normalise(current) == normalise(desired) else "replace"


def main() -> None:
    argument_spec = connection_argument_spec()
    argument_spec.update(
        name={"type": "str", "required": True},
        database={"type": "str", "required": True},
        query={"type": "str"},
        resample_every={"type": "str"},
        resample_for={"type": "str"},
        state={"type": "str", "default": "present", "choices": ["present", "absent"]},
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_if=[("state", "present", ["query"])],
        supports_check_mode=True,
    )
    params = module.params
    name = params["name"]
    database = params["database"]

    desired = None
    if params["state"] == "present":
        for key in ("resample_every", "resample_for"):
            if params[key]:
                try:
                    parse_duration(params[key])
                except ValueError as exc:
                    module.fail_json(msg=f"{key}: {exc}")
        desired = build_create_statement(
            name, database, params["query"], params["resample_every"], params["resample_for"]
        )
        try:
            normalise(desired)
        except ValueError as exc:
            module.fail_json(msg=f"query: {exc}", statement=desired)

    api = InfluxDBAPI.from_params(params)
    try:
        stored = parse_show_continuous_queries(api.query("SHOW CONTINUOUS QUERIES"))
    except InfluxDBError as exc:
        module.fail_json(msg=f"SHOW CONTINUOUS QUERIES failed: {exc}", status=exc.status)
    current = stored.get((database, name)) or ""

    action = decide(current, desired)
    result = {"changed": action != "none", "action": action, "current": current}
    if desired is not None:
        result["statement"] = desired
    if module._diff:
        result["diff"] = {
            "before": current + "\n" if current else "",
            "after": desired + "\n" if desired else "",
        }

    if action != "none" and not module.check_mode:
        drop = f"DROP CONTINUOUS QUERY {quote_ident(name)} ON {quote_ident(database)}"
        statements = {"drop": [drop], "replace": [drop, desired], "create": [desired]}[action]
        for done, statement in enumerate(statements):
            try:
                api.query(statement)
            except InfluxDBError as exc:
                # A failed create after a successful drop (replace) did change something: the CQ is gone.
                head = statement.split(" BEGIN ", maxsplit=1)[0]
                result["changed"] = done > 0
                module.fail_json(msg=f"{head} failed: {exc}", status=exc.status, **result)

    module.exit_json(**result)


if __name__ == "__main__":
    main()
