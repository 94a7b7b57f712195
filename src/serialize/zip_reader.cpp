#include "serialize/zip_reader.h"

#include <zip.h>

#include "util/budgets.h"
#include "util/errors.h"

namespace resnet {
namespace {

std::string zip_problem(zip_error_t* error) {
  std::string why = zip_error_strerror(error);
  zip_error_fini(error);
  return why;
}

}  // namespace

struct ZipReader::Archive {
  zip_t* zip = nullptr;
  ~Archive() {
    if (zip) zip_discard(zip);
  }
};

ZipReader::~ZipReader() = default;

ZipReader::ZipReader(const std::string& bytes) : zip_(std::make_unique<Archive>()) {
  zip_error_t error;
  zip_error_init(&error);
  zip_source_t* source = zip_source_buffer_create(bytes.data(), bytes.size(), 0, &error);
  if (!source) throw InputError("not a readable PyTorch zip file (" + zip_problem(&error) + ")");
  zip_->zip = zip_open_from_source(source, ZIP_RDONLY | ZIP_CHECKCONS, &error);
  if (!zip_->zip) {
    zip_source_free(source);
    throw InputError("not a readable PyTorch zip file (" + zip_problem(&error) + ")");
  }
  zip_error_fini(&error);
  const zip_int64_t count = zip_get_num_entries(zip_->zip, 0);
  if (count <= 0) throw InputError("an empty zip file");
  for (zip_int64_t i = 0; i < count; ++i) {
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(zip_->zip, static_cast<zip_uint64_t>(i), ZIP_FL_ENC_RAW, &st) != 0 || !st.name ||
        (st.valid & (ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE | ZIP_STAT_COMP_METHOD)) !=
            (ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE | ZIP_STAT_COMP_METHOD))
      throw InputError("zip entry " + std::to_string(i) + " cannot be read");
    const std::string full = st.name;
    const size_t slash = full.find('/');
    if (i == 0) folder_ = full.substr(0, slash);
    if (slash == std::string::npos || full.compare(0, slash, folder_) != 0 || slash + 1 == full.size())
      throw InputError("zip record '" + printable(full.substr(0, 200)) + "' is not inside the archive's folder '" +
                       printable(folder_.substr(0, 200)) + "/'");
    const std::string name = full.substr(slash + 1);
    if (st.comp_method != ZIP_CM_STORE && st.comp_method != ZIP_CM_DEFLATE)
      throw InputError("zip record " + excerpt(name, 60) + ": compression method " + std::to_string(st.comp_method) +
                       " (only stored and deflated records are read)");
    if (st.comp_method == ZIP_CM_STORE && st.size != st.comp_size)
      throw InputError("zip record " + excerpt(name, 60) + ": a stored record whose sizes differ");
    if (!index_.emplace(name, Entry{static_cast<uint64_t>(i), st.size, st.comp_size, st.comp_method}).second)
      throw InputError("zip record " + excerpt(name, 60) + " appears twice");
    names_.push_back(name);
  }
}

const ZipReader::Entry& ZipReader::entry(const std::string& name) const {
  const auto it = index_.find(name);
  if (it == index_.end()) throw InputError("no zip record " + excerpt(name, 60));
  return it->second;
}

uint64_t ZipReader::size(const std::string& name) const { return entry(name).size; }

std::string ZipReader::read(const std::string& name, uint64_t max_bytes) {
  const Entry& e = entry(name);
  if (e.size > max_bytes)
    throw InputError("zip record " + excerpt(name, 60) + " claims " + std::to_string(e.size) +
                     " bytes, more than the " + std::to_string(max_bytes) + " such a record may have");
  std::string out(e.size, '\0');
  read_into(name, out.data(), e.size);
  return out;
}

void ZipReader::read_into(const std::string& name, void* out, uint64_t size) {
  const Entry& e = entry(name);
  const std::string shown = excerpt(name, 60);
  if (e.size != size)
    throw InputError("zip record " + shown + " holds " + std::to_string(e.size) + " bytes, not " +
                     std::to_string(size));
  // Both bounds come before any allocation or inflation.
  if (e.size > budget_)
    throw InputError("zip record " + shown + " claims " + std::to_string(e.size) + " bytes, more than the " +
                     std::to_string(kMaxZipBytes) + " this reader unpacks from one file");
  if (e.method == ZIP_CM_DEFLATE && e.size / budget::kDeflateMaxRatio > e.compressed + 1)
    throw InputError("zip record " + shown + " claims " + std::to_string(e.size) + " bytes from " +
                     std::to_string(e.compressed) + " deflated ones, more than deflate can produce");
  budget_ -= e.size;
  zip_file_t* file = zip_fopen_index(zip_->zip, e.index, 0);
  if (!file) throw InputError("zip record " + shown + " cannot be opened (" + zip_strerror(zip_->zip) + ")");
  auto* dst = static_cast<char*>(out);
  uint64_t got = 0;
  zip_int64_t n = 1;
  while (got < e.size && (n = zip_fread(file, dst + got, e.size - got)) > 0) got += static_cast<uint64_t>(n);
  char extra = 0;
  // One more read reaches the end of the data, where libzip checks the CRC-32.
  const zip_int64_t tail = n < 0 ? -1 : zip_fread(file, &extra, 1);
  std::string why = n < 0 || tail < 0 ? zip_file_strerror(file) : "";
  zip_fclose(file);
  if (!why.empty()) throw InputError("zip record " + shown + " is damaged (" + why + ")");
  if (got != e.size || tail != 0)
    throw InputError("zip record " + shown + " does not hold the " + std::to_string(e.size) + " bytes it claims");
}

}  // namespace resnet
