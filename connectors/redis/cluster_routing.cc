#include "proxystore/connectors/redis/cluster_routing.h"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "proxystore/base/status.h"

namespace proxystore::redis_cluster {
namespace {

// Redis's crc16tab, computed: entry i is the CRC of the byte i alone, most
// significant bit first.
constexpr std::array<uint16_t, 256> MakeCrc16Table() {
  std::array<uint16_t, 256> table{};
  for (int i = 0; i < 256; ++i) {
    uint16_t crc = static_cast<uint16_t>(i << 8);
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 0x8000) != 0 ? static_cast<uint16_t>((crc << 1) ^ 0x1021)
                                : static_cast<uint16_t>(crc << 1);
    }
    table[i] = crc;
  }
  return table;
}
constexpr std::array<uint16_t, 256> kCrc16Table = MakeCrc16Table();
// Entries of crc16tab in Redis's src/crc16.c.
static_assert(kCrc16Table[0x00] == 0x0000 && kCrc16Table[0x01] == 0x1021 &&
              kCrc16Table[0x0f] == 0xf1ef && kCrc16Table[0x10] == 0x1231 &&
              kCrc16Table[0x80] == 0x9188 && kCrc16Table[0x82] == 0xb1ca &&
              kCrc16Table[0xff] == 0x1ef0);

constexpr size_t kNodeIdLength = 40;
// How much of an untrusted string a message quotes.
constexpr size_t kQuoteBytes = 64;

// `text` as a decimal number in [0, max]: ASCII digits only (no sign, no
// spaces), at most 5 of them, which bounds the value before any overflow.
std::optional<uint32_t> ParseSmallDecimal(absl::string_view text,
                                          uint32_t max) {
  if (text.empty() || text.size() > 5) return std::nullopt;
  uint32_t value = 0;
  for (const char ch : text) {
    if (ch < '0' || ch > '9') return std::nullopt;
    value = value * 10 + static_cast<uint32_t>(ch - '0');
  }
  if (value > max) return std::nullopt;
  return value;
}

// Sets endpoint.kind and endpoint.host from a host as Redis writes it ("" and
// "?" are special, see HostKind). A real host is at most kMaxHostLength bytes
// of letters, digits, '.', '-', '_', ':' (IPv6) and '%' (IPv6 zone): nothing
// that could read as another part of an address or a message.
absl::Status ParseHost(absl::string_view text, Endpoint& endpoint) {
  endpoint.host.clear();
  if (text.empty()) {
    endpoint.kind = HostKind::kSameHost;
    return absl::OkStatus();
  }
  if (text == "?") {
    endpoint.kind = HostKind::kUnknown;
    return absl::OkStatus();
  }
  if (text.size() > SlotMap::kMaxHostLength) {
    return absl::DataLossError(absl::StrCat(
        "host of ", text.size(), " bytes; at most ", SlotMap::kMaxHostLength));
  }
  for (const char ch : text) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(ch)) && ch != '.' &&
        ch != '-' && ch != '_' && ch != ':' && ch != '%') {
      return absl::DataLossError(absl::StrCat(
          "host ", QuoteForMessage(text, kQuoteBytes),
          " has a character that is in no hostname or IP address"));
    }
  }
  endpoint.kind = HostKind::kGiven;
  endpoint.host = std::string(text);
  return absl::OkStatus();
}

// --- Reply helpers. hiredis builds every array with its element storage
// and every string with its bytes; the null checks are for trees built by
// hand.

const char* TypeName(const redisReply* r) {
  if (r == nullptr) return "a null element";
  switch (r->type) {
    case REDIS_REPLY_STRING:
      return "a string";
    case REDIS_REPLY_ARRAY:
      return "an array";
    case REDIS_REPLY_INTEGER:
      return "an integer";
    case REDIS_REPLY_NIL:
      return "nil";
    case REDIS_REPLY_STATUS:
      return "a status";
    case REDIS_REPLY_ERROR:
      return "an error";
  }
  return "of an unknown type";
}

