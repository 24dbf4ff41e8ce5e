#pragma once
// Versioned schema migrations, one logical schema on both backends. Each store applies
// the versions missing from `schema_migrations` at open, in one transaction, under a lock
// (SQLite: BEGIN IMMEDIATE; PostgreSQL: pg_advisory_xact_lock(MIGRATION_LOCK_KEY)), so two
// servers starting together on one database do not race. Opening a migrated database
// changes nothing. Append new versions; never edit an applied one.
//
// PostgreSQL compares the ordered/filtered text columns with COLLATE "C" (bytewise), as
// SQLite does, so both order aliases identically.
// `pods_version` holds one counter that triggers bump on every change to `pods` (in the
// writing transaction): list_pods reuses its last result while the counter is unchanged,
// which stays right with several replicas on one database.
// Times are fixed-width RFC 3339 UTC text ("2026-11-25T16:00:00.123Z") so string order is
// time order on both backends. Text columns hold valid UTF-8 without NUL (codec.hpp).
//
// Version 2:
// - `commands.output_raw` (BLOB/bytea) holds the exact bytes of an output that is not
//   clean text (NUL or invalid UTF-8); `output` then holds its sanitised form (what older
//   versions show). NULL (every older row) means `output` is the exact output.
// - `replicas`: one lease per running server (replicas.hpp): renewed every heartbeat; a
//   live server closes the running rows of a server whose lease expired.
// - `meta`: name → bytes; "key_check" holds a value sealed with the database's secret key
//   (secret_box.hpp), checked by every store at open.
//
// Version 3 (capsules, capsule_rows.cpp):
// - `capsules`: one row per capsule. id, state, owner, session, labels (a JSON object, as
//   `pods.labels`), created_ms, updated_ms and version are columns (the list filters, the
//   newest-first order and the compare-and-set on version use them); `spec` is the capsule's
//   spec and `record` the record's other fields, each as JSON text (the model's JSON).
//   Times are unix epoch milliseconds. A partial unique index keeps one live (not destroyed)
//   capsule per non-empty owner+session, across replicas.
// - `capsule_events`: the lifecycle events, seq increasing per capsule from 1; deleted with
//   their capsule (ON DELETE CASCADE; SQLite connections run with foreign_keys=ON).
#include <array>

namespace pw::server::detail {

struct Migration {
  int version;
  const char* description;
  const char* sqlite_sql;    // may hold several statements
  const char* postgres_sql;  // may hold several statements
};

// Any fixed 64-bit number, the same in every replica.
inline constexpr long long MIGRATION_LOCK_KEY = 0x706f6477726e67LL;  // "podwrng"

// The same on both backends.
inline constexpr const char* MIGRATIONS_TABLE =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)";

// Version 1's indexes of the command history, the same on both backends (the raw string
// after it starts with the line break).
#define PW_COMMANDS_INDEXES_V1                                   \
  "CREATE INDEX commands_alias_id ON commands (alias, id);\n"    \
  "CREATE INDEX commands_status_id ON commands (status, id);\n"  \
  "CREATE INDEX commands_started_at ON commands (started_at);\n" \
  "CREATE INDEX commands_running_server ON commands (server_id) WHERE status = 'running';"

// Version 3's indexes, the same on both backends.
#define PW_CAPSULES_INDEXES_V3                                                                \
  "CREATE INDEX capsules_created ON capsules (created_ms, id);\n"                             \
  "CREATE INDEX capsules_state_created ON capsules (state, created_ms, id);\n"                \
  "CREATE INDEX capsules_owner_created ON capsules (owner, created_ms, id);\n"                \
  "CREATE INDEX capsules_session_created ON capsules (session, created_ms, id);\n"            \
  "CREATE INDEX capsules_updated ON capsules (updated_ms);\n"                                 \
  "CREATE UNIQUE INDEX capsules_live_owner_session ON capsules (owner, session) WHERE state " \
  "<> 'destroyed' AND owner <> '' AND session <> '';"

