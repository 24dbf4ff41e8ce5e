// CapsuleRecords in memory: the same semantics as the server's stores (records_detail.hpp
// holds the rules they share), for library users and tests that need no database. One
// mutex guards everything; every call is short.
#include <podwrangler/capsules/records.hpp>
#include <podwrangler/capsules/records_detail.hpp>

#include <algorithm>
#include <map>
#include <mutex>

namespace pw::capsules {
namespace {

bool labels_contain(const std::map<std::string, std::string>& labels,
                    const std::map<std::string, std::string>& wanted) {
  for (const auto& [k, v] : wanted) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  return true;
}

bool matches(const CapsuleRecord& r, const CapsuleFilter& f) {
  // An explicit state wins over include_destroyed (state=destroyed lists destroyed ones).
  if (f.state ? r.state != *f.state : (!f.include_destroyed && r.state == CapsuleState::destroyed)) return false;
  if (!f.owner.empty() && r.spec.owner != f.owner) return false;
  if (!f.session.empty() && r.spec.session != f.session) return false;
  return labels_contain(r.spec.labels, f.labels);
}

// Newest first: created_ms, then id, descending (the stores' order).
bool newer(const CapsuleRecord& a, const CapsuleRecord& b) {
  if (a.created_ms != b.created_ms) return a.created_ms > b.created_ms;
  return a.id > b.id;
}

class MemoryCapsuleRecords final : public CapsuleRecords {
 public:
  void insert(const CapsuleRecord& rec, const CapsuleEvent& first) override {
    CapsuleRecord r = rec;
    CapsuleEvent e = first;
    detail::prepare_insert(r, e);
    std::lock_guard lock(mu_);
    if (capsules_.count(r.id)) detail::throw_exists(r.id);
    check_owner_session(r);
    Entry& entry = capsules_[r.id];
    entry.rec = std::move(r);
    entry.events.push_back(std::move(e));
  }

  void update(CapsuleRecord& rec, const std::optional<CapsuleEvent>& event) override {
    CapsuleRecord r = rec;
    std::optional<CapsuleEvent> e = event;
    detail::prepare_update(r, e);
    std::lock_guard lock(mu_);
    auto it = capsules_.find(r.id);
    if (it == capsules_.end()) detail::throw_not_found(r.id);
    Entry& entry = it->second;
    if (entry.rec.version != r.version) detail::throw_changed_concurrently(r.id);
    if (!e && entry.rec.state != r.state) detail::throw_state_change_without_event(r.id);
    check_owner_session(r);
    r.version = entry.rec.version + 1;
    r.created_ms = entry.rec.created_ms;
    if (e) {
      e->seq = entry.events.empty() ? 1 : entry.events.back().seq + 1;
      entry.events.push_back(std::move(*e));
    }
    entry.rec = r;
    rec = std::move(r);
  }

  std::optional<CapsuleRecord> get(const std::string& id) override {
    std::lock_guard lock(mu_);
    auto it = capsules_.find(id);
    if (it == capsules_.end()) return std::nullopt;
    return it->second.rec;
  }

  std::vector<CapsuleRecord> list(const CapsuleFilter& filter) override {
    std::vector<CapsuleRecord> out;
    {
      std::lock_guard lock(mu_);
      for (const auto& [id, entry] : capsules_)
        if (matches(entry.rec, filter)) out.push_back(entry.rec);
    }
    std::sort(out.begin(), out.end(), newer);
    if (filter.limit > 0 && out.size() > static_cast<std::size_t>(filter.limit))
      out.resize(static_cast<std::size_t>(filter.limit));
    return out;
  }

  std::vector<CapsuleEvent> events(const std::string& id, int limit) override {
    std::lock_guard lock(mu_);
    auto it = capsules_.find(id);
    if (it == capsules_.end()) return {};
    const auto& all = it->second.events;
    // With a limit: the newest `limit`, oldest first.
    const std::size_t skip =
        limit > 0 && all.size() > static_cast<std::size_t>(limit) ? all.size() - static_cast<std::size_t>(limit) : 0;
    return {all.begin() + static_cast<std::ptrdiff_t>(skip), all.end()};
  }

  void purge(const std::string& id) override {
    std::lock_guard lock(mu_);
    auto it = capsules_.find(id);
    if (it == capsules_.end()) return;
    if (it->second.rec.state != CapsuleState::destroyed) detail::throw_not_destroyed(id);
    capsules_.erase(it);
  }

 private:
  struct Entry {
    CapsuleRecord rec;
    std::vector<CapsuleEvent> events;
  };

  // Under mu_: another live capsule already holds r's owner+session.
  void check_owner_session(const CapsuleRecord& r) const {
    if (!detail::reserves_owner_session(r)) return;
    for (const auto& [id, entry] : capsules_)
      if (id != r.id && detail::reserves_owner_session(entry.rec) && entry.rec.spec.owner == r.spec.owner &&
          entry.rec.spec.session == r.spec.session)
        detail::throw_owner_session_taken(r.spec.owner, r.spec.session);
  }

  std::mutex mu_;
  std::map<std::string, Entry> capsules_;
};

}  // namespace

std::unique_ptr<CapsuleRecords> make_memory_capsule_records() { return std::make_unique<MemoryCapsuleRecords>(); }

}  // namespace pw::capsules