bool IsArray(const redisReply* r) {
  return r != nullptr && r->type == REDIS_REPLY_ARRAY &&
         (r->elements == 0 || r->element != nullptr);
}
bool IsString(const redisReply* r) {
  return r != nullptr && r->type == REDIS_REPLY_STRING &&
         (r->len == 0 || r->str != nullptr);
}
absl::string_view StringOf(const redisReply* r) {
  return r->len == 0 ? absl::string_view() : absl::string_view(r->str, r->len);
}

absl::Status NotA(absl::string_view wanted, const redisReply* r) {
  return absl::DataLossError(
      absl::StrCat("is ", TypeName(r), ", not ", wanted));
}

absl::StatusOr<uint16_t> IntegerIn(const redisReply* r, int64_t min,
                                   int64_t max) {
  if (r == nullptr || r->type != REDIS_REPLY_INTEGER) {
    return NotA("an integer", r);
  }
  if (r->integer < min || r->integer > max) {
    return absl::DataLossError(
        absl::StrCat(r->integer, " is not in [", min, ", ", max, "]"));
  }
  return static_cast<uint16_t>(r->integer);
}

// A node's metadata (Redis 7): an array of key, value pairs whose keys are
// strings and values strings, integers or nil; bounded, otherwise ignored.
absl::Status CheckMetadata(const redisReply* r) {
  if (!IsArray(r)) return NotA("an array", r);
  if (r->elements > SlotMap::kMaxMetadataElements) {
    return absl::DataLossError(absl::StrCat(r->elements, " elements; at most ",
                                            SlotMap::kMaxMetadataElements));
  }
  if (r->elements % 2 != 0) {
    return absl::DataLossError(absl::StrCat(
        r->elements, " elements, an odd number: not key, value pairs"));
  }
  for (size_t i = 0; i < r->elements; ++i) {
    const redisReply* e = r->element[i];
    const bool is_key = i % 2 == 0;
    const bool ok_type =
        IsString(e) ||
        (!is_key && e != nullptr &&
         (e->type == REDIS_REPLY_INTEGER || e->type == REDIS_REPLY_NIL));
    if (!ok_type) {
      return Annotate(
          NotA(is_key ? "a string" : "a string, an integer or nil", e),
          absl::StrCat("element ", i));
    }
    if (IsString(e) && e->len > SlotMap::kMaxMetadataStringLength) {
      return absl::DataLossError(
          absl::StrCat("element ", i, ": a string of ", e->len,
                       " bytes; at most ", SlotMap::kMaxMetadataStringLength));
    }
  }
  return absl::OkStatus();
}

}  // namespace

namespace cluster_routing_internal {

uint16_t Crc16(absl::string_view data) {
  uint16_t crc = 0;
  for (const char ch : data) {
    crc = static_cast<uint16_t>(
        (crc << 8) ^
        kCrc16Table[((crc >> 8) ^ static_cast<unsigned char>(ch)) & 0xFF]);
  }
  return crc;
}

}  // namespace cluster_routing_internal

uint16_t KeySlot(absl::string_view key) {
  const size_t open = key.find('{');
  if (open != absl::string_view::npos) {
    const size_t close = key.find('}', open + 1);
    // "{}" (nothing between) is no tag: the whole key is hashed.
    if (close != absl::string_view::npos && close > open + 1) {
      key = key.substr(open + 1, close - open - 1);
    }
  }
  return static_cast<uint16_t>(cluster_routing_internal::Crc16(key) &
                               (kNumSlots - 1));
}

std::string Endpoint::ToString() const {
  switch (kind) {
    case HostKind::kGiven:
      if (host.find(':') != std::string::npos) {
        return absl::StrCat("[", host, "]:", port);
      }
      return absl::StrCat(host, ":", port);
    case HostKind::kSameHost:
      return absl::StrCat("<same host>:", port);
    case HostKind::kUnknown:
      return absl::StrCat("<unknown host>:", port);
  }
  return absl::StrCat("<?>:", port);
}