inline constexpr std::array<Migration, 3> MIGRATIONS{{
    {1, "pods and command history",
     R"sql(
CREATE TABLE pods (
  alias        TEXT PRIMARY KEY,
  url_redacted TEXT NOT NULL,
  url_secret   BLOB NOT NULL,
  provider     TEXT NOT NULL,
  labels       TEXT NOT NULL DEFAULT '{}',
  created_at   TEXT NOT NULL,
  updated_at   TEXT NOT NULL
);
CREATE TABLE commands (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  alias       TEXT NOT NULL,
  command     TEXT NOT NULL,
  status      TEXT NOT NULL,
  exit_code   INTEGER,
  output      TEXT NOT NULL DEFAULT '',
  error       TEXT,
  duration    REAL NOT NULL DEFAULT 0,
  truncated   INTEGER NOT NULL DEFAULT 0,
  pod_label   TEXT NOT NULL DEFAULT '',
  started_at  TEXT NOT NULL,
  finished_at TEXT,
  server_id   TEXT NOT NULL
);
)sql" PW_COMMANDS_INDEXES_V1 R"sql(
CREATE TABLE pods_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);
INSERT INTO pods_version (id, version) VALUES (1, 0);
CREATE TRIGGER pods_version_insert AFTER INSERT ON pods
  BEGIN UPDATE pods_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER pods_version_update AFTER UPDATE ON pods
  BEGIN UPDATE pods_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER pods_version_delete AFTER DELETE ON pods
  BEGIN UPDATE pods_version SET version = version + 1 WHERE id = 1; END;
)sql",
     R"sql(
CREATE TABLE pods (
  alias        TEXT COLLATE "C" PRIMARY KEY,
  url_redacted TEXT NOT NULL,
  url_secret   BYTEA NOT NULL,
  provider     TEXT NOT NULL,
  labels       TEXT NOT NULL DEFAULT '{}',
  created_at   TEXT NOT NULL,
  updated_at   TEXT NOT NULL
);
CREATE TABLE commands (
  id          BIGSERIAL PRIMARY KEY,
  alias       TEXT COLLATE "C" NOT NULL,
  command     TEXT NOT NULL,
  status      TEXT COLLATE "C" NOT NULL,
  exit_code   INTEGER,
  output      TEXT NOT NULL DEFAULT '',
  error       TEXT,
  duration    DOUBLE PRECISION NOT NULL DEFAULT 0,
  truncated   BOOLEAN NOT NULL DEFAULT FALSE,
  pod_label   TEXT NOT NULL DEFAULT '',
  started_at  TEXT COLLATE "C" NOT NULL,
  finished_at TEXT,
  server_id   TEXT COLLATE "C" NOT NULL
);
)sql" PW_COMMANDS_INDEXES_V1 R"sql(
CREATE TABLE pods_version (id INTEGER PRIMARY KEY CHECK (id = 1), version BIGINT NOT NULL);
INSERT INTO pods_version (id, version) VALUES (1, 0);
CREATE FUNCTION pods_version_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE pods_version SET version = version + 1 WHERE id = 1;
  RETURN NULL;
END $$;
CREATE TRIGGER pods_version_bump AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pods
  FOR EACH STATEMENT EXECUTE FUNCTION pods_version_bump();
)sql"},
    {2, "exact output bytes, replica leases, key check",
     R"sql(
ALTER TABLE commands ADD COLUMN output_raw BLOB;
CREATE TABLE replicas (
  server_id  TEXT PRIMARY KEY,
  started_at TEXT NOT NULL,
  last_seen  TEXT NOT NULL,
  expires_at TEXT NOT NULL
);
CREATE TABLE meta (
  name  TEXT PRIMARY KEY,
  value BLOB NOT NULL
);
)sql",
     R"sql(
ALTER TABLE commands ADD COLUMN output_raw BYTEA;
CREATE TABLE replicas (
  server_id  TEXT COLLATE "C" PRIMARY KEY,
  started_at TEXT COLLATE "C" NOT NULL,
  last_seen  TEXT COLLATE "C" NOT NULL,
  expires_at TEXT COLLATE "C" NOT NULL
);
CREATE TABLE meta (
  name  TEXT COLLATE "C" PRIMARY KEY,
  value BYTEA NOT NULL
);
)sql"},
    {3, "capsules and their lifecycle events",
     R"sql(
CREATE TABLE capsules (
  id         TEXT PRIMARY KEY,
  state      TEXT NOT NULL,
  owner      TEXT NOT NULL DEFAULT '',
  session    TEXT NOT NULL DEFAULT '',
  labels     TEXT NOT NULL DEFAULT '{}',
  spec       TEXT NOT NULL,
  record     TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL,
  version    INTEGER NOT NULL
);
CREATE TABLE capsule_events (
  capsule_id TEXT NOT NULL REFERENCES capsules (id) ON DELETE CASCADE,
  seq        INTEGER NOT NULL,
  at_ms      INTEGER NOT NULL,
  from_state TEXT NOT NULL,
  to_state   TEXT NOT NULL,
  reason     TEXT NOT NULL,
  PRIMARY KEY (capsule_id, seq)
);
)sql" PW_CAPSULES_INDEXES_V3,
     R"sql(
CREATE TABLE capsules (
  id         TEXT COLLATE "C" PRIMARY KEY,
  state      TEXT COLLATE "C" NOT NULL,
  owner      TEXT COLLATE "C" NOT NULL DEFAULT '',
  session    TEXT COLLATE "C" NOT NULL DEFAULT '',
  labels     TEXT NOT NULL DEFAULT '{}',
  spec       TEXT NOT NULL,
  record     TEXT NOT NULL,
  created_ms BIGINT NOT NULL,
  updated_ms BIGINT NOT NULL,
  version    BIGINT NOT NULL
);
CREATE TABLE capsule_events (
  capsule_id TEXT COLLATE "C" NOT NULL REFERENCES capsules (id) ON DELETE CASCADE,
  seq        BIGINT NOT NULL,
  at_ms      BIGINT NOT NULL,
  from_state TEXT NOT NULL,
  to_state   TEXT NOT NULL,
  reason     TEXT NOT NULL,
  PRIMARY KEY (capsule_id, seq)
);
)sql" PW_CAPSULES_INDEXES_V3},
}};

#undef PW_COMMANDS_INDEXES_V1
#undef PW_CAPSULES_INDEXES_V3

}  // namespace pw::server::detail
