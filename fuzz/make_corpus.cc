// Writes the seed corpora of the fuzz targets: valid inputs made by the
// library itself (serialized proxies, store and connector configs, keys,
// envelopes of every codec compressed and not, Python-format data, multi
// keys, host patterns and multi configs), one file each, named seed_*. The
// output is deterministic (fixed keys, no random ids), so regenerating it
// changes nothing unless a wire format changed. Files a fuzzer found
// (regress_*) are not touched.
//
//   bazel run //fuzz:make_corpus -- $PWD/fuzz/corpus
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "flatbuffers/flatbuffers.h"
#include "proxystore/connectors/connector.h"
#include "proxystore/connectors/multi/multi_connector.h"
#include "proxystore/fuzz/fuzz_util.h"
#include "proxystore/fuzz/sample_generated.h"
#include "proxystore/serializer/serializer.h"
#include "proxystore/store/factory.h"
#include "proxystore/store/store_config.h"

namespace proxystore::fuzz {
namespace {

class CorpusWriter {
 public:
  explicit CorpusWriter(std::filesystem::path root) : root_(std::move(root)) {}

  void Write(absl::string_view target, absl::string_view name,
             absl::string_view bytes) {
    const std::filesystem::path dir = root_ / std::string(target);
    std::filesystem::create_directories(dir);
    const std::filesystem::path path =
        dir / absl::StrCat("seed_", std::string(name));
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) {
      std::fprintf(stderr, "cannot write %s\n", path.c_str());
      ok_ = false;
    }
    ++count_;
    total_ += bytes.size();
  }

  // Records a failed library call (the corpus would be incomplete).
  void Fail(absl::string_view what, const absl::Status& status) {
    std::fprintf(stderr, "%s: %s\n", std::string(what).c_str(),
                 status.ToString().c_str());
    ok_ = false;
  }

  bool ok() const { return ok_; }
  int count() const { return count_; }
  size_t total() const { return total_; }