// Builds a SlotMap from a CLUSTER SLOTS reply (see FromClusterSlots). A
// friend of SlotMap, so that the map stays immutable to everyone else.
class SlotMapParser {
 public:
  static absl::StatusOr<SlotMap> Parse(const redisReply* reply) {
    if (reply == nullptr) {
      return absl::InvalidArgumentError("CLUSTER SLOTS: null reply");
    }
    if (reply->type == REDIS_REPLY_ERROR) {
      return absl::FailedPreconditionError(absl::StrCat(
          "CLUSTER SLOTS failed: ",
          QuoteForMessage(reply->str == nullptr
                              ? absl::string_view()
                              : absl::string_view(reply->str, reply->len),
                          256)));
    }
    if (!IsArray(reply)) {
      return Annotate(NotA("an array", reply), "malformed CLUSTER SLOTS reply");
    }
    if (reply->elements > SlotMap::kMaxRanges) {
      return absl::DataLossError(
          absl::StrCat("malformed CLUSTER SLOTS reply: ", reply->elements,
                       " slot ranges; at most ", SlotMap::kMaxRanges));
    }
    SlotMapParser parser;
    parser.map_.ranges_.reserve(reply->elements);
    for (size_t i = 0; i < reply->elements; ++i) {
      const absl::Status status = parser.ParseRange(reply->element[i]);
      if (!status.ok()) {
        return Annotate(
            status, absl::StrCat("malformed CLUSTER SLOTS reply: range ", i));
      }
    }
    parser.Finish();
    return std::move(parser.map_);
  }

 private:
  enum class Role { kMaster, kReplica };

  SlotMapParser() = default;

  // One [first, last, master, replica...] element; appended to ranges_.
  absl::Status ParseRange(const redisReply* r) {
    if (!IsArray(r)) return NotA("an array", r);
    if (r->elements < 3) {
      return absl::DataLossError(
          absl::StrCat(r->elements,
                       " elements; at least 3 (first slot, last slot, "
                       "master)"));
    }
    if (r->elements - 3 > SlotMap::kMaxReplicasPerRange) {
      return absl::DataLossError(absl::StrCat(r->elements - 3,
                                              " replicas; at most ",
                                              SlotMap::kMaxReplicasPerRange));
    }
    const absl::StatusOr<uint16_t> first =
        IntegerIn(r->element[0], 0, kNumSlots - 1);
    if (!first.ok()) return Annotate(first.status(), "first slot");
    const absl::StatusOr<uint16_t> last =
        IntegerIn(r->element[1], 0, kNumSlots - 1);
    if (!last.ok()) return Annotate(last.status(), "last slot");
    if (*first > *last) {
      return absl::DataLossError(
          absl::StrCat("first slot ", *first, " is after last slot ", *last));
    }
    SlotMap::Range range;
    range.slots = {*first, *last};
    for (uint32_t s = *first; s <= *last; ++s) {
      const uint16_t other = map_.range_of_slot_[s];
      if (other != SlotMap::kNoRange) {
        const SlotRange& o = map_.ranges_[other].slots;
        return absl::DataLossError(absl::StrCat("slots ", *first, "-", *last,
                                                " overlap slots ", o.first, "-",
                                                o.last, " of range ", other));
      }
    }

    absl::StatusOr<const Node*> master =
        ParseNode(r->element[2], Role::kMaster);
    if (!master.ok()) return Annotate(master.status(), "master");
    range.master = *master;
    range.replicas.reserve(r->elements - 3);
    for (size_t i = 3; i < r->elements; ++i) {
      const std::string where = absl::StrCat("replica ", i - 2);
      absl::StatusOr<const Node*> replica =
          ParseNode(r->element[i], Role::kReplica);
      if (!replica.ok()) return Annotate(replica.status(), where);
      if (std::find(range.replicas.begin(), range.replicas.end(), *replica) !=
          range.replicas.end()) {
        return absl::DataLossError(
            absl::StrCat(where, ": node ", (*replica)->id, " is listed twice"));
      }
      range.replicas.push_back(*replica);
    }

    // ranges_ has room for every element (reserved), and the indices fit
    // kNoRange's type: at most kMaxRanges < kNoRange.
    const auto index = static_cast<uint16_t>(map_.ranges_.size());
    for (uint32_t s = *first; s <= *last; ++s) map_.range_of_slot_[s] = index;
    map_.ranges_.push_back(std::move(range));
    return absl::OkStatus();
  }

