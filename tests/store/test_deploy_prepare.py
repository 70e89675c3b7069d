"""`vocalcast stack prepare` (issue 19, production deployment): what a container or a systemd unit runs
before the node's Asterisk and engine, on a PostgreSQL the engine does not administer."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from engine import stack
from engine.settings import Settings
from engine.stack import postgres
from engine.stack.asterisk import cdr_database


def _cdr_may_insert(settings: Settings) -> bool:
    sql = "SELECT has_table_privilege('asterisk_cdr', 'asterisk_cdr', 'INSERT')"
    return postgres.psql(settings, sql, database="vocalcast") == "t"


def test_prepare_grants_the_cdr_role_and_renders_the_nodes_config(
    stack_settings: Settings, tmp_path: Path
) -> None:
    # A node of a deployment: the database is given by URL (here the test cluster, by TCP), its Asterisk
    # is in an image (the module directory as that image sees it), its state in its own directory.
    node = dataclasses.replace(
        stack_settings, database_url=stack_settings.dsn, state_dir=tmp_path / "state", node="deploy-test"
    )
    postgres.psql(stack_settings, "REVOKE INSERT ON asterisk_cdr FROM asterisk_cdr", database="vocalcast")
    assert not _cdr_may_insert(stack_settings)
    try:
        stack.prepare(node, module_dir=stack.IMAGE_MODULE_DIR)
        assert _cdr_may_insert(stack_settings)
    finally:
        postgres.grant_cdr(stack_settings)

    etc = node.state_dir / "asterisk" / "etc"
    assert f"astmoddir => {stack.IMAGE_MODULE_DIR}" in (etc / "asterisk.conf").read_text()
    assert f"astetcdir => /srv/{node.instance_id}/etc" in (etc / "asterisk.conf").read_text()
    host, port, name = cdr_database(node)
    cdr = (etc / "cdr_pgsql.conf").read_text()
    assert (host, port, name) == ("127.0.0.1", stack_settings.pg_port, "vocalcast")
    assert f"hostname={host}" in cdr.replace(" ", "")
    assert f"port={port}" in cdr.replace(" ", "")
    assert (etc / "pjsip.conf").is_file()
    assert any((node.state_dir / "asterisk" / "sounds").iterdir())