 private:
  std::filesystem::path root_;
  bool ok_ = true;
  int count_ = 0;
  size_t total_ = 0;
};

// ----------------------------------------------------------- configs ---

ConnectorConfig LocalConfig() { return {"local", {}}; }
ConnectorConfig FileConfig() {
  return {"file",
          {{"directory", "/tmp/proxystore-fuzz/objects"}, {"clear", "true"}}};
}
ConnectorConfig RedisConfig() {
  return {"redis",
          {{"hostname", "127.0.0.1"},
           {"port", "6379"},
           {"prefix", "fuzz:"},
           {"pool_size", "4"}}};
}
ConnectorConfig ShmConfig() {
  return {"shm", {{"prefix", "psfuzz"}, {"max_size", "1048576"}}};
}

Policy SmallPolicy() {
  Policy p;
  p.priority = 2;
  p.max_size_bytes = 1024;
  return p;
}
Policy LargePolicy() {
  Policy p;
  p.priority = -1;
  p.host_patterns = {"node-[0-9]+", "login.*\\.cluster"};
  p.min_size_bytes = 1025;
  p.subset_tags = {"large", "gpu"};
  p.superset_tags = {"persistent"};
  return p;
}

// The config of a real MultiConnector (two dormant children: made by the
// library, needs no live child connector).
absl::StatusOr<ConnectorConfig> MultiConfig() {
  std::vector<MultiConnector::DormantEntry> dormant;
  dormant.push_back({"fast", LocalConfig(), SmallPolicy()});
  dormant.push_back({"big", FileConfig(), LargePolicy()});
  PROXYSTORE_ASSIGN_OR_RETURN(std::unique_ptr<MultiConnector> multi,
                              MultiConnector::Create({}, std::move(dormant)));
  return multi->Config();
}

StoreConfig MakeStoreConfig(std::string name, ConnectorConfig connector) {
  StoreConfig config;
  config.name = std::move(name);
  config.connector = std::move(connector);
  return config;
}

constexpr absl::string_view kObjectId = "3f2a9c0e5b7d41e8a6c2f0913d4b8e57";

void WriteConfigSeeds(CorpusWriter& w, const ConnectorConfig& multi) {
  StoreConfig local = MakeStoreConfig("fuzz-local", LocalConfig());
  w.Write("config", "store_local", local.Serialize());
  StoreConfig file = MakeStoreConfig("fuzz-file", FileConfig());
  file.cache_size = 0;
  file.metrics = true;
  file.compress = true;
  file.compress_threshold = 1024;
  w.Write("config", "store_file", file.Serialize());
  StoreConfig redis = MakeStoreConfig("fuzz-redis", RedisConfig());
  redis.serializer = "fuzz-serializer";
  redis.deserializer = "fuzz-deserializer";
  redis.python_format = true;
  redis.populate_target = true;
  redis.auto_register = true;
  w.Write("config", "store_redis", redis.Serialize());
  w.Write("config", "store_multi",
          MakeStoreConfig("fuzz-multi", multi).Serialize());

  w.Write("config", "connector_local", LocalConfig().Serialize());
  w.Write("config", "connector_file", FileConfig().Serialize());
  w.Write("config", "connector_redis", RedisConfig().Serialize());
  w.Write("config", "connector_shm", ShmConfig().Serialize());
  w.Write("config", "connector_multi", multi.Serialize());

  w.Write("config", "key_object_id", Key(std::string(kObjectId)).Serialize());
  w.Write("config", "key_multi",
          MultiKey{"fast", Key(std::string(kObjectId))}.Encode().Serialize());
}

// ------------------------------------------------------------ proxies ---

void WriteProxySeeds(CorpusWriter& w, const ConnectorConfig& multi) {
  const Key key{std::string(kObjectId)};
  {
    FactoryData d{key, MakeStoreConfig("fuzz-local", LocalConfig()), false, "",
                  std::string(TypeName<std::string>())};
    w.Write("proxy", "local_string", d.Serialize());
  }
  {
    StoreConfig config = MakeStoreConfig("fuzz-file", FileConfig());
    config.cache_size = 0;
    FactoryData d{key, config, true, "", std::string(TypeName<int32_t>())};
    w.Write("proxy", "file_int32_evict", d.Serialize());
  }
  {
    StoreConfig config = MakeStoreConfig("fuzz-multi", multi);
    config.metrics = true;
    config.compress = true;
    FactoryData d{MultiKey{"big", key}.Encode(), config, false,
                  "fuzz-deserializer",
                  std::string(TypeName<std::vector<double>>())};
    w.Write("proxy", "multi_vector_double", d.Serialize());
  }
  {
    StoreConfig config = MakeStoreConfig("fuzz-redis", RedisConfig());
    config.python_format = true;
    config.populate_target = true;
    config.auto_register = true;
    FactoryData d{key, config, false, "", std::string(TypeName<Pod>())};
    w.Write("proxy", "redis_pod", d.Serialize());
  }
  {
    StoreConfig config = MakeStoreConfig("fuzz-shm", ShmConfig());
    config.serializer = "fuzz-serializer";
    config.deserializer = "fuzz-deserializer";
    FactoryData d{key, config, true, "fuzz-deserializer",
                  std::string(TypeName<std::string>())};
    w.Write("proxy", "shm_string", d.Serialize());
  }
}

// --------------------------------------------------------- envelopes ---

SampleBuffer MakeSample(bool big) {
  flatbuffers::FlatBufferBuilder fbb;
  auto inner_name = fbb.CreateString("inner");
  SampleBuilder inner(fbb);
  inner.add_name(inner_name);
  inner.add_flag(true);
  auto next = inner.Finish();

  std::vector<int32_t> samples = {1, -2, 3, 1 << 30};
  std::vector<flatbuffers::Offset<flatbuffers::String>> tags = {
      fbb.CreateString("gpu"), fbb.CreateString("large")};
  std::vector<flatbuffers::Offset<Child>> children = {
      CreateChild(fbb, fbb.CreateString("a"), 7),
      CreateChild(fbb, fbb.CreateString("b"), -7)};
  std::vector<uint8_t> blob(big ? 2048 : 8, 0x5a);
  auto name = fbb.CreateString("sample");
  auto samples_off = fbb.CreateVector(samples);
  auto tags_off = fbb.CreateVector(tags);
  auto children_off = fbb.CreateVector(children);
  auto blob_off = fbb.CreateVector(blob);
  auto payload = CreateChild(fbb, fbb.CreateString("payload"), 42);
  Vec2 pos(1.5, -2.5);
  SampleBuilder b(fbb);
  b.add_name(name);
  b.add_pos(&pos);
  b.add_samples(samples_off);
  b.add_tags(tags_off);
  b.add_children(children_off);
  b.add_next(next);
  b.add_blob(blob_off);
  b.add_payload_type(Payload::Child);
  b.add_payload(payload.Union());
  b.add_flag(true);
  fbb.Finish(b.Finish());
  return SampleBuffer::FromBuilder(std::move(fbb));
}

template <typename T>
void WriteEnvelope(CorpusWriter& w, absl::string_view name, const T& value,
                   bool compress) {
  SerializeOptions options;
  options.compress = compress;
  options.compress_threshold = 1;
  absl::StatusOr<SharedBytes> bytes = Serialize(value, options);
  if (!bytes.ok()) return w.Fail(name, bytes.status());
  absl::StatusOr<EnvelopeInfo> info = InspectEnvelope(*bytes);
  if (!info.ok()) return w.Fail(name, info.status());
  if (info->compressed != compress) {
    return w.Fail(name, absl::InternalError(compress ? "did not compress"
                                                     : "compressed"));
  }
  w.Write("serializer", name, bytes->view());
}

template <typename T>
void WritePython(CorpusWriter& w, absl::string_view name, const T& value) {
  SerializeOptions options;
  options.format = SerializeOptions::Format::kProxyStorePython;
  absl::StatusOr<SharedBytes> bytes = Serialize(value, options);
  if (!bytes.ok()) return w.Fail(name, bytes.status());
  w.Write("serializer", name, bytes->view());
}

void WriteSerializerSeeds(CorpusWriter& w) {
  const std::string text = "hello, proxystore";
  std::string long_text;
  for (int i = 0; i < 100; ++i) absl::StrAppend(&long_text, "proxy ", i, "; ");
  WriteEnvelope(w, "string", text, false);
  WriteEnvelope(w, "string_lz4", long_text, true);
  WriteEnvelope(w, "string_empty", std::string(), false);
  WritePython(w, "python_str", std::string("h\xc3\xa9llo"));

  const std::string binary("\x00\x01\xfe\xff\x80 bytes", 10);
  WriteEnvelope(w, "shared_bytes", SharedBytes::Copy(binary), false);
  WriteEnvelope(w, "shared_bytes_lz4",
                SharedBytes::Copy(std::string(1500, '\x07')), true);
  WritePython(w, "python_bytes", SharedBytes::Copy(binary));

  WriteEnvelope(w, "byte_vector",
                std::vector<uint8_t>(binary.begin(), binary.end()), false);
  std::vector<uint8_t> ramp(1024);
  for (size_t i = 0; i < ramp.size(); ++i) ramp[i] = static_cast<uint8_t>(i);
  WriteEnvelope(w, "byte_vector_lz4", ramp, true);

  WriteEnvelope(w, "bool", true, false);
  WriteEnvelope(w, "int32", int32_t{-123456}, false);
  WriteEnvelope(w, "double", 3.5, false);
  WriteEnvelope(w, "double_nan", std::nan("0x5"), false);

  const Pod pod{7, -1, 0.25, {'p', 'r', 'o', 'x', 'y', 0, 0, 1}};
  WriteEnvelope(w, "pod", pod, false);
  WriteEnvelope(w, "pod_lz4", Pod{0, 0, 0.0, {}}, true);

  WriteEnvelope(w, "vector_double", std::vector<double>{1.0, -0.0, 1e300},
                false);
  std::vector<double> wave(256);
  for (size_t i = 0; i < wave.size(); ++i) wave[i] = static_cast<double>(i % 4);
  WriteEnvelope(w, "vector_double_lz4", wave, true);

  WriteEnvelope(w, "flatbuffer", MakeSample(false), false);
  WriteEnvelope(w, "flatbuffer_lz4", MakeSample(true), true);
  // The bare FlatBuffer, for FlatBuffer<Sample>::FromBytes.
  w.Write("serializer", "flatbuffer_raw", MakeSample(false).bytes().view());

  // Python identifiers the library reads but does not write (ProxyStore
  // 0.6's bytes/str, and a pickle, which is refused).
  w.Write("serializer", "python_v06_bytes", absl::string_view("01\nold", 6));
  w.Write("serializer", "python_v06_str", absl::string_view("02\nold", 6));
  w.Write("serializer", "python_pickle",
          absl::string_view("PK\n\x80\x04\x95\x05\x00\x00\x00", 10));
}

// -------------------------------------------------------------- multi ---

void WriteMultiSeeds(CorpusWriter& w, const ConnectorConfig& multi) {
  // Host patterns: LargePolicy's, and one with a counted group.
  w.Write("multi", "pattern_node", LargePolicy().host_patterns[0]);
  w.Write("multi", "pattern_login", LargePolicy().host_patterns[1]);
  w.Write("multi", "pattern_counted", "(x|y){2,3}\\d+");

  // Multi configs: MultiConfig() (a "local" and a "file" child), and the
  // same inside another multi, next to a "local" child.
  w.Write("multi", "config_multi", multi.Serialize());
  const ConnectorConfig nested{
      "multi",
      {},
      {{"near", LocalConfig(), SmallPolicy()}, {"outer", multi, Policy()}}};
  w.Write("multi", "config_nested", nested.Serialize());

  const Key key{std::string(kObjectId)};
  w.Write("multi", "key_fast", MultiKey{"fast", key}.Encode().Serialize());
  w.Write(
      "multi", "key_nested",
      MultiKey{"outer:1", MultiKey{"big", key}.Encode()}.Encode().Serialize());
  w.Write("multi", "key_long_name",
          MultiKey{std::string(MultiKey::kMaxNameSize, 'n'), key}
              .Encode()
              .Serialize());
}

}  // namespace
}  // namespace proxystore::fuzz

int main(int argc, char** argv) {
  using proxystore::fuzz::CorpusWriter;
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTPUT_DIR (e.g. $PWD/fuzz/corpus)\n",
                 argv[0]);
    return 2;
  }
  CorpusWriter w{std::filesystem::path(argv[1])};
  absl::StatusOr<proxystore::ConnectorConfig> multi =
      proxystore::fuzz::MultiConfig();
  if (!multi.ok()) {
    w.Fail("MultiConfig", multi.status());
    return 1;
  }
  proxystore::fuzz::WriteConfigSeeds(w, *multi);
  proxystore::fuzz::WriteProxySeeds(w, *multi);
  proxystore::fuzz::WriteSerializerSeeds(w);
  proxystore::fuzz::WriteMultiSeeds(w, *multi);
  std::printf("wrote %d seed files, %zu bytes, under %s\n", w.count(),
              w.total(), argv[1]);
  return w.ok() ? 0 : 1;
}