  // One [host, port, id] or [host, port, id, metadata] node.
  absl::StatusOr<const Node*> ParseNode(const redisReply* r, Role role) {
    if (!IsArray(r)) return NotA("an array", r);
    if (r->elements < 3 || r->elements > 4) {
      return absl::DataLossError(absl::StrCat(
          r->elements, " elements; 3 (host, port, id) or 4 (and metadata)"));
    }
    Node node;
    const redisReply* host = r->element[0];
    if (host != nullptr && host->type == REDIS_REPLY_NIL) {
      // Redis 7, cluster-preferred-endpoint-type unknown-endpoint.
      node.endpoint.kind = HostKind::kSameHost;
    } else if (IsString(host)) {
      PROXYSTORE_RETURN_IF_ERROR(
          Annotate(ParseHost(StringOf(host), node.endpoint), "host"));
    } else {
      return Annotate(NotA("a string or nil", host), "host");
    }
    const absl::StatusOr<uint16_t> port = IntegerIn(r->element[1], 1, 65535);
    if (!port.ok()) return Annotate(port.status(), "port");
    node.endpoint.port = *port;

    const redisReply* id = r->element[2];
    if (!IsString(id)) return Annotate(NotA("a string", id), "id");
    const absl::string_view id_text = StringOf(id);
    const bool id_ok =
        id_text.size() == kNodeIdLength &&
        std::all_of(id_text.begin(), id_text.end(), [](char ch) {
          return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z');
        });
    if (!id_ok) {
      return absl::DataLossError(
          absl::StrCat("id ", QuoteForMessage(id_text, kQuoteBytes), " is not ",
                       kNodeIdLength, " characters [0-9a-z]"));
    }
    node.id = std::string(id_text);
    if (r->elements == 4) {
      PROXYSTORE_RETURN_IF_ERROR(
          Annotate(CheckMetadata(r->element[3]), "metadata"));
    }
    return Intern(std::move(node), role);
  }

  // The one Node for node.id, made on first sight; later sightings must
  // agree on the endpoint and the role.
  absl::StatusOr<const Node*> Intern(Node node, Role role) {
    const auto it = by_id_.find(node.id);
    if (it != by_id_.end()) {
      const auto& [known, known_role] = it->second;
      if (known->endpoint != node.endpoint) {
        return absl::DataLossError(absl::StrCat(
            "node ", node.id, " is at ", node.endpoint.ToString(),
            " here but at ", known->endpoint.ToString(), " before"));
      }
      if (known_role != role) {
        return absl::DataLossError(absl::StrCat(
            "node ", node.id, " is listed both as a master and as a replica"));
      }
      return known;
    }
    if (map_.nodes_.size() >= SlotMap::kMaxNodes) {
      return absl::DataLossError(
          absl::StrCat("more than ", SlotMap::kMaxNodes, " distinct nodes"));
    }
    const Node* added = &map_.nodes_.emplace_back(std::move(node));
    by_id_.emplace(added->id, std::make_pair(added, role));
    return added;
  }

