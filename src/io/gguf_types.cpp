// GGUF's value types: sizes, names, integer widening and the human-readable rendering of values.
#include <sstream>

#include "io/gguf_detail.h"
#include "util/text.h"

namespace groak {

namespace gguf_detail {

size_t elem_size(GgufType t) {
  switch (t) {
    case GgufType::U8: case GgufType::I8: case GgufType::Bool: return 1;
    case GgufType::U16: case GgufType::I16: return 2;
    case GgufType::U32: case GgufType::I32: case GgufType::F32: return 4;
    case GgufType::U64: case GgufType::I64: case GgufType::F64: return 8;
    case GgufType::String: case GgufType::Array: return 0;  // variable length
  }
  return 0;
}

bool valid_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::F64); }

std::string quoted(std::string_view s) {
  std::string q(1, '"');  // appended piecewise: GCC 12 misreads "\"" + string + "\"" here (-Wrestrict)
  q += printable(s, 60);
  q += '"';
  return q;
}

std::string shape_of(const std::vector<int64_t>& ne) {
  std::string s = "[";
  for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
  return s + "]";
}


std::optional<WideInt> integer_of(GgufType t, uint64_t u, int64_t i) {
  switch (t) {
    case GgufType::U8: case GgufType::U16: case GgufType::U32: case GgufType::U64:
      return WideInt{false, u};
    case GgufType::I8: case GgufType::I16: case GgufType::I32: case GgufType::I64:
      return i < 0 ? WideInt{true, static_cast<uint64_t>(-(i + 1)) + 1} : WideInt{false, static_cast<uint64_t>(i)};
    default:
      return std::nullopt;
  }
}

}  // namespace gguf_detail

using gguf_detail::integer_of;

const char* gguf_type_name(GgufType t) {
  switch (t) {
    case GgufType::U8: return "u8";
    case GgufType::I8: return "i8";
    case GgufType::U16: return "u16";
    case GgufType::I16: return "i16";
    case GgufType::U32: return "u32";
    case GgufType::I32: return "i32";
    case GgufType::F32: return "f32";
    case GgufType::Bool: return "bool";
    case GgufType::String: return "string";
    case GgufType::Array: return "array";
    case GgufType::U64: return "u64";
    case GgufType::I64: return "i64";
    case GgufType::F64: return "f64";
  }
  return "?";
}

bool GgufValue::is_integer() const { return integer_of(type, u, i).has_value(); }
bool GgufValue::is_float() const { return type == GgufType::F32 || type == GgufType::F64; }

std::string GgufValue::describe() const {
  switch (type) {
    case GgufType::U8: case GgufType::U16: case GgufType::U32: case GgufType::U64:
      return std::to_string(u) + " (" + gguf_type_name(type) + ")";
    case GgufType::I8: case GgufType::I16: case GgufType::I32: case GgufType::I64:
      return std::to_string(i) + " (" + gguf_type_name(type) + ")";
    case GgufType::F32: case GgufType::F64: {
      std::ostringstream o;
      o.precision(9);
      o << f << " (" << gguf_type_name(type) << ")";
      return o.str();
    }
    case GgufType::Bool: return u ? "true" : "false";
    case GgufType::String: return gguf_detail::quoted(str) + " (string)";
    case GgufType::Array: {
      std::string a = "[";  // appended piecewise: GCC 12 warns (-Wrestrict) on the one-expression form
      a += std::to_string(count);
      a += " × ";
      a += gguf_type_name(elem_type);
      a += "] (array)";
      return a;
    }
  }
  return "?";
}

int64_t GgufTensor::n_elements() const {
  int64_t n = 1;
  for (int64_t e : ne) n *= e;  // checked not to overflow at parse time
  return n;
}

std::string GgufTensor::shape_str() const { return gguf_detail::shape_of(ne); }

}  // namespace groak
