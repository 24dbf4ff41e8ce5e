// The Store's capsule methods (store.hpp: insert_capsule … purge_capsule), written once for
// both backends over StoreCore's Session: the statements in PostgreSQL's typed form, which
// statement_table() renders for SQLite.
//
// Atomicity: an insert (row + first event) and an update (row + event) are each one
// transaction. An update is a compare-and-set: UPDATE … WHERE id AND version, so of several
// writers holding one version exactly one changes the row (PostgreSQL re-checks the WHERE
// after waiting for the row's lock; SQLite's BEGIN IMMEDIATE serialises writers); the
// event's seq (MAX + 1) is drawn after that row is written, so under its lock. Two live
// capsules of one owner+session are kept out by a unique index (migrations.hpp, version 3).
#include "embedded_server/store/codec.hpp"
#include "embedded_server/store/store_core.hpp"

#include <limits>

namespace pw::server::detail {

#define CAPSULE_COLUMNS "id, state, owner, session, labels, spec, record, created_ms, updated_ms, version"
#define EVENT_COLUMNS "capsule_id, seq, at_ms, from_state, to_state, reason"

const std::array<const char*, LIST_CAPSULES - INSERT_CAPSULE> CAPSULE_SQL{
    // INSERT_CAPSULE
    "INSERT INTO capsules (" CAPSULE_COLUMNS
    ") VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::text, $8::bigint, $9::bigint, 1)",
    // INSERT_CAPSULE_EVENT: the capsule's next seq.
    "INSERT INTO capsule_events (" EVENT_COLUMNS
    ") SELECT $1::text, COALESCE(MAX(seq), 0) + 1, $2::bigint, $3::text, $4::text, $5::text FROM capsule_events "
    "WHERE capsule_id = $1::text RETURNING seq",
    // UPDATE_CAPSULE: compare-and-set on the version; without an event ($10 false) the state
    // may not change.
    "UPDATE capsules SET state = $3::text, owner = $4::text, session = $5::text, labels = $6::text, spec = "
    "$7::text, record = $8::text, updated_ms = $9::bigint, version = version + 1 WHERE id = $1::text AND version = "
    "$2::bigint AND ($10::boolean OR state = $3::text) RETURNING version, created_ms",
    // GET_CAPSULE
    "SELECT " CAPSULE_COLUMNS " FROM capsules WHERE id = $1::text",
    // CAPSULE_EVENTS
    "SELECT " EVENT_COLUMNS " FROM capsule_events WHERE capsule_id = $1::text ORDER BY seq",
    // LAST_CAPSULE_EVENTS: the newest $2, oldest first.
    "SELECT " EVENT_COLUMNS " FROM (SELECT " EVENT_COLUMNS
    " FROM capsule_events WHERE capsule_id = $1::text ORDER BY seq DESC LIMIT $2::bigint) AS e ORDER BY seq",
    // PURGE_CAPSULE: the events go with it (ON DELETE CASCADE).
    "DELETE FROM capsules WHERE id = $1::text AND state = 'destroyed'",
};

std::string list_capsules_sql(unsigned mask) {
  std::string sql = "SELECT " CAPSULE_COLUMNS " FROM capsules";
  const char* sep = " WHERE ";
  int n = 0;
  auto add = [&](const std::string& condition) {
    sql += sep;
    sql += condition;
    sep = " AND ";
  };
  auto param = [&](const char* type) { return "$" + std::to_string(++n) + "::" + type; };
  if (mask & 1u) add("state = " + param("text"));
  if (mask & 2u) add("owner = " + param("text"));
  if (mask & 4u) add("session = " + param("text"));
  if (mask & 8u) add("state <> 'destroyed'");
  if (mask & 16u) {
    const std::string created = param("bigint");
    add("(created_ms < " + created + " OR (created_ms = " + created + " AND id < " + param("text") + "))");
  }
  sql += " ORDER BY created_ms DESC, id DESC LIMIT " + param("bigint");
  return sql;
}

namespace {

// Rows per statement while a labels filter is applied here (the rows are read page by page,
// newest first, until the limit is reached).
constexpr std::int64_t LABELS_PAGE = 256;

std::string cleaned(const std::string& s) { return is_clean_text(s) ? s : sanitize_text(s); }

// A row's text as it is written: clean (codec.hpp), labels as their JSON.
struct CleanRow {
  std::string id, state, owner, session, labels, spec, record;
  explicit CleanRow(const CapsuleRow& r)
      : id(cleaned(r.id)),
        state(cleaned(r.state)),
        owner(cleaned(r.owner)),
        session(cleaned(r.session)),
        labels(labels_to_json(r.labels)),
        spec(cleaned(r.spec)),
        record(cleaned(r.record)) {}
};

struct CleanEvent {
  std::string from, to, reason;
  explicit CleanEvent(const CapsuleEventRow& e) : from(cleaned(e.from)), to(cleaned(e.to)), reason(cleaned(e.reason)) {}
};

// CAPSULE_COLUMNS order.
CapsuleRow read_capsule(const Row& r) {
  CapsuleRow c;
  c.id = r.text(0);
  c.state = r.text(1);
  c.owner = r.text(2);
  c.session = r.text(3);
  c.labels = labels_from_json(r.text(4));
  c.spec = r.text(5);
  c.record = r.text(6);
  c.created_ms = r.integer(7);
  c.updated_ms = r.integer(8);
  c.version = r.integer(9);
  return c;
}

// EVENT_COLUMNS order.
CapsuleEventRow read_event(const Row& r) {
  return {r.str(0), r.integer(1), r.integer(2), r.str(3), r.str(4), r.str(5)};
}

void insert_event(Session& s, const std::string& id, std::int64_t at_ms, const CleanEvent& e) {
  s.run(INSERT_CAPSULE_EVENT,
        {Value::text(id), Value::integer(at_ms), Value::text(e.from), Value::text(e.to), Value::text(e.reason)});
}

std::optional<CapsuleRow> get_on(Session& s, const std::string& id) {
  std::optional<CapsuleRow> row;
  s.run(GET_CAPSULE, {Value::text(id)}, [&](const Row& r) { row = read_capsule(r); });
  return row;
}

}  // namespace

void StoreCore::insert_capsule(const CapsuleRow& row, const CapsuleEventRow& first) {
  const CleanRow c(row);
  const CleanEvent e(first);
  with([&](Session& s) {
    Transaction tx(s);
    s.run(INSERT_CAPSULE,
          {Value::text(c.id), Value::text(c.state), Value::text(c.owner), Value::text(c.session), Value::text(c.labels),
           Value::text(c.spec), Value::text(c.record), Value::integer(row.created_ms), Value::integer(row.updated_ms)});
    insert_event(s, c.id, first.at_ms, e);
    tx.commit();
  });
}

CapsuleWrite StoreCore::update_capsule(CapsuleRow& row, const std::optional<CapsuleEventRow>& event) {
  const CleanRow c(row);
  std::optional<CleanEvent> e;
  if (event) e.emplace(*event);
  struct Outcome {
    CapsuleWrite what = CapsuleWrite::missing;
    std::int64_t version = 0, created_ms = 0;
  };
  // The body may run twice (a stale pooled connection): it only reads `row`.
  const Outcome out = with([&](Session& s) {
    Transaction tx(s);
    std::optional<Outcome> written;
    s.run(UPDATE_CAPSULE,
          {Value::text(c.id), Value::integer(row.version), Value::text(c.state), Value::text(c.owner),
           Value::text(c.session), Value::text(c.labels), Value::text(c.spec), Value::text(c.record),
           Value::integer(row.updated_ms), Value::boolean(e.has_value())},
          [&](const Row& r) {
            written = Outcome{CapsuleWrite::written, r.integer(0), r.integer(1)};
          });
    if (!written) {  // nothing written: say why (the transaction is rolled back)
      const std::optional<CapsuleRow> stored = get_on(s, c.id);
      if (!stored) return Outcome{CapsuleWrite::missing};
      return Outcome{stored->version != row.version ? CapsuleWrite::stale : CapsuleWrite::needs_event};
    }
    if (e) insert_event(s, c.id, event->at_ms, *e);
    tx.commit();
    return *written;
  });
  if (out.what == CapsuleWrite::written) {
    row.version = out.version;
    row.created_ms = out.created_ms;
  }
  return out.what;
}

std::optional<CapsuleRow> StoreCore::get_capsule(const std::string& id) {
  const std::string i = cleaned(id);
  return with([&](Session& s) { return get_on(s, i); });
}

std::vector<CapsuleRow> StoreCore::list_capsules(const CapsuleRowFilter& f) {
  const std::string state = f.state ? cleaned(*f.state) : std::string();
  const std::string owner = cleaned(f.owner), session = cleaned(f.session);
  Labels buf;
  const Labels& selector = clean(f.labels, buf);
  // The WHERE clause has one condition per filter given, in list_capsules_sql's order; an
  // explicit state wins over include_destroyed.
  unsigned mask = 0;
  if (f.state) mask |= 1u;
  if (!owner.empty()) mask |= 2u;
  if (!session.empty()) mask |= 4u;
  if (!f.state && !f.include_destroyed) mask |= 8u;
  const std::size_t want = f.limit > 0 ? static_cast<std::size_t>(f.limit) : std::numeric_limits<std::size_t>::max();
  // Labels are matched here, on pages of rows; without labels the database applies the limit.
  const bool paged = !selector.empty();
  const std::int64_t batch = paged ? LABELS_PAGE : (f.limit > 0 ? f.limit : std::numeric_limits<std::int64_t>::max());
  return with([&](Session& s) {
    std::vector<CapsuleRow> out;
    std::optional<std::int64_t> cursor_created;
    std::string cursor_id;
    for (;;) {
      Params params;
      if (mask & 1u) params.push_back(Value::text(state));
      if (mask & 2u) params.push_back(Value::text(owner));
      if (mask & 4u) params.push_back(Value::text(session));
      unsigned m = mask;
      if (cursor_created) {
        m |= 16u;
        params.push_back(Value::integer(*cursor_created));
        params.push_back(Value::text(cursor_id));
      }
      params.push_back(Value::integer(batch));
      std::vector<CapsuleRow> page;
      s.run(LIST_CAPSULES + static_cast<int>(m), params, [&](const Row& r) { page.push_back(read_capsule(r)); });
      if (!page.empty()) {
        cursor_created = page.back().created_ms;
        cursor_id = page.back().id;
      }
      for (auto& row : page) {
        if (out.size() >= want) break;
        if (labels_match(row.labels, selector)) out.push_back(std::move(row));
      }
      if (!paged || out.size() >= want || static_cast<std::int64_t>(page.size()) < batch) return out;
    }
  });
}

std::vector<CapsuleEventRow> StoreCore::capsule_events(const std::string& id, int limit) {
  const std::string i = cleaned(id);
  return with([&](Session& s) {
    std::vector<CapsuleEventRow> out;
    auto read = [&](const Row& r) { out.push_back(read_event(r)); };
    if (limit > 0)
      s.run(LAST_CAPSULE_EVENTS, {Value::text(i), Value::integer(limit)}, read);
    else
      s.run(CAPSULE_EVENTS, {Value::text(i)}, read);
    return out;
  });
}

CapsulePurge StoreCore::purge_capsule(const std::string& id) {
  const std::string i = cleaned(id);
  return with([&](Session& s) {
    if (s.run(PURGE_CAPSULE, {Value::text(i)}) > 0) return CapsulePurge::purged;
    return get_on(s, i) ? CapsulePurge::not_destroyed : CapsulePurge::missing;
  });
}

}  // namespace pw::server::detail