  // Masters() and Uncovered(), from the ranges.
  void Finish() {
    std::vector<size_t> order(map_.ranges_.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::sort(order.begin(), order.end(), [this](size_t a, size_t b) {
      return map_.ranges_[a].slots.first < map_.ranges_[b].slots.first;
    });
    absl::flat_hash_map<const Node*, size_t> master_index;
    for (const size_t i : order) {
      const SlotMap::Range& range = map_.ranges_[i];
      const auto [it, added] =
          master_index.emplace(range.master, map_.masters_.size());
      if (added) map_.masters_.push_back({range.master, {}});
      map_.masters_[it->second].ranges.push_back(range.slots);
    }
    int s = 0;
    while (s < kNumSlots) {
      if (map_.range_of_slot_[s] != SlotMap::kNoRange) {
        ++s;
        continue;
      }
      const int begin = s;
      while (s < kNumSlots && map_.range_of_slot_[s] == SlotMap::kNoRange) ++s;
      map_.uncovered_.push_back(
          {static_cast<uint16_t>(begin), static_cast<uint16_t>(s - 1)});
    }
  }

  SlotMap map_;
  absl::flat_hash_map<std::string, std::pair<const Node*, Role>> by_id_;
};

SlotMap::SlotMap() : range_of_slot_(kNumSlots, kNoRange) {}

absl::StatusOr<SlotMap> SlotMap::FromClusterSlots(const redisReply* reply) {
  return SlotMapParser::Parse(reply);
}

const Node* SlotMap::MasterFor(uint16_t slot) const {
  // size(): a moved-from map has no table.
  if (slot >= range_of_slot_.size()) return nullptr;
  const uint16_t r = range_of_slot_[slot];
  return r == kNoRange ? nullptr : ranges_[r].master;
}

absl::Span<const Node* const> SlotMap::Replicas(uint16_t slot) const {
  if (slot >= range_of_slot_.size()) return {};
  const uint16_t r = range_of_slot_[slot];
  if (r == kNoRange) return {};
  return ranges_[r].replicas;
}

absl::StatusOr<Redirect> ParseRedirect(absl::string_view error) {
  const size_t code_end = error.find(' ');
  const absl::string_view code = error.substr(0, code_end);
  Redirect out;
  if (code == "MOVED") {
    out.kind = Redirect::Kind::kMoved;
  } else if (code == "ASK") {
    out.kind = Redirect::Kind::kAsk;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "not a MOVED or ASK redirect: ", QuoteForMessage(error, kQuoteBytes)));
  }
  const auto malformed = [&](absl::string_view what) {
    return absl::DataLossError(absl::StrCat("malformed ", code, " redirect ",
                                            QuoteForMessage(error, 128), ": ",
                                            what));
  };
  if (error.size() > kMaxRedirectLength) {
    return malformed(
        absl::StrCat("longer than ", kMaxRedirectLength, " bytes"));
  }
  if (code_end == absl::string_view::npos) return malformed("no slot");
  const absl::string_view rest = error.substr(code_end + 1);
  const size_t slot_end = rest.find(' ');
  if (slot_end == absl::string_view::npos) {
    return malformed("no endpoint after the slot");
  }
  const absl::string_view slot_text = rest.substr(0, slot_end);
  const absl::string_view endpoint_text = rest.substr(slot_end + 1);
  if (endpoint_text.find(' ') != absl::string_view::npos) {
    return malformed("more than a slot and an endpoint after the code");
  }
  const std::optional<uint32_t> slot =
      ParseSmallDecimal(slot_text, kNumSlots - 1);
  if (!slot.has_value()) {
    return malformed(absl::StrCat("slot ", QuoteForMessage(slot_text),
                                  " is not a number in [0, ", kNumSlots - 1,
                                  "]"));
  }
  out.slot = static_cast<uint16_t>(*slot);
  // The last ':': IPv6 hosts are printed without brackets.
  const size_t colon = endpoint_text.rfind(':');
  if (colon == absl::string_view::npos) {
    return malformed("no ':' before a port");
  }
  const absl::string_view port_text = endpoint_text.substr(colon + 1);
  const std::optional<uint32_t> port = ParseSmallDecimal(port_text, 65535);
  if (!port.has_value() || *port == 0) {
    return malformed(absl::StrCat("port ", QuoteForMessage(port_text),
                                  " is not a number in [1, 65535]"));
  }
  out.endpoint.port = static_cast<uint16_t>(*port);
  const absl::Status host =
      ParseHost(endpoint_text.substr(0, colon), out.endpoint);
  if (!host.ok()) return malformed(host.message());
  return out;
}

ClusterError ClassifyError(absl::string_view error) {
  const absl::string_view code = error.substr(0, error.find(' '));
  if (code == "MOVED") return ClusterError::kMoved;
  if (code == "ASK") return ClusterError::kAsk;
  if (code == "TRYAGAIN") return ClusterError::kTryAgain;
  if (code == "CLUSTERDOWN") return ClusterError::kClusterDown;
  if (code == "LOADING") return ClusterError::kLoading;
  return ClusterError::kOther;
}

}  // namespace proxystore::redis_cluster
