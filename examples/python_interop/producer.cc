// A C++ producer for Python consumers: puts a str, bytes and a NumPy array
// into a directory that Python ProxyStore reads (file connector, layout
// "proxystore-python"; Python's serialize() format) and prints one proxy
// reference per object, one a line, for consumer.py (or any Python program
// with interop/python/proxystore_reference.py) to resolve.
//
//   producer <directory> | python3 consumer.py
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "proxystore/connectors/connector.h"
#include "proxystore/interop/proxy_reference.h"
#include "proxystore/store/store.h"

namespace {

using proxystore::interop::kNumpyCodecName;
using proxystore::interop::ReferenceFormat;
using proxystore::interop::WriteProxyReference;

absl::Status Produce(const std::string& directory) {
  PROXYSTORE_ASSIGN_OR_RETURN(
      std::unique_ptr<proxystore::Connector> connector,
      proxystore::MakeConnector(
          {"file",
           {{"directory", directory},
            {"layout", "proxystore-python"},
            // The objects outlive this process (the file connector clears
            // its directory on Close by default, as Python's does).
            {"clear", "false"}}}));
  proxystore::StoreOptions options;
  options.python_format = true;  // str and bytes as Python writes them
  PROXYSTORE_ASSIGN_OR_RETURN(
      std::shared_ptr<proxystore::Store> store,
      proxystore::Store::Create("simulation", std::move(connector), options));

  PROXYSTORE_ASSIGN_OR_RETURN(
      proxystore::Key text, store->Put(std::string("state after 1000 steps")));
  PROXYSTORE_ASSIGN_OR_RETURN(
      proxystore::Key raw,
      store->Put(proxystore::SharedBytes::Copy(std::string("\x01\x02\x03"))));
  std::vector<double> field(1000);
  for (size_t i = 0; i < field.size(); ++i) field[i] = 0.5 * i;
  PROXYSTORE_ASSIGN_OR_RETURN(
      proxystore::SerializerFn<std::vector<double>> numpy,
      proxystore::FindSerializer<std::vector<double>>(kNumpyCodecName));
  PROXYSTORE_ASSIGN_OR_RETURN(proxystore::Key array,
                              store->Put(field, {.serializer = numpy}));

  for (const auto& [key, format] :
       {std::pair{text, ReferenceFormat::kStr},
        std::pair{raw, ReferenceFormat::kBytes},
        std::pair{array, ReferenceFormat::kNumpy}}) {
    PROXYSTORE_ASSIGN_OR_RETURN(
        std::string reference,
        WriteProxyReference(store->Config(), key, format));
    std::cout << reference << "\n";
  }
  return store->Close();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: producer <directory>\n";
    return 2;
  }
  if (absl::Status s = Produce(argv[1]); !s.ok()) {
    std::cerr << "producer: " << s << "\n";
    return 1;
  }
  return 0;
}
